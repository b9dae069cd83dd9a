# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Stretch: under 3,600 parameters, 99.4% by epoch 6
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/07_stretch.ipynb)
#
# ## Target
# - A bonus target: **< 3,600 parameters** (under half of the course's 8,000 budget) reaching **>= 99.40% test accuracy at epoch 6 or earlier** and holding it through the last epoch, for seeds 1, 2 and 3, reproducible from the command line (`python -m eva_utils train --model stretch --seed N`).
# - Anything a small network can use is fair (schedules, weight averaging, augmentation, depthwise-separable convolutions, channel budgets), but **nothing is tuned on the test set**: every choice is made on a validation split, the last 10,000 of the 60,000 training images, and the test set is only used to report.
# - An ablation (what each choice bought in test accuracy at epoch 6) and, whatever the verdict, the measured frontier: accuracy at epoch 6 for budgets of about 2k, 3k, 3.6k, 5k and 8k parameters.
#
# ## Results
# Measured by this notebook's own run: the table under the next cell is filled in by the last cell from the run's history (nothing here is typed).

# %%
# On Colab, install the course package (the version these outputs were made with); locally, use the installed one.
import sys
if "google.colab" in sys.modules:
    # !pip install -q "eva-utils @ git+https://github.com/eva-course/small-cnns.git@v0.2.0"

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from IPython.display import Markdown

from eva_utils import engine, models, plots, recipes, report, widgets
from eva_utils.summary import summary

NOTEBOOK_START = report.start_notebook()  # figures inline, the Results slot above, the clock

# %% [markdown]
# ## Analysis
# - **The target is not met.** Trained on all 60,000 images, the chosen 3,332-parameter model ends epoch 6 at 99.30%, 99.28% and 99.22% for seeds 1, 2 and 3 (seeds table): 0.10 to 0.18 points short of 99.40%, and no seed reaches it earlier. What the notebook gives instead is the measured frontier (below).
# - **The frontier (seed 1, test set) crosses 99.40% at epoch 6 between the ~3.6k and ~5k rows** (99.19% and 99.42%; ~8k reaches 99.51%). It is not even monotone below that: ~3k (99.25%) is ahead of ~3.6k, a reminder that one seed's tenth of a point is noise here.
# - **What limits it is capacity within 6 epochs, not over-fitting.** At the last epoch train accuracy (on rotated batches) is 0.20 points *below* test (Results), and the curves are still rising at epoch 6. The regularisers in the validation table (shifts and zoom, label smoothing) cost 0.11-0.16 points on validation.
# - **On validation, no single change moved the model by more than the seed spread.** The best row, "+ EMA of the weights", beat the start by 0.05 points; the chosen recipe spans 99.22-99.30% on the test set across three seeds. The only row clearly outside that band is the plain-3x3 network, 0.31 points worse on validation: depthwise-separable convolutions are what let 3.3k parameters afford 16 channels in the last three layers instead of 8. The test-set ablation (seed 1) disagrees with validation in detail: there "no rotation" is ahead (+0.11) and the plain network level with the start (+0.02). Separating differences of a tenth of a point would take several seeds per row.
# - **Weight averaging (EMA) helps most early.** On validation the EMA row is ahead of the start in every epoch, by most at the first (97.26% against 94.17%) and by 0.05 points at epoch 6, since OneCycle's long final anneal already averages the weights. For a target such as "99.4% by epoch 4 of 15", EMA would be the first thing to keep.
# - **Nothing here was tuned on the test set.** The recipe is the validation table's best row, and the CLI trains exactly that row: the cell after the table checks it (True), and `python -m eva_utils train --model stretch --seed N` reproduces the seeds table with one thread. The ablation and the frontier report test accuracy after the choice was made.

# %%
device = engine.pick_device()
print(report.run_header(device, recipes.quick_mode(), NOTEBOOK_START))

# %% [markdown]
# ## The model
# The course's structure (two plain 3x3s at full resolution, max-pool at RF 6, a second block, GAP) with the second block built from **depthwise-separable** 3x3s: a depthwise 3x3 (one filter per channel) then a 1x1 that mixes channels. Same RF growth as a plain 3x3 for a fraction of the weights, so the budget buys width where the digit's parts are recognised. Edit the classes here; a test checks they equal `eva_utils.models`' (`Stretch` is registered as `stretch`). `widths` sets the budget: the defaults are the start of the search below, whose rows and the frontier scale them.

# %%
from eva_utils.models import check_input, conv_block


class SeparableConv(nn.Sequential):
    """Depthwise-separable 3x3: a depthwise 3x3 (``groups = in_ch``: one 3x3 filter per channel,
    it only looks around) then a pointwise 1x1 (it only mixes channels), then BN + ReLU.

    Parameters: 9*C_in + C_in*C_out instead of 9*C_in*C_out for a plain 3x3 (BN aside); the
    RF grows exactly as for a plain 3x3 (by 2*d*jump with dilation d). As in Keras'
    ``SeparableConv2D`` (Xception) there is no BN/ReLU between the two: on a CPU the
    element-wise passes cost as much as the small convolutions themselves.
    ``padding`` defaults to ``dilation`` (the size is kept; halved with stride 2);
    ``padding=0`` shrinks the map by 2*dilation like the course's unpadded 3x3s.
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1, dilation: int = 1,
                 padding: Optional[int] = None):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=dilation if padding is None else padding,
                      dilation=dilation, groups=in_ch, bias=False),               # depthwise
            conv_block(in_ch, out_ch, kernel=1, bn=True),                        # pointwise, BN, ReLU
        )


class Stretch(nn.Module):
    """Bonus step (07): the course's structure under 3,600 parameters.

    Block 1 and the transition are 06's (plain 3x3s: with a single input channel a
    depthwise conv has nothing to save, and edges need full 3x3 filters). Block 2 is
    one plain 3x3 then three depthwise-separable 3x3s (:class:`SeparableConv`,
    unpadded), which grow the RF like plain 3x3s for a fraction of the weights, so
    the budget buys width where digits' parts are recognised.

    ``widths = (conv1, conv2, trans1, conv3, separable)`` sets the budget (the
    frontier of notebook 07 scales them); ``separable=False`` builds the last three
    layers as plain 3x3s instead (the ablation's comparison).
    """

    def __init__(self, widths=(8, 12, 8, 12, 16), separable: bool = True):
        super().__init__()
        self.widths, self.separable = tuple(widths), separable
        c1, c2, t, c3, s = widths

        def block(i, o):
            return SeparableConv(i, o, padding=0) if separable else conv_block(i, o, bn=True)

        # Block 1
        self.conv1 = conv_block(1, c1, bn=True)                       # 28 -> 26 | RF 3
        self.conv2 = conv_block(c1, c2, bn=True)                      # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                               # 24 -> 12 | RF 6
        self.trans1 = conv_block(c2, t, kernel=1, bn=True)            # 12 -> 12 | RF 6
        # Block 2: one plain 3x3, then depthwise-separable 3x3s
        self.conv3 = conv_block(t, c3, bn=True)                       # 12 -> 10 | RF 10
        self.sep4 = block(c3, s)                                      # 10 -> 8  | RF 14
        self.sep5 = block(s, s)                                       # 8 -> 6   | RF 18
        self.sep6 = block(s, s)                                       # 6 -> 4   | RF 22
        # Output: GAP over the 4x4 map, a 1x1 conv to the 10 classes
        self.gap = nn.AdaptiveAvgPool2d(1)                            # 4 -> 1   | RF 28
        self.head = nn.Conv2d(s, 10, 1, bias=False)                   # 1 -> 1   | RF 28

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.sep6(self.sep5(self.sep4(self.conv3(x))))
        x = self.head(self.gap(x))
        return F.log_softmax(x.flatten(1), dim=1)

# %% [markdown]
# With its default widths, the start of the search below (and the registered `stretch` model):

# %%
# NBVAL_CHECK_OUTPUT
SEED = 1
engine.seed_everything(SEED)
model = Stretch()  # the registered model: models.build("stretch") builds the same
print(f"widths {model.widths}, separable {model.separable}: {engine.count_parameters(model):,} parameters")

# %% [markdown]
# The summary follows the real forward pass; **RF** is each layer's receptive field in input pixels, **Jump** the input pixels between neighbouring output units.

# %%
# NBVAL_CHECK_OUTPUT
summary(model, (1, 28, 28))

# %% [markdown]
# ## Choices, made on the validation split
# The search starts from 06's recipe as it was when this search ran (rotation alone, BatchNorm's running statistics: the elastic distortion and precise BN came later), run for 6 epochs (with a higher peak LR, since there are fewer steps to use it, and its cycle over all 6 epochs: no hold at the floor) on the model above with 16 separable channels. Each row changes one thing from that start and trains from seed 1 on the first 50,000 training images; its accuracy at epoch 6 is on the 10,000 held-out ones, never trained on and not the test set. The best row becomes the recipe (and the model widths) that the rest of the notebook trains.

# %%
settings = recipes.STRETCH_START.run_settings()  # full run; EVA_SMOKE=1 (CI only) makes it a quick one
print(recipes.STRETCH_TARGET)
variants = recipes.stretch_variants()
valid_rows = recipes.run_variants(variants, SEED, valid_size=10_000, device=device, settings=settings)
Markdown(report.variants_markdown(valid_rows, reference=recipes.STRETCH_START_NAME))

# %%
best = max(valid_rows, key=lambda r: r["acc"][-1])
recipe, model_kwargs = variants[best["name"]]
print(f"best on validation: {best['name']} ({best['acc'][-1]:.2f}% at epoch {len(best['acc'])})")
registered = models.build("stretch")
chosen = models.build("stretch", **model_kwargs)
print("the registered 'stretch' recipe and model (python -m eva_utils train --model stretch) are this row:",
      recipe == recipes.get_recipe("stretch") and (chosen.widths, chosen.separable) == (registered.widths, registered.separable))
recipe

# %% [markdown]
# ## Training, seed 1 (test set)
# The chosen recipe on all 60,000 training images, evaluated on the test set after every epoch.

# %%
engine.seed_everything(SEED)  # before the weights are drawn, as the command line does
run = recipes.run(recipe, SEED, model=Stretch(**model_kwargs), device=device, settings=settings)
model, history, loaders = run.model, run.history, run.loaders
history.meta["device_name"] = report.device_description(device)
report.save_history(history, recipe.name, quick=settings.quick)
print(recipes.target_report(history, target=recipes.STRETCH_TARGET)[1])

# %%
plots.plot_history(history, recipe.name);

# %%
plots.plot_lr(history);

# %% [markdown]
# ## Seeds 1, 2 and 3
# Each row is reproducible with `python -m eva_utils train --model stretch --seed N`.

# %%
seed_histories = {SEED: history}
for seed in (2, 3):
    print(f"--- seed {seed}")
    seed_histories[seed] = recipes.run(recipe, seed, device=device, settings=settings, progress=False,
                                       model_kwargs=model_kwargs).history
Markdown(report.seeds_markdown(seed_histories, target=recipes.STRETCH_TARGET))

# %% [markdown]
# ## Ablation: what each change bought, in test accuracy at epoch 6
# The same rows as the validation table, now trained on all 60,000 images and measured on the test set (seed 1); the chosen row is the seed-1 run above. This is reporting, not choosing: the choice was made on the validation table.

# %%
ablation_rows = recipes.run_variants({k: v for k, v in variants.items() if k != best["name"]}, SEED,
                                     device=device, settings=settings)
ablation_rows.append({"name": best["name"], "params": history.meta["params"], "acc": list(history.test_acc),
                      "split": "test", "history": history})
ablation_rows.sort(key=lambda r: list(variants).index(r["name"]))
Markdown(report.variants_markdown(ablation_rows, reference=recipes.STRETCH_START_NAME))

# %% [markdown]
# ## The frontier: accuracy at epoch 6 against size
# The chosen recipe and the same block structure with the channel widths scaled to about 2k, 3k, 3.6k, 5k and 8k parameters (seed 1, test set).

# %%
sizes = recipes.stretch_frontier()
frontier_rows = recipes.run_variants({name: (recipe, kwargs) for name, kwargs in sizes.items()}, SEED,
                                     device=device, settings=settings)
plots.plot_frontier(frontier_rows, epoch=settings.epochs, target_params=recipes.STRETCH_TARGET.params)
Markdown(report.variants_markdown(frontier_rows))

# %% [markdown]
# ## What it gets wrong
# A grid of misclassified test digits (predicted / true), then a browser to step through all of them with the model's probabilities.

# %%
plots.show_misclassified(model, loaders.test, n=24);

# %%
widgets.misclassified_browser(model, loaders.test);

# %% [markdown]
# ## Receptive field on a real digit
# Each panel shows the input window that the central unit of a layer sees (orange; dashed where it reaches into padding). The explorer below lets you pick any layer, unit and digit.

# %%
digits = next(iter(loaders.test))[0][:16].cpu()
widgets.rf_gallery(model, digits[0]);

# %%
widgets.rf_explorer(model, digits);

# %% [markdown]
# ## Results
# Rendered from seed 1's `history`; the same table fills the slot at the top.

# %%
report.show_results(history, f"Results: {recipe.name}", quick=settings.quick,
                     target_line=recipes.target_report(history, target=recipes.STRETCH_TARGET)[1]);

# %% [markdown]
# ## Try this
# 1. Build `Stretch(separable=False)` (plain 3x3s in block 2): the parameter count cell shows what the separable layers save, and the validation table's "plain 3x3s" row what it costs in accuracy.
# 2. Train the chosen recipe for 15 epochs instead of 6 (`recipe.with_(epochs=15)`): the curves should pass 99.40% in the later epochs, the course target's budget of epochs buying what 3.3k parameters cannot do in 6.
# 3. Move the max-pool one layer later (after a third 3x3 in block 1): the summary's RF column shows the pool at RF 7 instead of 6, and the parameter count what the extra layer costs.
