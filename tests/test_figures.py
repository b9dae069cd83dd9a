"""Every figure readable at a glance, checked on the Figure objects as drawn: labels that do
not collide, axes that hold every point (or mark it at the edge), plain tick labels, titles
no smaller than the axis labels."""
import re
from itertools import combinations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text

from eva_utils import engine, models, plots, report, widgets

STEPS = ["01_skeleton", "02_lighter", "03_batchnorm", "04_regularizer", "05_augmentation", "06_optimizer"]


def history(test_acc, train_acc=None, losses=None):
    h = engine.History(meta={"params": 7756, "device": "cpu"})
    train_acc = train_acc or [a - 0.5 for a in test_acc]
    losses = losses or [0.1] * len(test_acc)
    for i, (acc, tr, loss) in enumerate(zip(test_acc, train_acc, losses), 1):
        h.add(epoch=i, train_loss=loss, train_acc=tr, test_loss=loss / 2, test_acc=acc, test_correct=0,
              test_total=10000, lr=0.01, seconds=5.0)
    return h


def drawn(fig):
    fig.canvas.draw()
    return fig


def text_box(t):
    """The box of the words themselves (an annotation's own extent includes its leader line)."""
    return Text.get_window_extent(t)


def overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def label_size() -> float:
    return FontProperties(size=plt.rcParams["axes.labelsize"]).get_size_in_points()


def assert_every_point_shown(ax):
    """Every data point inside the y-limits, or marked at the edge by a clipped-marker line."""
    lo, hi = ax.get_ylim()
    marks = [line for line in ax.lines if line.get_gid() == plots.CLIPPED]
    legend = ax.get_legend()
    assert legend is None or all(m.get_zorder() > legend.get_zorder() for m in marks)  # no legend hides them
    for line in ax.lines:
        if line.get_gid() == plots.CLIPPED or line.get_transform() != ax.transData:
            continue
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        for xi in x[(y < lo) | (y > hi)]:
            assert any(xi in m.get_xdata() and m.get_color() == line.get_color() for m in marks), \
                f"{ax.get_title()!r}: point at x={xi} hidden"


@pytest.mark.parametrize("rows", [
    "course",  # the figure of notebook 06: 04, 05 and 06 share 7,972 parameters
    [{"name": f"0{i}_step", "params": 7900 + 10 * i, "best_acc": 99.40 + 0.01 * i} for i in range(1, 7)],
], ids=["course-steps", "six-in-a-heap"])
def test_step_plot_labels_never_collide_nor_leave_the_axes(rows):
    if rows == "course":
        rows = report.step_rows(STEPS)
    fig = drawn(plots.plot_steps(rows))
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text() in {r["name"] for r in rows}]
    assert len(labels) == len(rows)
    boxes = [text_box(t) for t in labels]
    for (a, ta), (b, tb) in combinations(zip(boxes, labels), 2):
        assert not overlap(a, b), f"{ta.get_text()} collides with {tb.get_text()}"
    frame = ax.get_window_extent()
    for box, t in zip(boxes, labels):  # inside the axes: no label covers a tick label
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, t.get_text()
    plt.close(fig)


def test_frontier_labels_never_collide():
    rows = [{"name": n, "params": p, "acc": [a]} for n, p, a in
            [("a", 3000, 99.10), ("b", 3050, 99.11), ("c", 3100, 99.12), ("d", 3600, 99.2), ("e", 8000, 99.4)]]
    fig = drawn(plots.plot_frontier(rows, 1, 3600))
    boxes = [text_box(t) for t in fig.axes[0].texts]
    assert len(boxes) == 5 and not any(overlap(a, b) for a, b in combinations(boxes, 2))
    plt.close(fig)


def _tick_texts(axis):
    return [t for t in axis.get_ticklabels(minor=False) + axis.get_ticklabels(minor=True) if t.get_text()]


def test_log_axes_read_as_plain_numbers():
    narrow = history([99.0, 99.1, 99.2], losses=[2.35, 2.28, 2.2])  # the loss axis that read "2.28x10^0"
    lr = {"lr": list(np.geomspace(1e-3, 1.0, 30)), "loss": list(np.linspace(2.3, 0.5, 30)),
          "lowest_lr": 1.0, "lowest_loss": 0.5}
    figs = [(plots.plot_history(narrow), "yaxis", 0), (plots.plot_history(history([99.0] * 5, losses=[0.6, 0.1, 0.05, 0.03, 0.02])), "yaxis", 0),
            (plots.plot_lr_range(lr, chosen=0.05), "xaxis", 0), (plots.plot_steps(report.step_rows(STEPS)), "xaxis", 0)]
    for fig, which, i in figs:
        drawn(fig)
        axis = getattr(fig.axes[i], which)
        texts = _tick_texts(axis)
        assert texts, "no tick labels at all"
        for t in texts:
            assert re.fullmatch(r"-?[\d,]*\.?\d+", t.get_text()), f"tick label {t.get_text()!r} is not a plain number"
        visible = [t.get_window_extent() for t in texts
                   if axis.axes.get_window_extent().expanded(1.5, 1.5).overlaps(t.get_window_extent())]
        assert not any(overlap(a, b) for a, b in combinations(visible, 2)), [t.get_text() for t in texts]
        plt.close(fig)
    assert plots.plain_number(2.28) == "2.28" and plots.plain_number(7972) == "7,972"
    assert plots.plain_number(0.0001) == "0.0001"


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_seed_figure_fits_its_data_in_quick_and_full_mode(mode):
    if mode == "quick":  # 3 epochs on a slice of the data: far below the target
        runs = {1: history([80.0, 90.5, 93.1]), 2: history([85.0, 92.0, 94.2]), 3: history([70.0, 88.0, 95.5])}
    else:
        runs = {s: history([97.5, 98.6] + [99.0 + 0.03 * i for i in range(13)]) for s in (1, 2, 3)}
    fig = drawn(plots.plot_seeds(runs))
    curves, bars = fig.axes[:2]
    lo, hi = curves.get_ylim()
    for h in runs.values():  # the verdict's epochs are always in view: never an empty panel
        assert all(lo <= a <= hi for a in h.last(3))
    assert_every_point_shown(curves)
    floor, top = bars.get_ylim()
    for p in bars.patches:  # no bar runs off the axis
        assert floor - 1e-9 <= p.get_y() and p.get_y() + p.get_height() <= top + 1e-9
    for line in bars.lines:  # the target and the mean lines are inside too
        assert floor <= line.get_ydata()[0] <= top
    plt.close(fig)


def test_zoomed_panels_mark_every_point_off_the_scale():
    h = history([96.0, 98.5] + [99.3] * 13, train_acc=[90.0, 97.0] + [99.0] * 13)
    fig = drawn(plots.plot_history(h))
    acc = fig.axes[-1]
    assert acc.get_ylim() == pytest.approx((97.9, 99.9))
    assert_every_point_shown(acc)
    assert "▼ 3 points below" in acc.get_title()
    clipped = [m for m in acc.lines if m.get_gid() == plots.CLIPPED]
    assert sum(len(m.get_xdata()) for m in clipped) == 3
    plt.close(fig)
    gap = drawn(plots.plot_gap({"a": h}))
    assert_every_point_shown(gap.axes[0])
    lr = {"lr": list(np.geomspace(1e-3, 1.0, 30)), "loss": [2.3] * 20 + [30.0] * 10,
          "lowest_lr": 0.01, "lowest_loss": 2.3}
    exploding = drawn(plots.plot_lr_range(lr))
    assert_every_point_shown(exploding.axes[0])
    assert "▲ 10 points above" in exploding.axes[0].get_title()
    plt.close("all")


def test_titles_are_no_smaller_than_axis_labels_and_stay_inside_the_figure():
    engine.seed_everything(0)
    model = models.build("final")
    digit = torch.randn(1, 28, 28)
    figs = [widgets.rf_gallery(model, digit), plots.plot_history(history([98.0, 99.0, 99.5])),
            plots.plot_seeds({1: history([98.0, 99.0, 99.5])}), plots.plot_steps(report.step_rows(STEPS))]
    size = label_size()
    for fig in figs:
        drawn(fig)
        frame = fig.bbox
        titles = [ax.title for ax in fig.axes if ax.get_title()]
        for t in titles:
            assert t.get_fontsize() >= size, (t.get_text(), t.get_fontsize())
            box = t.get_window_extent()
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1, f"title {t.get_text()!r} runs off the figure"
        boxes = [t.get_window_extent() for t in titles]
        assert not any(overlap(a, b) for a, b in combinations(boxes, 2))
        plt.close(fig)


def _accuracy_axes(fig):
    return [ax for ax in fig.axes if ax.get_ylabel() == "accuracy (%)"]


@pytest.mark.parametrize("test_acc, train_acc, target", [
    ([80.0, 90.5, 93.1], [60.0, 85.0, 91.0], 99.4),  # quick mode: far below the target, no zoom
    ([97.0, 98.9, 99.1], [70.0, 92.0, 96.0], 99.4),  # quick mode near the target: train far below
    # 04: train accuracy held down by dropout and augmentation, below the zoom until epoch 10
    ([97.7, 98.3, 98.6, 98.9, 98.9, 99.0, 99.0, 99.1, 99.2, 99.2, 99.3, 99.3, 99.2, 99.3, 99.3],
     [79.2, 95.5, 96.5, 97.0, 97.2, 97.5, 97.6, 97.8, 97.8, 97.9, 98.0, 97.9, 98.2, 98.2, 98.2], 99.4),
    # 09: CIFAR-10, 20 epochs climbing to the 85% target only at the end
    ([53.0 + 1.7 * i for i in range(20)], [41.0 + 2.4 * i for i in range(20)], 85.0),
    # 08: Fashion-MNIST and its 90% target
    ([79.9, 85.2, 85.3, 87.6, 87.6, 88.2, 89.1, 88.4, 89.0, 90.3, 90.0, 90.7, 91.0, 91.3, 91.4],
     [66.8, 84.5, 87.0, 88.3, 89.2, 89.9, 90.2, 90.4, 90.8, 91.2, 91.5, 91.9, 92.2, 92.5, 92.7], 90.0),
], ids=["quick-far", "quick-near", "04-15-epochs", "09-20-epochs", "08-fashion"])
def test_accuracy_panels_hide_no_epoch(test_acc, train_acc, target):
    """Every epoch's accuracy is drawn: inside a panel that holds them all, and in the zoom either
    inside its limits or marked at its edge; the target line is inside every accuracy panel."""
    h = history(test_acc, train_acc=train_acc)
    fig = drawn(plots.plot_history(h, target=target))
    panels = _accuracy_axes(fig)
    assert panels
    for ax in panels:
        assert_every_point_shown(ax)
        lo, hi = ax.get_ylim()
        assert any(line.get_ydata()[0] == target for line in ax.lines if line.get_gid() != plots.CLIPPED)
        assert lo < target < hi
    full = [ax for ax in panels if "zoomed" not in ax.get_title()]
    assert len(full) == 1  # one panel holds every epoch, whether or not a zoom stands beside it
    lo, hi = full[0].get_ylim()
    assert all(lo <= a <= hi for a in test_acc + train_acc)
    zoom = [ax for ax in panels if "zoomed" in ax.get_title()]
    if zoom:
        below = sum(a < zoom[0].get_ylim()[0] for a in test_acc + train_acc)
        assert f"▼ {below} point" in zoom[0].get_title()
    plt.close(fig)


def _lr_history(with_momentum: bool):
    """06's schedule in small: a OneCycle warm-up and anneal, then a hold at the floor LR 1,000x below the peak."""
    h = history([98.0, 99.0, 99.2, 99.3])
    up, down, hold = np.linspace(0.002, 0.05, 10), np.geomspace(0.05, 5e-5, 20), [5e-5] * 10
    h.batch_lr = [float(v) for v in np.concatenate([up, down, hold])]
    if with_momentum:
        h.batch_momentum = [0.95 - 0.1 * (lr - 5e-5) / (0.05 - 5e-5) for lr in h.batch_lr]
    return h


@pytest.mark.parametrize("with_momentum", [True, False], ids=["momentum", "lr-only"])
def test_lr_figure_shows_the_floor_on_a_log_axis_and_the_momentum_below(with_momentum):
    h = _lr_history(with_momentum)
    fig = drawn(plots.plot_lr(h))
    ax_lr = fig.axes[0]
    assert ax_lr.get_yscale() == "log"
    lo, hi = ax_lr.get_ylim()
    assert lo <= min(h.batch_lr) and max(h.batch_lr) <= hi  # the hold's floor is on the axis
    assert list(ax_lr.lines[0].get_ydata()) == h.batch_lr
    for t in _tick_texts(ax_lr.yaxis):
        assert re.fullmatch(r"-?[\d,]*\.?\d+", t.get_text()), t.get_text()
    if with_momentum:
        assert len(fig.axes) == 2
        ax_m = fig.axes[1]
        assert ax_lr.get_shared_x_axes().joined(ax_lr, ax_m)
        assert list(ax_m.lines[0].get_ydata()) == h.batch_momentum
        lo, hi = ax_m.get_ylim()
        assert lo < min(h.batch_momentum) and max(h.batch_momentum) < hi
        assert ax_m.get_xlabel().startswith("epoch") and not ax_lr.get_xlabel()  # one shared x label
    else:
        assert len(fig.axes) == 1
    plt.close(fig)
    with pytest.raises(ValueError, match="no per-step LR"):
        plots.plot_lr(history([99.0]))


def test_lr_range_axis_reads_the_fall_from_the_first_loss_and_marks_the_blow_up():
    lrs = list(np.geomspace(1e-4, 1.0, 40))
    losses = [2.3 - 1.9 * min(i, 30) / 30 for i in range(40)]
    losses[34:] = [3.0, 5.0, 9.0, 15.0, 25.0, 40.0]  # the blow-up at the end, far above the start
    at = losses.index(min(losses))
    fig = drawn(plots.plot_lr_range({"lr": lrs, "loss": losses, "lowest_lr": lrs[at], "lowest_loss": losses[at]},
                                    chosen=0.05))
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert ax.get_xscale() == "log"
    assert lo < min(losses) < 0.5 and 2.3 < hi < 2.6  # from a little below the lowest to a little above the first
    assert_every_point_shown(ax)
    assert "▲ 6 points above" in ax.get_title()
    plt.close(fig)
