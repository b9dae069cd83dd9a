"""What the notebooks show: Results rendered from a history, figures, widgets without a front end."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.font_manager import FontProperties

from eva_utils import augment, data, datasets, engine, histories, models, plots, recipes, report, widgets


@pytest.fixture(scope="module")
def trained():
    engine.seed_everything(0)
    loaders = data.loaders(64, device="cpu", test_batch_size=100, augment=augment.RandomAffine(degrees=7),
                           splits=data.Splits(train_limit=256, test_limit=200))
    model = models.build("final")
    # 2 epochs of 4 batches: the final recipe's cycle without its 2-epoch hold (which needs 3 epochs)
    opt, sched = recipes.get_recipe("final").with_(hold_epochs=0).make_optimizer(model, len(loaders.train), 2)
    history = engine.fit(model, 2, loaders.train, loaders.test, opt, sched, progress=False, verbose=False)
    return model, loaders, history


def fake_history(test_acc, params=7756):
    h = engine.History(meta={"params": params, "device": "cpu"})
    for i, acc in enumerate(test_acc, 1):
        h.add(epoch=i, train_loss=0.1, train_acc=acc + 0.1, test_loss=0.02, test_acc=acc,
              test_correct=int(acc * 100), test_total=10000, lr=0.01, seconds=5.0)
    return h


def test_results_are_rendered_from_the_history(trained):
    _, _, history = trained
    text = report.results_markdown(history)
    best, epoch = history.best_test
    assert f"| parameters | {history.meta['params']:,} |" in text
    assert f"{best:.2f}% (epoch {epoch})" in text
    assert ", ".join(f"{a:.2f}%" for a in history.last(3)) in text


def test_target_report_needs_every_one_of_the_last_three_epochs():
    met, line = recipes.target_report(fake_history([98.0] * 12 + [99.41, 99.45, 99.40]))
    assert met and line.startswith("Course target MET")
    met, line = recipes.target_report(fake_history([98.0] * 12 + [99.41, 99.39, 99.50]))
    assert not met
    assert not recipes.target_report(fake_history([99.5] * 15, params=8000))[0]
    assert not recipes.target_report(fake_history([99.5] * 16))[0]


def test_quick_runs_are_never_saved(tmp_path):
    h = fake_history([99.0, 99.1, 99.2])
    assert histories.save_history(h, "x", quick=True, results_dir=tmp_path) is None
    assert not list(tmp_path.iterdir())
    histories.save_history(h, "x", results_dir=tmp_path)
    assert histories.load_history("x", tmp_path).test_acc == h.test_acc
    with pytest.raises(FileNotFoundError, match="run notebook missing in full here"):
        histories.load_history("missing", tmp_path)


def test_histories_go_to_the_working_folder_and_fall_back_to_the_course_runs(tmp_path, monkeypatch):
    """A notebook run anywhere (Colab: a pip install and an empty folder) writes next to itself
    and still finds the earlier steps' runs, shipped inside the package."""
    import eva_utils

    monkeypatch.delenv(histories.RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    course = histories.load_history("03_batchnorm")
    assert course.meta["source"] == "course reference run" and len(course) == 15
    mine = fake_history([99.0, 99.1, 99.2])
    path = histories.save_history(mine, "03_batchnorm")
    assert path == histories.history_dir() / "03_batchnorm.json" and (tmp_path / path).is_file()
    assert histories.load_history("03_batchnorm").test_acc == mine.test_acc  # this folder's own run first
    package = Path(eva_utils.__file__).parent
    assert not (tmp_path / path).resolve().is_relative_to(package)
    monkeypatch.setenv(histories.RESULTS_ENV, str(tmp_path / "elsewhere"))
    assert histories.save_history(mine, "x") == tmp_path / "elsewhere" / "x.json"


def test_every_step_a_notebook_compares_with_ships_with_the_package():
    steps = ["01_skeleton", "02_lighter", "03_batchnorm", "04_regularizer", "05_augmentation",
             "06_optimizer", "08_design_adapted_flip"]
    for step in steps:
        assert (histories.course_results() / f"{step}.json").is_file(), step


def test_quick_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("EVA_SMOKE", "1")
    assert recipes.get_recipe("final").run_settings().quick
    monkeypatch.setenv("EVA_SMOKE", "0")
    assert recipes.get_recipe("final").run_settings() == recipes.RunSettings(15)


def test_figures_are_drawn_from_measured_data(trained):
    model, loaders, history = trained
    for fig in (plots.plot_history(history), plots.plot_lr(history), plots.show_augmented(loaders.train),
                plots.show_misclassified(model, loaders.test), plots.plot_gap({"a": history}),
                plots.plot_steps([{"name": "a", "params": 7756, "best_acc": 99.4}])):
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    lr_line = plots.plot_lr(history).axes[0].lines[0]
    assert list(lr_line.get_ydata()) == history.batch_lr


def test_fit_records_the_momentum_of_every_step_and_plot_lr_shows_it(trained):
    """OneCycle cycles SGD's momentum opposite to the LR: 0.95 at the start, 0.85 at the peak LR."""
    _, _, history = trained
    lrs, momenta = history.batch_lr, history.batch_momentum
    assert len(momenta) == len(lrs) == 8
    peak = lrs.index(max(lrs))
    assert momenta[0] == pytest.approx(0.95) and momenta[peak] == pytest.approx(0.85)
    assert min(momenta) == momenta[peak]
    fig = plots.plot_lr(history)
    ax_lr, ax_m = fig.axes
    assert ax_lr.get_yscale() == "log" and ax_lr.get_shared_x_axes().joined(ax_lr, ax_m)
    assert list(ax_lr.lines[0].get_ydata()) == lrs and list(ax_m.lines[0].get_ydata()) == momenta
    plt.close(fig)


def test_step_momentum_reads_sgd_momentum_and_adams_first_beta():
    params = [torch.nn.Parameter(torch.zeros(1))]
    assert engine.step_momentum(torch.optim.SGD(params, lr=0.1, momentum=0.9)) == 0.9
    assert engine.step_momentum(torch.optim.AdamW(params, betas=(0.8, 0.999))) == 0.8
    assert engine.step_momentum(torch.optim.Adagrad(params)) is None


def test_histories_keep_the_momentum_and_older_files_without_it_still_load(tmp_path):
    h = fake_history([99.0, 99.1])
    h.batch_lr, h.batch_momentum = [0.01, 0.05, 0.02], [0.95, 0.85, 0.9]
    histories.save_history(h, "x", results_dir=tmp_path)
    assert histories.load_history("x", tmp_path).batch_momentum == [0.95, 0.85, 0.9]
    raw = h.to_dict()
    del raw["batch_momentum"]  # a history saved before the momentum was recorded
    old = histories.parse_history(json.dumps(raw).encode(), "x")
    assert old.batch_momentum == [] and old.batch_lr == h.batch_lr
    raw["batch_momentum"] = ["high"]
    with pytest.raises(ValueError, match="'batch_momentum' is not a list of numbers"):
        histories.parse_history(json.dumps(raw).encode(), "x")


def test_misclassified_titles_name_both_classes_on_two_lines_and_never_overlap(trained):
    model, loaders, _ = trained
    fig = plots.show_misclassified(model, loaders.test, n=24, class_names=datasets.FASHION_MNIST.classes)
    fig.canvas.draw()
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 24
    size = FontProperties(size=plt.rcParams["axes.labelsize"]).get_size_in_points()
    boxes = []
    for ax in titled:
        pred, true = ax.get_title().split("\n")
        assert pred.startswith("pred: ") and true.startswith("true: ")
        assert ax.title.get_fontsize() >= size
        boxes.append(ax.title.get_window_extent())
    images = [ax.get_window_extent() for ax in titled]
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes[i + 1:] + images[:i] + images[i + 1:]):
            assert not a.overlaps(b), (titled[i].get_title(), j)
    plt.close(fig)


def test_widgets_build_without_a_front_end(trained):
    model, loaders, _ = trained
    digits = next(iter(loaders.test))[0][:4]
    explorer = widgets.rf_explorer(model, digits)
    assert isinstance(explorer.box, ipywidgets.VBox)
    assert repr(explorer) == explorer.note and "\n" not in explorer.note  # one line, never the widget tree
    explorer.controls["layer"].value = 0  # first conv: its central unit sees a 3x3 window
    unit_row = explorer.controls["unit_row"]
    assert unit_row.max == 25 and unit_row.value == 13
    browser = widgets.misclassified_browser(model, loaders.test)
    assert isinstance(browser.box, ipywidgets.VBox)
    plt.close("all")


def test_rf_window_drawn_is_the_tables_window(trained):
    model, loaders, _ = trained
    rows = widgets.spatial_rows(model)
    conv2 = next(r for r in rows if r.module == "conv2.0")
    win = conv2.window((0, 0))
    assert (win.top, win.left, win.height, win.width) == (0, 0, 5, 5)
    ax = widgets.draw_rf_window(next(iter(loaders.test))[0][0], conv2, (0, 0))
    assert "RF 5" in ax.get_title()
    plt.close("all")


def test_seed_figure_and_summary_show_each_seeds_lowest_of_the_last_three():
    histories = {1: fake_history([98.0] * 12 + [99.45, 99.41, 99.48]),
                 2: fake_history([98.0] * 12 + [99.50, 99.52, 99.47]),
                 3: fake_history([98.0] * 12 + [99.45, 99.38, 99.48])}
    fig = plots.plot_seeds(histories)
    bars = [p.get_y() + p.get_height() for p in fig.axes[1].patches]  # bars rise from the axis' floor
    assert bars == pytest.approx([99.41, 99.47, 99.38])
    assert "spread 0.09 points" in fig.axes[1].get_title()
    plt.close(fig)
    line = report.seeds_summary_line(histories)
    assert line == ("Course target met by 2/3 seeds. Lowest of the last 3: mean 99.42%, lowest 99.38% (seed 3), "
                    "spread 0.09 points.")
    assert "| 3 | 7,756 | 99.48% (15) | 99.45, 99.38, 99.48 | 99.38% | NOT met |" in report.seeds_markdown(histories)


def test_accuracy_plot_is_zoomed_to_the_target_with_whole_epochs():
    fig = plots.plot_history(fake_history([97.0, 98.5] + [99.3] * 13))
    acc = fig.axes[-1]  # the zoom; the panel before it holds every epoch
    assert acc.get_ylim() == pytest.approx((97.9, 99.9))  # 1.5 below the target to 0.5 above the best
    assert any(line.get_ydata()[0] == 99.4 for line in acc.lines)
    assert all(float(t).is_integer() for t in acc.get_xticks())
    plt.close(fig)


def test_rf_gallery_wraps_deep_models_into_readable_rows(trained):
    model, loaders, _ = trained
    digit = next(iter(loaders.test))[0][0]
    fig = widgets.rf_gallery(model, digit)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == len(widgets.rf_rows(model)) > 5
    width, _ = fig.get_size_inches()
    assert width <= widgets.PAGE_WIDTH_IN + 1e-6  # shown at full size: no browser scaling of the letters
    label_size = widgets._label_size()
    assert all(ax.title.get_fontsize() >= label_size for ax in drawn)
    plt.close(fig)


def test_rf_explorer_opens_at_a_middle_conv(trained):
    model, loaders, _ = trained
    explorer = widgets.rf_explorer(model, next(iter(loaders.test))[0][:2])
    layer = explorer.controls["layer"]
    assert 0 < layer.value < len(layer.options) - 1
    assert layer.label.startswith("Conv2d-") and explorer.controls["unit_row"].max > 0
    plt.close("all")


def test_lr_range_test_raises_the_lr_exponentially_and_records_the_loss():
    engine.seed_everything(0)
    loaders = data.loaders(32, device="cpu", splits=data.Splits(train_limit=256, test_limit=100))
    model = models.build("final")
    result = engine.lr_range_test(model, "cpu", loaders.train, torch.optim.SGD(model.parameters(), lr=1.0),
                                  start=1e-3, end=1e-1, steps=12)
    assert len(result["lr"]) == len(result["loss"]) and 2 <= len(result["lr"]) <= 12  # goes round the 8 batches
    assert result["lr"][0] == pytest.approx(1e-3)
    ratios = [b / a for a, b in zip(result["lr"], result["lr"][1:])]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))
    if len(result["lr"]) == 12:
        assert result["lr"][-1] == pytest.approx(1e-1)
    at = result["loss"].index(min(result["loss"]))
    assert (result["lowest_lr"], result["lowest_loss"]) == (result["lr"][at], result["loss"][at])
    fig = plots.plot_lr_range(result, chosen=0.05)
    assert fig.axes[0].get_xscale() == "log"
    marked = [line.get_xdata()[0] for line in fig.axes[0].lines[1:]  # the vertical markers
              if line.get_gid() != plots.CLIPPED]
    assert marked == pytest.approx([result["lowest_lr"], 0.05])
    plt.close(fig)
    with pytest.raises(ValueError, match="start < end"):
        engine.lr_range_test(model, "cpu", loaders.train, torch.optim.SGD(model.parameters(), lr=1.0),
                             start=1.0, end=0.1)


class _ConstantLoss(torch.nn.Module):
    """Logits that do not depend on the input or (in value) on the weight: every batch's loss is ln 10."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return torch.zeros(x.shape[0], 10) * self.weight


def test_lr_range_test_gives_a_flat_curve_for_a_constant_loss_and_the_real_loss_at_its_first_point():
    loaders = data.loaders(32, device="cpu", splits=data.Splits(train_limit=256, test_limit=100))
    model = _ConstantLoss()
    result = engine.lr_range_test(model, "cpu", loaders.train, torch.optim.SGD(model.parameters(), lr=1.0),
                                  start=1e-3, end=1.0, steps=20)
    assert len(result["loss"]) == 20  # a flat curve never reaches four times its lowest
    assert result["loss"] == pytest.approx([math.log(10)] * 20, rel=1e-6)
    # a real model: the first point is the first batch's own loss (not a multiple of it)
    engine.seed_everything(0)
    real = models.build("final")
    x, y = next(iter(loaders.train))
    with torch.no_grad():
        first = torch.nn.functional.cross_entropy(real(x).float(), y).item()
    result = engine.lr_range_test(real, "cpu", [(x, y)], torch.optim.SGD(real.parameters(), lr=1.0),
                                  start=1e-4, end=1e-1, steps=5)
    assert result["loss"][0] == pytest.approx(first, rel=1e-4)


def test_ablation_and_design_tables_come_from_the_histories():
    a, b = fake_history([99.0, 99.2, 99.3, 99.35]), fake_history([99.1, 99.4, 99.5, 99.45])
    text = report.compare_markdown({"without": a, "with": b})
    assert "| with | 7,756 | 99.50% (3) | 99.40, 99.50, 99.45 | +0.10 points |" in text
    # a mean row (03's seeds): every column averaged over its runs, bold, under the runs
    text = report.compare_markdown({"seed 1": a, "seed 2": b}, means={"mean of seeds 1-2": [a, b]})
    assert text.splitlines()[-1] == "| **mean of seeds 1-2** | 7,756 | 99.42% | 99.30, 99.40, 99.40 | +0.10 points |"
    with pytest.raises(ValueError, match="'empty' has no runs"):
        report.compare_markdown({"seed 1": a}, means={"empty": []})
    design = report.design_markdown({"weak": {1: a, 2: a}, "strong": {1: b, 2: b}})
    lines = design.splitlines()
    assert lines[2].startswith("| strong |") and lines[3].startswith("| weak |")  # best first
    assert "99.40%" in lines[2] and "99.20%" in lines[3]  # mean of each seed's lowest of the last 3


def test_confusion_matrix_counts_the_same_predictions_as_the_grids(trained):
    model, loaders, _ = trained
    counts = plots.confusion_matrix(model, loaders.test)
    _, y, p, _ = plots.predictions(model, loaders.test)
    assert counts.sum() == len(y) and int(counts.trace()) == int((p == y).sum())
    assert int(counts[3].sum()) == int((y == 3).sum())  # row: the true class
    wrong = len(plots.misclassified(model, loaders.test)[1])
    assert int(counts.sum() - counts.trace()) == wrong
    fig = plots.plot_confusion(model, loaders.test)
    assert f"{int(counts.trace()):,} of {len(y):,} right" in fig.axes[0].get_title()
    plt.close(fig)


def test_a_shipped_history_drops_its_per_step_lists_and_still_loads(tmp_path):
    history = fake_history([99.0, 99.2])
    history.batch_lr, history.batch_momentum = [0.01, 0.02, 0.03], [0.95, 0.9, 0.85]
    assert histories.drop_per_step(history) is history
    assert history.batch_lr == [] and history.batch_momentum == []
    path = histories.save_history(history, "step", results_dir=tmp_path)
    back = histories.parse_history(path.read_bytes(), "step")
    assert back.test_acc == [99.0, 99.2] and back.batch_lr == [] and back.batch_momentum == []
