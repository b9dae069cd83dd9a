"""The figures a student wants after a run, each drawn from measured data.

Every function returns the matplotlib Figure (notebooks display it; tests check it).
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import LogFormatter, MaxNLocator

from .data import MNIST_MEAN, MNIST_STD, spread_indices


# ----------------------------------------------------------------------------- readability helpers


def plain_number(x: float) -> str:
    """``2.28``, ``0.031``, ``7,756``: a tick label a student reads at once (no ``2.28x10^0``)."""
    if x == 0:
        return "0"
    if abs(x) >= 1000 and float(x).is_integer():
        return f"{x:,.0f}"
    return np.format_float_positional(x, precision=3, unique=True, fractional=False, trim="-")


class PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log ticks get a label, each written as a plain number."""

    def __call__(self, x, pos=None):
        return plain_number(x) if super().__call__(x, pos) else ""


def plain_log_ticks(axis) -> None:
    """Plain numbers on a log ``axis`` (ax.xaxis or ax.yaxis), major and minor ticks alike."""
    axis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


CLIPPED = "clipped"  # the gid of the edge markers, so tests (and readers of the code) find them


def mark_clipped(ax) -> str:
    """Mark every point of ``ax``'s data lines that lies outside its y-limits: a triangle at
    that edge (pointing out, in the line's colour), so a zoomed panel never hides a point
    silently. Returns the title's word on them (``"; ▼ 4 points below"``; empty if none)."""
    lo, hi = ax.get_ylim()
    counts = {"below": 0, "above": 0}
    # reference lines (axhline) span the axes by construction; each data line's marks get their
    # own row, so one line's triangle never covers another's at the same x
    data_lines = [line for line in ax.lines if line.get_gid() != CLIPPED and line.get_transform() == ax.transData]
    for row, line in enumerate(data_lines):
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        step = min(0.045, 0.15 / max(len(data_lines) - 1, 1)) * row  # many lines: closer rows
        for side, out, at, marker in (("below", y < lo, 0.03 + step, "v"), ("above", y > hi, 0.97 - step, "^")):
            if out.any():
                ax.plot(x[out], np.full(out.sum(), at), marker, ms=7, color=line.get_color(),
                        transform=ax.get_xaxis_transform(), clip_on=False, gid=CLIPPED, label="_" + side,
                        zorder=6)  # above a legend (zorder 5) that may sit in that corner
                counts[side] += int(out.sum())
    return "".join(f"; {'▼' if side == 'below' else '▲'} {n} point{'s' * (n != 1)} {side}"
                   for side, n in counts.items() if n)


def label_points(ax, xs, ys, labels, fontsize: float = 9, gap_pt: float = 6, pad_pt: float = 2):
    """Write ``labels`` beside their points so that none overlaps another or leaves the axes.

    Each label starts to the right of its point (to the left where it would leave the axes),
    centred on it; labels that would overlap are stacked apart vertically, and the stack is
    kept inside the axes (so no label covers a tick label); a moved label gets a leader
    line to its point. Call it last, after the limits and the layout are final (it measures
    in display space). Returns the annotations.
    """
    fig = ax.figure
    px_per_pt = fig.dpi / 72.0
    frame = ax.get_window_extent()
    margin, gap, pad = 2.0, gap_pt * px_per_pt, pad_pt * px_per_pt
    extra = 2 * gap  # a moved label sits this much further out, so its leader line shows
    boxes = []  # [index, left, right, y centre, height, ha, point x, point y]; left/right include `extra`
    for i, (x, y, text) in enumerate(zip(xs, ys, labels)):
        px, py = ax.transData.transform((x, y))
        probe = fig.text(0, 0, text, fontsize=fontsize)
        ext = probe.get_window_extent()
        probe.remove()
        w, h = ext.width + extra, ext.height
        if px + gap + w <= frame.x1 - margin:
            boxes.append([i, px + gap, px + gap + w, py, h, "left", px, py])
        else:
            boxes.append([i, px - gap - w, px - gap, py, h, "right", px, py])

    def x_overlap(a, b):
        return a[1] < b[2] and b[1] < a[2]

    by_y = sorted(boxes, key=lambda b: b[3])
    for k, b in enumerate(by_y):  # upward: each above the ones below it that it would touch
        for below in by_y[:k]:
            if x_overlap(b, below):
                b[3] = max(b[3], below[3] + below[4] / 2 + pad + b[4] / 2)
    for k in range(len(by_y) - 1, -1, -1):  # downward: the stack stays under the axes' top
        b = by_y[k]
        ceiling = frame.y1 - margin
        for above in by_y[k + 1:]:
            if x_overlap(b, above):
                ceiling = min(ceiling, above[3] - above[4] / 2 - pad)
        b[3] = min(b[3], ceiling - b[4] / 2)
    for b in by_y:  # and above its bottom (a crowded axes may then overlap: a figure too small)
        b[3] = max(b[3], frame.y0 + margin + b[4] / 2)
    notes = []
    for i, left, right, yc, h, ha, px, py in sorted(boxes):
        moved = abs(yc - py) > h / 2
        shift = extra if moved else 0.0
        anchor_x = left + shift if ha == "left" else right - shift
        notes.append(ax.annotate(labels[i], (xs[i], ys[i]), xytext=((anchor_x - px) / px_per_pt, (yc - py) / px_per_pt),
                                 textcoords="offset points", ha=ha, va="center", fontsize=fontsize,
                                 annotation_clip=False,
                                 arrowprops=dict(arrowstyle="-", color="0.5", lw=0.6, shrinkA=0, shrinkB=4)
                                 if moved else None))
    return notes


# ----------------------------------------------------------------------------- figures


def accuracy_zoom(history, target: Optional[float]) -> Optional[tuple]:
    """The y-limits of the panel zoomed to the target region, where the last epochs are decided
    (from 1.5 points below the target to just above the best accuracy); None when there is no
    target or the run ends far below it (a quick run), where a zoom would show nothing."""
    if target is None or max(history.test_acc) <= target - 1.0:
        return None
    top = max(max(history.train_acc), max(history.test_acc), target)
    return target - 1.5, min(100.0, top + 0.5)


def _accuracy_lines(ax, history, target: Optional[float]) -> None:
    ax.plot(history.epoch, history.train_acc, "o-", label="train")
    ax.plot(history.epoch, history.test_acc, "o-", label="test")
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"{target:.2f}% target")
    ax.set(xlabel="epoch", ylabel="accuracy (%)")


def plot_history(history, title: str = "", target: Optional[float] = 99.4) -> plt.Figure:
    """Train/test loss and accuracy per epoch, side by side, with the target accuracy line.

    Near the target a tenth of a point matters, so the accuracy is zoomed to the target region
    (:func:`accuracy_zoom`). Where that zoom would leave points out (the first epochs, or a train
    accuracy held down by augmentation), a panel with every epoch's accuracy stands beside the
    zoom, and the zoom marks each point below it at its bottom edge (:func:`mark_clipped`).
    """
    zoom = accuracy_zoom(history, target)
    values = list(history.train_acc) + list(history.test_acc)
    low = min(values)
    full = zoom is None or low < zoom[0] or max(values) > zoom[1]
    panels = 2 + (zoom is not None and full)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6))
    ax_loss = axes[0]
    ep = history.epoch
    ax_loss.plot(ep, history.train_loss, "o-", label="train")
    ax_loss.plot(ep, history.test_loss, "o-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss", yscale="log")
    plain_log_ticks(ax_loss.yaxis)
    ax_loss.legend()
    if full:  # every epoch's accuracy, on a scale that holds them all
        ax_all = axes[1]
        _accuracy_lines(ax_all, history, target)
        ax_all.set_ylim(max(low - 0.5, 90.0) if low > 90 else max(low - 1, 0), 100)
        ax_all.set_title("Accuracy, every epoch")
        ax_all.legend(loc="lower right")
    if zoom is not None:
        ax_zoom = axes[-1]
        _accuracy_lines(ax_zoom, history, target)
        ax_zoom.set_ylim(*zoom)
        ax_zoom.set_title(f"Accuracy (zoomed: {plain_number(round(zoom[0], 1))}-"
                          f"{plain_number(round(zoom[1], 1))}%{mark_clipped(ax_zoom)})")
        if not full:
            ax_zoom.legend(loc="lower right")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gap(histories: dict, title: str = "Train minus test accuracy") -> plt.Figure:
    """The over-fitting gap (train - test accuracy, in points) per epoch, one line per run.

    The first epoch's train accuracy averages over a network that is still learning, so
    its gap is far off the scale of the rest; the axis is fitted to epochs 2 on, and a
    point off the scale is marked at the edge.
    """
    fig, ax = plt.subplots(figsize=(7, 3.2))
    later = []
    for name, h in histories.items():
        gap = np.asarray(h.train_acc) - np.asarray(h.test_acc)
        ax.plot(h.epoch, gap, "o-", label=name)
        later.extend(gap[1:] if len(gap) > 1 else gap)
    ax.axhline(0, color="grey", lw=1)
    low, high = min(min(later), 0.0), max(max(later), 0.0)
    pad = 0.15 * (high - low or 1.0)
    ax.set_ylim(low - pad, high + pad)
    ax.set(xlabel="epoch", ylabel="train - test (points)", title=title + mark_clipped(ax))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: no point under it
    fig.tight_layout()
    return fig


def plot_seeds(histories: dict, target: float = 99.4, last: int = 3,
               title: str = "The same recipe from each seed") -> plt.Figure:
    """Seeds side by side: each seed's test accuracy by epoch (left, zoomed to the target) and
    the lowest of its last ``last`` epochs (right), against the target line: the spread is the
    part of a verdict that is luck."""
    fig, (ax_curve, ax_min) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    seeds = list(histories)
    mins = [min(h.last(last)) for h in histories.values()]
    for seed, h in histories.items():
        ax_curve.plot(h.epoch, h.test_acc, "o-", ms=3, lw=1, label=f"seed {seed}")
    ax_curve.axhline(target, color="grey", ls="--", lw=1, label=f"{target:.2f}% target")
    # zoomed to the target, widened to keep every seed's last epochs (the verdict) in view,
    # as in a short quick-mode run far below it; earlier points are marked at the edge
    low = min(target - 1.0, min(mins) - max(0.1, 0.03 * (100 - min(mins))))
    ax_curve.set_ylim(low, 100)
    ax_curve.set(xlabel="epoch", ylabel="test accuracy (%)")
    ax_curve.set_title(f"Test accuracy (zoomed: {low:.1f}-100%{mark_clipped(ax_curve)})")
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.legend(fontsize=8, ncol=2)
    colors = ["tab:green" if m >= target else "tab:red" for m in mins]
    # bars rise from the axis' floor (not from 0, far below it), and the limits hold every
    # bar, the target and the mean, whatever the accuracies
    values = mins + [target]
    pad = max(0.1, 0.15 * (max(values) - min(values)))
    floor, top = min(values) - pad, max(values) + pad
    ax_min.bar([str(s) for s in seeds], [m - floor for m in mins], bottom=floor, color=colors)
    ax_min.axhline(target, color="grey", ls="--", lw=1)
    ax_min.axhline(np.mean(mins), color="black", lw=1, label=f"mean {np.mean(mins):.2f}%")
    spread = max(mins) - min(mins)
    ax_min.set_ylim(floor, top)
    ax_min.set(xlabel="seed", ylabel=f"lowest of the last {last} (%)",
               title=f"Lowest of the last {last}: spread {spread:.2f} points")
    ax_min.legend(fontsize=8)
    for ax in (ax_curve, ax_min):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_lr(history, title: str = "Learning rate at every optimizer step") -> plt.Figure:
    """The LR the optimizer really used, step by step (proves the scheduler stepped), and below
    it the momentum of each step where the run recorded it (``history.batch_momentum``).

    The LR axis is logarithmic: OneCycle anneals to a floor 1,000 times below its peak, and a
    hold at that floor would lie flat on zero on a linear axis. OneCycle also cycles the
    momentum opposite to the LR (high while the LR is low), which the lower panel shows.
    """
    lrs = np.asarray(history.batch_lr, float)
    if len(lrs) == 0:
        raise ValueError("this history records no per-step LR (a shipped design run keeps none)")
    momenta = np.asarray(getattr(history, "batch_momentum", []), float)
    panels = 2 if len(momenta) else 1
    fig, axes = plt.subplots(panels, 1, figsize=(7, 2.8 + 1.9 * (panels - 1)), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2][:panels]})
    ax_lr = axes[0, 0]
    steps_per_epoch = len(lrs) / max(len(history), 1)
    ax_lr.plot(np.arange(len(lrs)) / steps_per_epoch, lrs)
    ax_lr.set(yscale="log", ylabel="learning rate (log)",
              title=f"{title}: peak {plain_number(lrs.max())}, lowest {plain_number(lrs.min())}")
    plain_log_ticks(ax_lr.yaxis)
    if panels == 2:
        ax_m = axes[1, 0]
        ax_m.plot(np.arange(len(momenta)) / steps_per_epoch, momenta, color="tab:purple")
        spread = momenta.max() - momenta.min()
        pad = 0.1 * spread if spread else 0.01
        ax_m.set_ylim(momenta.min() - pad, momenta.max() + pad)
        ax_m.set(ylabel="momentum", title="Momentum at every step")  # SGD's momentum (for Adam, its first beta)
    bottom = axes[-1, 0]
    bottom.set_xlabel("epoch (one point per optimizer step)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_lr_range(result: dict, chosen: Optional[float] = None,
                  title: str = "LR range test: loss while the LR rises") -> plt.Figure:
    """The loss of :func:`eva_utils.engine.lr_range_test` against the LR (log axis), with ``chosen``
    (a recipe's peak LR) and the test's lowest-loss LR (``result["lowest_lr"]``) marked.

    The y axis runs from a little below the lowest loss to a little above the first (the
    untrained network's, about ln 10 = 2.3 for ten classes): the fall is what the test reads. The
    blow-up at the end would squash that fall flat, so its points above are marked at the top edge.
    """
    fig, ax = plt.subplots(figsize=(7, 3.2))
    lrs, losses = np.asarray(result["lr"]), np.asarray(result["loss"])
    ax.plot(lrs, losses)
    best = result["lowest_lr"]
    ax.axvline(best, color="tab:red", ls=":", lw=1, label=f"lowest loss at LR {best:.3g}")
    if chosen is not None:
        ax.axvline(chosen, color="grey", ls="--", lw=1, label=f"the recipe's peak LR {chosen:g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)")
    plain_log_ticks(ax.xaxis)
    first, lowest = float(losses[0]), float(losses.min())
    pad = 0.12 * max(first - lowest, 0.05 * first)  # a flat curve still gets a readable band
    ax.set_ylim(max(lowest - pad, 0.0), max(first, lowest) + pad)
    ax.set_title(title + mark_clipped(ax))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def denormalize(x: torch.Tensor, mean=(MNIST_MEAN,), std=(MNIST_STD,)) -> torch.Tensor:
    """Normalised (N, C, H, W) -> [0, 1] for display."""
    if len(mean) != x.shape[1]:
        raise ValueError(f"{x.shape[1]}-channel images need {x.shape[1]} means/stds, got {len(mean)}")
    mean = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0, 1)


def _title_size(size) -> float:
    """A font size in points, for a number or a name such as ``"medium"``."""
    return FontProperties(size=size).get_size_in_points()


def show_images(images: torch.Tensor, titles: Optional[Sequence[str]] = None, ncols: int = 8,
                title: str = "", normalized: bool = True, mean=(MNIST_MEAN,), std=(MNIST_STD,),
                title_size=8) -> plt.Figure:
    """A grid of images: normalised tensors with ``mean``/``std`` (1 or 3 channels), or
    [0, 1] tensors with ``normalized=False``.

    Each cell is made wide and tall enough for its title at ``title_size`` (a title may span
    several lines), so no title runs into its neighbour's or into the image above.
    """
    images = images.detach().float().cpu()
    if normalized:
        images = denormalize(images, mean, std)
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    size = _title_size(title_size)
    lines = [line for t in (titles or []) for line in t.split("\n")]
    n_lines = max((t.count("\n") + 1 for t in titles or []), default=0)
    chars = max(map(len, lines), default=0)
    cell_w = max(1.4, 0.62 * size / 72 * chars + 0.25)  # about 0.6 em per character, plus a gap
    cell_h = 1.3 + n_lines * 1.4 * size / 72 + 0.15
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_w * ncols, cell_h * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
        if titles is not None:
            ax.set_title(titles[i], fontsize=size)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if titles is not None:
        fig.tight_layout()  # again, measured where the images' square aspect has put each title
    return fig


def show_augmented(loader, n: int = 8, repeats: int = 4, class_names=None,
                   title: str = "Row 1: original; rows 2+: random draws") -> plt.Figure:
    """The same ``n`` training images drawn ``repeats`` times through the loader's augmentation.

    Row 1 is the original; each further row is a new random draw, so the per-image
    transformation is visible.
    """
    index = spread_indices(len(loader.images), n).to(loader.images.device)
    original = loader.normalize(loader.images[index].float() / 255.0)
    rows = [original] + [loader.batch(index)[0] for _ in range(repeats)]
    name = (lambda i: class_names[i]) if class_names else str
    titles = [f"original {name(int(t))}" for t in loader.targets[index]] + [""] * (len(index) * repeats)
    norm = loader.normalize
    return show_images(torch.cat(rows).cpu(), titles, ncols=len(index), title=title,
                       mean=norm.mean, std=norm.std)


@torch.inference_mode()
def predictions(model, loader, device=None):
    """(images, targets, predictions, probabilities) over a whole loader, on the CPU (fp32,
    as every evaluation of the course)."""
    model.eval()
    device = device or next(model.parameters()).device
    xs, ys, ps, probs = [], [], [], []
    for x, y in loader:
        out = model(x.to(device)).float()
        xs.append(x.cpu())
        ys.append(y.cpu())
        ps.append(out.argmax(1).cpu())
        probs.append(out.softmax(1).cpu())
    return torch.cat(xs), torch.cat(ys), torch.cat(ps), torch.cat(probs)


def confusion_matrix(model, loader, num_classes: int = 10, device=None) -> torch.Tensor:
    """Counts[true, predicted] over a whole loader (the same fp32 predictions as the grids)."""
    _, y, p, _ = predictions(model, loader, device)
    return torch.bincount(y * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def per_class_accuracy(model, loader, class_names=None, device=None) -> dict:
    """{class name: accuracy %} over a whole loader, in label order (the diagonal of the
    confusion matrix over its rows); a class the loader does not hold gets NaN."""
    names = list(class_names) if class_names is not None else [str(i) for i in range(10)]
    counts = confusion_matrix(model, loader, len(names), device).double()
    totals = counts.sum(1)
    return {name: float(100.0 * counts[c, c] / totals[c]) if totals[c] else float("nan")
            for c, name in enumerate(names)}


def plot_confusion(model, loader, class_names=None, device=None,
                   title: str = "Confusion matrix (test set)") -> plt.Figure:
    """The confusion matrix as a heat map with its counts: rows are the true class, columns the
    prediction; the diagonal is what the model gets right, everything else which classes it mixes up."""
    names = list(class_names) if class_names is not None else [str(i) for i in range(10)]
    counts = confusion_matrix(model, loader, len(names), device).numpy()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    off = counts.copy()
    np.fill_diagonal(off, 0)
    ax.imshow(off, cmap="Reds")  # colour the mistakes; the diagonal would drown them
    for i in range(len(names)):
        for j in range(len(names)):
            if counts[i, j]:
                ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center", fontsize=8,
                        color="black" if i != j else "tab:blue", fontweight="bold" if i == j else None)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"{title}: {int(np.trace(counts)):,} of {int(counts.sum()):,} right")
    fig.tight_layout()
    return fig


def misclassified(model, loader, device=None):
    """Images, targets, predictions and probabilities of the wrongly classified samples."""
    x, y, p, prob = predictions(model, loader, device)
    wrong = p != y
    return x[wrong], y[wrong], p[wrong], prob[wrong]


def show_misclassified(model, loader, n: int = 24, class_names=None, device=None,
                       mean=(MNIST_MEAN,), std=(MNIST_STD,)) -> plt.Figure:
    """A grid of ``n`` misclassified test images, spread over all of them, each titled with its
    prediction above its true class on two lines (``pred: Shirt``, ``true: T-shirt/top``), at the
    axis-label size: long class names on one line would run into the neighbouring titles."""
    x, y, p, _ = misclassified(model, loader, device)
    if len(x) == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center")
        return fig
    pick = spread_indices(len(x), n)
    name = (lambda i: class_names[i]) if class_names else str
    titles = [f"pred: {name(int(p[i]))}\ntrue: {name(int(y[i]))}" for i in pick]
    title = f"{len(x)} misclassified test images ({len(pick)} shown, spread over all)"
    return show_images(x[pick], titles, ncols=8, title=title, mean=mean, std=std,
                       title_size=plt.rcParams["axes.labelsize"])


def plot_steps(rows: Sequence[dict], target_params: int = 8000, target_acc: float = 99.4) -> plt.Figure:
    """Params vs best test accuracy for every course step (rows: name, params, best_acc)."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for r in rows:
        ax.scatter(r["params"], r["best_acc"], s=60)
    ax.axvline(target_params, color="grey", ls="--", lw=1)
    ax.axhline(target_acc, color="grey", ls="--", lw=1)
    accs = [r["best_acc"] for r in rows] + [target_acc]
    ax.set_ylim(min(accs) - 0.25, max(accs) + 0.2)  # head-room, so no label runs into the title
    params = [r["params"] for r in rows] + [target_params]
    ax.set_xlim(min(params) / 1.3, max(params) * 2.0)  # room on the right for the labels
    ax.set(xscale="log", xlabel="parameters (log scale)", ylabel="best test accuracy (%)",
           title="The course's steps: size against accuracy (dashed: the target)")
    plain_log_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    label_points(ax, [r["params"] for r in rows], [r["best_acc"] for r in rows], [r["name"] for r in rows])
    return fig


def plot_frontier(rows: Sequence[dict], epoch: int, target_params: Optional[int] = None,
                  target_acc: float = 99.4, title: str = "") -> plt.Figure:
    """Parameters against accuracy at ``epoch`` (rows: name, params, acc per epoch): one line."""
    rows = sorted(rows, key=lambda r: r["params"])
    fig, ax = plt.subplots(figsize=(7.5, 4))
    xs = [r["params"] for r in rows]
    ys = [r["acc"][epoch - 1] for r in rows]
    ax.plot(xs, ys, "o-")
    if target_params:
        ax.axvline(target_params, color="grey", ls="--", lw=1)
    ax.axhline(target_acc, color="grey", ls="--", lw=1)
    split = rows[0].get("split", "test") if rows else "test"
    ax.set(xscale="log", xlabel="parameters (log scale)", ylabel=f"{split} accuracy at epoch {epoch} (%)",
           title=title or f"Accuracy at epoch {epoch} against size (dashed: the target)")
    plain_log_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    label_points(ax, xs, ys, [f"{r['name']}\n{y:.2f}%" for r, y in zip(rows, ys)], fontsize=8)
    return fig
