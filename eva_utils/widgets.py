"""Interactive tools for the notebooks, built on ipywidgets' 7.x API.

Colab ships ipywidgets 7.7, so only widgets and calls that exist there are used
(Dropdown, IntSlider, Label, Image, HBox/VBox, ``observe``). Each widget is built from a
plain function that draws one static figure, and each one leaves a readable record where
no kernel runs (GitHub, nbviewer, an HTML export): its output carries, beside the live
widget, a PNG of its opening view and a one-line note that it is interactive when run
(never the ``VBox(children=...)`` text ipywidgets falls back to). The live views are
``Image`` widgets whose PNG is replaced in one message per user action, so a frontend
never shows a half-updated or blank frame in between.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle

from .data import MNIST_MEAN, MNIST_STD
from .plots import denormalize, misclassified
from .rf import Window, rf_table

# The layers that change what a unit sees. BatchNorm, ReLU, Dropout ... keep the window of
# the row above them, so listing them only repeats it.
RF_LAYER_TYPES = ("Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")


def spatial_rows(model, input_size=(1, 28, 28)):
    """The RF rows whose output is still a feature map (so a unit has a window)."""
    return [r for r in rf_table(model, input_size) if len(r.output_shape) == 4]


def rf_rows(model, input_size=(1, 28, 28)):
    """The spatial rows that change the receptive field: convs and pools (and any other layer
    whose window differs from the row before it), named as :func:`eva_utils.summary` names them."""
    rows, before = [], None
    for r in spatial_rows(model, input_size):
        if r.type in RF_LAYER_TYPES or (before is not None and r.geometry != before):
            rows.append(r)
        before = r.geometry
    return rows


def centre_span(n: int) -> tuple[int, ...]:
    """The central index of an axis of ``n`` units: one when ``n`` is odd, the two middle
    ones when it is even (a 4-unit axis has no single centre: 1 and 2 are equally central)."""
    return (n // 2,) if n % 2 else (n // 2 - 1, n // 2)


def centre_note(grid: tuple[int, int]) -> str:
    """``centre of a 4x4 grid: units (1,1)..(2,2); shown (2,2)``: which unit the views open at."""
    rows, cols = centre_span(grid[0]), centre_span(grid[1])
    shown = f"({grid[0] // 2},{grid[1] // 2})"
    if len(rows) == len(cols) == 1:
        return f"centre of a {grid[0]}x{grid[1]} grid: unit {shown}"
    return f"centre of a {grid[0]}x{grid[1]} grid: units ({rows[0]},{cols[0]})..({rows[-1]},{cols[-1]}); shown {shown}"


def _label_size() -> float:
    """The axis-label font size in points: no title of these figures is smaller."""
    return FontProperties(size=plt.rcParams["axes.labelsize"]).get_size_in_points()


def draw_rf_window(image: torch.Tensor, row, unit: Optional[tuple[int, int]] = None, ax=None):
    """Draw ``image`` (1, H, W, normalised) with the input window one unit of ``row`` sees.

    The axes keep the image's frame at every unit: a window reaching into the padding is
    cut at the image's edge (its full extent is in the title), so the digit never shifts.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6))
    img = denormalize(image.unsqueeze(0))[0, 0].cpu().numpy()
    h, w = img.shape
    grid = row.geometry.grid_hw
    unit = tuple(unit) if unit is not None else row.geometry.center_unit()
    win = row.window(unit)
    seen = win.clip(h, w)
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    # the full window (dashed; may reach into padding, cut at the frame) and the part inside the image
    ax.add_patch(Rectangle((win.left - 0.5, win.top - 0.5), win.width, win.height,
                           fill=False, ec="tab:orange", ls="--", lw=1.2))
    ax.add_patch(Rectangle((seen.left - 0.5, seen.top - 0.5), seen.width, seen.height,
                           fill=True, fc=(1.0, 0.5, 0.0, 0.25), ec="tab:orange", lw=2))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    lines = [row.layer, f"RF {row.rf}, jump {row.jump}", f"unit ({unit[0]},{unit[1]}) of {grid[0]}x{grid[1]}"]
    if grid == (1, 1):
        lines[2] = "the only unit (1x1 grid)"
    elif len(centre_span(grid[0])) * len(centre_span(grid[1])) > 1 and unit == row.geometry.center_unit():
        rows, cols = centre_span(grid[0]), centre_span(grid[1])
        lines.append(f"centre: ({rows[0]},{cols[0]})..({rows[-1]},{cols[-1]})")
    pad = max(-win.top, -win.left, win.bottom - (h - 1), win.right - (w - 1), 0)
    if pad and grid != (1, 1):
        lines.append(f"window {pad} px into the padding")
    ax.set_title("\n".join(lines), fontsize=_label_size())
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


# A notebook at 100% shows a figure this wide (inches at 100 dpi) without scaling it down;
# wider ones shrink every letter with them.
PAGE_WIDTH_IN = 9.0


def rf_gallery(model, image: torch.Tensor, input_size=(1, 28, 28), every: int = 1,
               per_row: int = 4) -> plt.Figure:
    """One panel per conv/pool layer: the window its central unit sees on ``image``.

    At most ``per_row`` panels a row, the figure no wider than :data:`PAGE_WIDTH_IN`, so a
    notebook shows it at full size and its titles stay as large as axis labels however deep
    the model.
    """
    rows = rf_rows(model, input_size)[::every]
    ncols = min(per_row, len(rows))
    nrows = -(-len(rows) // ncols)
    side = min(2.4, PAGE_WIDTH_IN / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols, (side + 0.8) * nrows), squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for row, ax in zip(rows, axes.flat):
        draw_rf_window(image, row, ax=ax)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- widget plumbing


def figure_png(fig: Figure, footer: str = "") -> bytes:
    """``fig`` as PNG bytes (100 dpi, tight), with ``footer`` written under it if given."""
    if footer:  # just under the lowest drawing, not the figure's edge (a square image leaves a margin)
        fig.draw_without_rendering()
        bottom = min(ax.get_tightbbox().y0 for ax in fig.axes) / fig.bbox.height
        fig.text(0.5, bottom - 0.02, footer, ha="center", va="top", fontsize=_label_size(), style="italic",
                 color="0.3")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


@dataclass
class Interactive:
    """What a widget function returns: its controls (for code and tests) and the view.

    Its text form is the one-line note, so a cell that ends with the call shows that line,
    never the widget tree. ``draws`` counts the figures drawn since it opened.
    """

    note: str
    box: Any
    controls: dict
    view: Any = None
    draws: int = 0
    render: Optional[Callable[[], Figure]] = field(default=None, repr=False)

    def __repr__(self) -> str:
        return self.note

    def redraw(self) -> Figure:
        """Draw the current state once and replace the view's PNG in one message."""
        fig = self.render()
        self.view.value = figure_png(fig)
        self.draws += 1
        return fig

    def show(self, fig: Figure) -> None:
        """Display the live widget, with ``fig`` (its current view) and the note for viewers
        without a kernel.

        One output, three forms: a frontend with a kernel renders the widget view; GitHub,
        nbviewer and exports without widget state fall back to the PNG; a terminal to the note.
        """
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is None:  # a plain script: no frontend to show anything in
            print(self.note)
            return
        static = figure_png(fig, footer=self.note)
        display({"application/vnd.jupyter.widget-view+json":
                 {"version_major": 2, "version_minor": 0, "model_id": self.box.model_id},
                 "image/png": base64.b64encode(static).decode("ascii"),
                 "text/plain": self.note}, raw=True)


def _open(note: str, box, controls: dict, view, render: Callable[[], Figure]) -> Interactive:
    tool = Interactive(note, box, controls, view, render=render)
    tool.show(tool.redraw())
    return tool


# ----------------------------------------------------------------------------- the RF explorer


def _start_layer(rows) -> int:
    """A middle conv whose grid has more than one unit, so the unit sliders move."""
    convs = [i for i, r in enumerate(rows) if r.type == "Conv2d" and r.geometry.grid_hw != (1, 1)]
    return convs[len(convs) // 2] if convs else 0


def rf_explorer(model, images: torch.Tensor, input_size=(1, 28, 28)) -> Interactive:
    """Pick a layer, a unit and a digit; see the input window that unit sees.

    ``images``: a few normalised (N, 1, H, W) digits (e.g. the first test batch). Every
    user action draws exactly once: a layer change moves the unit sliders to the new
    grid's centre while their observers are held, then draws.
    """
    import ipywidgets as W

    rows = rf_rows(model, input_size)
    layer = W.Dropdown(options=[(f"{r.layer}: {r.geometry.grid_hw[0]}x{r.geometry.grid_hw[1]} units, RF {r.rf}", i)
                                for i, r in enumerate(rows)],
                       value=_start_layer(rows), description="layer", layout=W.Layout(width="420px"))
    digit = W.IntSlider(value=0, min=0, max=len(images) - 1, description="digit")
    unit_row = W.IntSlider(description="unit row")
    unit_col = W.IntSlider(description="unit col")
    note = W.Label()
    view = W.Image(format="png")
    syncing = [False]

    def render() -> Figure:
        fig = Figure(figsize=(4, 4.6))
        draw_rf_window(images[digit.value], rows[layer.value], (unit_row.value, unit_col.value), fig.subplots())
        return fig

    def sync_units() -> None:
        geometry = rows[layer.value].geometry
        (gh, gw), (ch, cw) = geometry.grid_hw, geometry.center_unit()
        syncing[0] = True
        try:
            unit_row.max, unit_col.max = gh - 1, gw - 1
            unit_row.value, unit_col.value = ch, cw
        finally:
            syncing[0] = False
        single = (gh, gw) == (1, 1)
        unit_row.disabled = unit_col.disabled = single
        whole = geometry.window().clip(*input_size[1:]) == Window(0, 0, input_size[1] - 1, input_size[2] - 1)
        note.value = (f"a 1x1 grid has one unit, so the unit sliders are off; it sees "
                      f"{'the whole input' if whole else 'the window shown'}" if single else centre_note((gh, gw)))

    def on_layer(_change) -> None:
        sync_units()
        tool.redraw()

    def on_control(_change) -> None:
        if not syncing[0]:
            tool.redraw()

    sync_units()
    box = W.VBox([layer, W.HBox([digit, unit_row, unit_col]), note, view])
    tool = _open("RF explorer (interactive when the notebook runs: pick a layer, a unit and a digit)", box,
                 {"layer": layer, "digit": digit, "unit_row": unit_row, "unit_col": unit_col, "note": note},
                 view, render)
    layer.observe(on_layer, names="value")
    for w in (digit, unit_row, unit_col):
        w.observe(on_control, names="value")
    return tool


# ----------------------------------------------------------------------------- misclassified images


def draw_prediction(image: torch.Tensor, target: int, pred: int, prob: torch.Tensor,
                    class_names: Optional[Sequence[str]] = None, mean=(MNIST_MEAN,), std=(MNIST_STD,),
                    fig: Optional[Figure] = None) -> plt.Figure:
    """A misclassified (normalised) image beside the model's class probabilities (drawn
    into ``fig`` if given, else into a new pyplot figure)."""
    names = list(class_names) if class_names else [str(i) for i in range(len(prob))]
    fig = fig if fig is not None else plt.figure(figsize=(7, 2.8))
    ax_img, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    img = denormalize(image.unsqueeze(0), mean, std)[0]
    if img.shape[0] == 1:
        ax_img.imshow(img[0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax_img.imshow(img.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    ax_img.set_title(f"pred {names[pred]} / true {names[target]}")
    ax_img.axis("off")
    colors = ["tab:red" if i == pred else "tab:green" if i == target else "tab:gray" for i in range(len(prob))]
    ax_bar.bar(range(len(prob)), prob.cpu().numpy(), color=colors)
    ax_bar.set_xticks(range(len(prob)))
    ax_bar.set_xticklabels(names, rotation=45 if class_names else 0, fontsize=8)
    ax_bar.set(ylim=(0, 1), ylabel="probability", title="red: predicted, green: true")
    fig.tight_layout()
    return fig


def misclassified_browser(model, loader, class_names=None, device=None, mean=(MNIST_MEAN,),
                          std=(MNIST_STD,)) -> Interactive:
    """Step through every misclassified test image with the model's probabilities.

    The slider counts from 1, as a reader does: "3 of 370".
    """
    import ipywidgets as W

    x, y, p, prob = misclassified(model, loader, device)
    if len(x) == 0:
        note = "No misclassified images."
        print(note)
        return Interactive(note, W.VBox([W.Label(note)]), {})
    index = W.IntSlider(value=1, min=1, max=len(x), description="image")
    view = W.Image(format="png")

    def render() -> Figure:
        i = index.value - 1
        return draw_prediction(x[i], int(y[i]), int(p[i]), prob[i], class_names, mean, std,
                               fig=Figure(figsize=(7, 2.8)))

    box = W.VBox([W.HBox([index, W.Label(f"of {len(x)} misclassified")]), view])
    tool = _open(f"Misclassified browser (interactive when the notebook runs: step through all {len(x)})",
                 box, {"index": index}, view, render)
    index.observe(lambda _change: tool.redraw(), names="value")
    return tool
