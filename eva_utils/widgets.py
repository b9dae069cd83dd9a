"""Interactive tools for the notebooks, built on ipywidgets' 7.x API.

Colab ships ipywidgets 7.7, so only widgets and calls that exist there are used
(Dropdown, IntSlider, Output, HBox/VBox, ``observe``). Each widget is built from a
plain function that draws one static figure; the notebooks show that figure too, so
a reader without a live kernel (GitHub, nbval in CI) still sees the idea.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from .data import MNIST_MEAN, MNIST_STD
from .plots import denormalize, misclassified
from .rf import rf_table


def spatial_rows(model, input_size=(1, 28, 28)):
    """The RF rows whose output is still a feature map (so a unit has a window)."""
    return [r for r in rf_table(model, input_size) if len(r.output_shape) == 4]


def draw_rf_window(image: torch.Tensor, row, unit: Optional[tuple[int, int]] = None, ax=None):
    """Draw ``image`` (1, H, W, normalised) with the input window one unit of ``row`` sees."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6))
    img = denormalize(image.unsqueeze(0))[0, 0].cpu().numpy()
    h, w = img.shape
    grid = row.geometry.grid_hw
    unit = unit or row.geometry.center_unit()
    win = row.window(unit)
    seen = win.clip(h, w)
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    # the full window (dashed; may reach into padding) and the part inside the image
    ax.add_patch(Rectangle((win.left - 0.5, win.top - 0.5), win.width, win.height,
                           fill=False, ec="tab:orange", ls="--", lw=1.2))
    ax.add_patch(Rectangle((seen.left - 0.5, seen.top - 0.5), seen.width, seen.height,
                           fill=True, fc=(1.0, 0.5, 0.0, 0.25), ec="tab:orange", lw=2))
    ax.set_xlim(min(-0.5, win.left - 1), max(w - 0.5, win.right + 1))
    ax.set_ylim(max(h - 0.5, win.bottom + 1), min(-0.5, win.top - 1))
    ax.set_title(f"{row.layer} ({row.module})\nunit {unit} of {grid[0]}x{grid[1]}: RF {row.rf}, jump {row.jump}",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def rf_gallery(model, image: torch.Tensor, input_size=(1, 28, 28), every: int = 1,
               per_row: int = 5) -> plt.Figure:
    """One panel per conv/pool layer: the window its central unit sees on ``image``.

    At most ``per_row`` panels a row, each 2.6 inches wide, so the titles stay readable
    however deep the model (a single row of 13 panels is shrunk to a few pixels a letter).
    """
    rows = [r for r in spatial_rows(model, input_size) if r.type in ("Conv2d", "MaxPool2d", "AvgPool2d",
                                                                      "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")]
    rows = rows[::every]
    ncols = min(per_row, len(rows))
    nrows = -(-len(rows) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for row, ax in zip(rows, axes.flat):
        draw_rf_window(image, row, ax=ax)
    fig.tight_layout()
    return fig


def rf_explorer(model, images: torch.Tensor, input_size=(1, 28, 28)):
    """Pick a layer, a unit and a digit; see the input window that unit sees.

    ``images``: a few normalised (N, 1, H, W) digits (e.g. the first test batch).
    """
    import ipywidgets as W
    from IPython.display import display

    rows = spatial_rows(model, input_size)
    layer = W.Dropdown(options=[(f"{r.layer}  [{r.module}]  out {r.output_shape[2]}x{r.output_shape[3]}, "
                                 f"RF {r.rf}", i) for i, r in enumerate(rows)],
                       value=len(rows) // 2, description="layer", layout=W.Layout(width="420px"))
    # opens at a middle layer: the last one's window is the whole digit, which shows nothing
    digit = W.IntSlider(value=0, min=0, max=len(images) - 1, description="digit")
    unit_row = W.IntSlider(description="unit row")
    unit_col = W.IntSlider(description="unit col")
    out = W.Output()

    def sync_units(*_):
        gh, gw = rows[layer.value].geometry.grid_hw
        ch, cw = rows[layer.value].geometry.center_unit()
        unit_row.max, unit_col.max = gh - 1, gw - 1
        unit_row.value, unit_col.value = ch, cw

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4, 4))
            draw_rf_window(images[digit.value], rows[layer.value], (unit_row.value, unit_col.value), ax)
            plt.show()
            plt.close(fig)

    sync_units()
    layer.observe(lambda change: (sync_units(), redraw()), names="value")
    for w in (digit, unit_row, unit_col):
        w.observe(redraw, names="value")
    redraw()
    box = W.VBox([layer, W.HBox([digit, unit_row, unit_col]), out])
    display(box)
    return box


def draw_prediction(image: torch.Tensor, target: int, pred: int, prob: torch.Tensor,
                    class_names: Optional[Sequence[str]] = None, mean=(MNIST_MEAN,), std=(MNIST_STD,)) -> plt.Figure:
    """A misclassified (normalised) image beside the model's class probabilities."""
    names = list(class_names) if class_names else [str(i) for i in range(len(prob))]
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(7, 2.8), gridspec_kw={"width_ratios": [1, 1.6]})
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


def misclassified_browser(model, loader, class_names=None, device=None, mean=(MNIST_MEAN,), std=(MNIST_STD,)):
    """Step through every misclassified test image with the model's probabilities."""
    import ipywidgets as W
    from IPython.display import display

    x, y, p, prob = misclassified(model, loader, device)
    out = W.Output()
    if len(x) == 0:
        box = W.VBox([W.Label("No misclassified images.")])
        display(box)
        return box
    index = W.IntSlider(value=0, min=0, max=len(x) - 1, description=f"of {len(x)}")

    def redraw(*_):
        i = index.value
        with out:
            out.clear_output(wait=True)
            fig = draw_prediction(x[i], int(y[i]), int(p[i]), prob[i], class_names, mean, std)
            plt.show()
            plt.close(fig)

    index.observe(redraw, names="value")
    redraw()
    box = W.VBox([index, out])
    display(box)
    return box
