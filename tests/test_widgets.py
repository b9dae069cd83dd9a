"""The interactive tools driven as a student drives them: set a control, count what is drawn.

No front end is needed: setting ``.value`` on a control runs the same observers a browser's
message does (ipywidgets 7.7 and 8 alike).
"""
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from eva_utils import data, engine, models, widgets
from eva_utils.summary import summary


@pytest.fixture(scope="module")
def model():
    engine.seed_everything(0)
    return models.build("final")


@pytest.fixture(scope="module")
def test_loader():
    return data.loaders(64, device="cpu", test_batch_size=50, splits=data.Splits(train_limit=64, test_limit=100)).test


@pytest.fixture(scope="module")
def digits(test_loader):
    return next(iter(test_loader))[0][:3]


@pytest.fixture
def draws(monkeypatch):
    """Every call of the explorer's draw function: (layer row, unit) as drawn."""
    calls = []
    real = widgets.draw_rf_window

    def counting(image, row, unit=None, ax=None):
        calls.append((row, tuple(unit)))
        return real(image, row, unit, ax)

    monkeypatch.setattr(widgets, "draw_rf_window", counting)
    return calls


def _view_updates(tool):
    updates = []
    tool.view.observe(lambda change: updates.append(change), names="value")
    return updates


def test_every_control_change_draws_exactly_once(model, digits, draws):
    explorer = widgets.rf_explorer(model, digits)
    c = explorer.controls
    updates = _view_updates(explorer)
    rows = widgets.rf_rows(model)
    for index in [0, *range(len(rows)), 3, 0]:  # every layer, from small grids to large and back
        if c["layer"].value == index:
            continue
        before = len(draws)
        c["layer"].value = index
        assert len(draws) == before + 1, f"layer {rows[index].layer}: {len(draws) - before} draws"
        row, unit = draws[-1]
        assert row == rows[index] and unit == row.geometry.center_unit()  # never a half-updated state
    c["layer"].value = 0
    for control, value in (("digit", 2), ("unit_row", 0), ("unit_col", 25), ("unit_row", 7)):
        before = len(draws)
        c[control].value = value
        assert len(draws) == before + 1, control
        assert draws[-1][1] == (c["unit_row"].value, c["unit_col"].value)
    assert len(updates) == explorer.draws - 1  # one new picture per action (the first came with the widget)
    plt.close("all")


def test_layer_list_holds_the_layers_that_change_the_rf_named_as_the_summary(model, digits):
    explorer = widgets.rf_explorer(model, digits)
    labels = [label for label, _ in explorer.controls["layer"].options]
    table = summary(model).rows
    changing = [r for r in table if r.type in widgets.RF_LAYER_TYPES]
    assert [label.split(":")[0] for label in labels] == [r.layer for r in changing]
    assert not any(word in label for label in labels for word in ("BatchNorm", "ReLU", "Dropout", "["))
    assert all(re.fullmatch(r"(Conv2d|MaxPool2d|AdaptiveAvgPool2d)-\d+: \d+x\d+ units, RF \d+", label)
               for label in labels), labels
    assert len(labels) < len(widgets.spatial_rows(model)) / 2  # 10 of 24 rows in the final model
    plt.close("all")


def test_a_1x1_grid_turns_the_unit_sliders_off_and_says_why(model, digits, draws):
    explorer = widgets.rf_explorer(model, digits)
    c = explorer.controls
    rows = widgets.rf_rows(model)
    single = next(i for i, r in enumerate(rows) if r.geometry.grid_hw == (1, 1))
    c["layer"].value = single
    assert c["unit_row"].disabled and c["unit_col"].disabled
    assert "1x1 grid has one unit" in c["note"].value and "whole input" in c["note"].value
    assert "the only unit (1x1 grid)" in explorer.render().axes[0].get_title()
    c["layer"].value = 0
    assert not c["unit_row"].disabled and not c["unit_col"].disabled
    assert c["note"].value == widgets.centre_note((26, 26))
    plt.close("all")


def test_edge_units_keep_the_images_frame(model, digits):
    padded = nn.Sequential(nn.Conv2d(1, 2, 5, padding=2), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, padding=1))
    for net in (model, padded):
        for row in widgets.rf_rows(net):
            gh, gw = row.geometry.grid_hw
            for unit in ((0, 0), (gh - 1, gw - 1), (0, gw - 1)):
                fig, ax = plt.subplots()
                widgets.draw_rf_window(digits[0], row, unit, ax)
                assert ax.get_xlim() == (-0.5, 27.5) and ax.get_ylim() == (27.5, -0.5), (row.layer, unit)
                plt.close(fig)
    first = widgets.rf_rows(padded)[0]
    ax = widgets.draw_rf_window(digits[0], first, (0, 0))
    assert "window 2 px into the padding" in ax.get_title()  # the part cut at the frame is said
    plt.close("all")


def test_the_centre_of_an_even_grid_is_stated(model, digits):
    assert widgets.centre_note((4, 4)) == "centre of a 4x4 grid: units (1,1)..(2,2); shown (2,2)"
    assert widgets.centre_note((5, 5)) == "centre of a 5x5 grid: unit (2,2)"
    rows = widgets.rf_rows(model)
    four = next(i for i, r in enumerate(rows) if r.geometry.grid_hw == (4, 4))
    explorer = widgets.rf_explorer(model, digits)
    explorer.controls["layer"].value = four
    assert explorer.controls["note"].value == widgets.centre_note((4, 4))
    assert (explorer.controls["unit_row"].value, explorer.controls["unit_col"].value) == (2, 2)
    ax = widgets.draw_rf_window(digits[0], rows[four])
    assert "unit (2,2) of 4x4\ncentre: (1,1)..(2,2)" in ax.get_title()
    plt.close("all")


def test_misclassified_slider_counts_from_one(model, test_loader, monkeypatch):
    shown = []
    real = widgets.draw_prediction

    def recording(image, *args, **kwargs):
        shown.append(image)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(widgets, "draw_prediction", recording)
    x, _, _, _ = widgets.misclassified(model, test_loader)
    browser = widgets.misclassified_browser(model, test_loader)
    index = browser.controls["index"]
    assert (index.value, index.min, index.max) == (1, 1, len(x)) and len(x) > 2
    assert f"of {len(x)} misclassified" in browser.box.children[0].children[1].value
    assert torch.equal(shown[-1], x[0])  # "1 of N" is the first
    for value in (3, len(x)):
        before = len(shown)
        index.value = value
        assert len(shown) == before + 1 and torch.equal(shown[-1], x[value - 1])  # "N of N" is the last
    assert "step through all" in repr(browser) and "\n" not in repr(browser)
    plt.close("all")
