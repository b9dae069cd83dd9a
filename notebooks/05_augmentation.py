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
# # 05 · Augmentation: small rotations, gently bent digits
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/05_augmentation.ipynb)
#
# ## Target
# - One idea: regularise through the **data** instead of through noise in the network. Every training digit is turned by a **random angle in ±7°** (the course's `RandomRotation((-7, 7), fill=(1,))`) and bent by a **mild elastic distortion** (Simard et al., 2003: a random displacement field, smoothed so that neighbouring pixels move together; strength alpha 16, moves of about half a pixel), a new draw per image, both in one warp of the whole batch. Never flips: a mirrored 2 is not a 2.
# - The augmentation takes over from 04's dropout, so two things change: augmentation on, dropout off. Two ablation rows measure the parts: one keeps 04's dropout with the augmentation, one turns the digits without bending them.
# - The test set has slightly turned and differently drawn digits the training set lacks: the augmentation should lift test accuracy, while train accuracy drops because the task got harder.
#
# ## Results
# Measured by this notebook's own run: the table under the next cell is filled in by the last cell from the run's history (nothing here is typed).

# %%
# On Colab, install the course package (the version these outputs were made with); locally, use the installed one.
import sys
if "google.colab" in sys.modules:
    # !pip install -q "eva-utils @ git+https://github.com/eva-course/small-cnns.git@v0.2.0"

import torch
import torch.nn as nn
import torch.nn.functional as F

from IPython.display import Markdown

from eva_utils import data, engine, plots, recipes, report, widgets
from eva_utils.summary import summary

NOTEBOOK_START = report.start_notebook()  # figures inline, the Results slot above, the clock

# %% [markdown]
# ## Analysis
# - **Augmentation in place of dropout: the best test accuracy of the course so far.** With dropout off, ±7° rotations and the mild elastic distortion on, the best test accuracy is 99.44% at epoch 14 (04: 99.34%). The model is still regularised, now by the data: its turned and bent training digits are harder than the test digits, so train accuracy ends 0.88 points *below* test (98.51% against 99.39%; 04's dropout left it 1.12 below).
# - **What each part bought (ablation table, one seed each).** Keeping 04's dropout on top of the augmentation is too much for 7,972 parameters: train accuracy ends 2.58 points below test and the last 3 epochs are no higher (99.22-99.39%). Rotation alone, without the distortion, ends train and test level (gap +0.13 points), with a best of 99.34% at epoch 11 and a last epoch of 99.11%; with the distortion the best is 0.10 points higher and the last epoch 0.28. One seed on the test set does not choose between them: notebook 06 shows the six-seed comparison on a validation split that did.
# - **It does not settle.** At the constant learning rate of 0.01 the test line still jumps from one epoch to the next, by up to 0.29 points in the last six epochs (99.39% at epoch 10, 99.10% at epoch 11; curves), and the last 3 epochs hold 99.29%, 99.44% and 99.39%: the target asks for >= 99.40% in *each* of them (Results: NOT MET, 0.11 points short).
# - **Next (06):** change the **learning-rate schedule**: OneCycle warms up to a high LR (fast progress) and then anneals far below 0.01, so the last epochs settle into a minimum instead of bouncing around it.

# %%
device = engine.pick_device()
print(report.run_header(device, recipes.quick_mode(), NOTEBOOK_START))

# %% [markdown]
# ## The model
# 04's architecture, built with dropout 0. Edit it here; a test checks it equals `eva_utils.models.Regularized`.

# %%
from eva_utils.models import check_input, conv_block


class Regularized(nn.Module):
    """Step 4 (and the final model): global average pooling + dropout, under 8k params.

    GAP replaces the 6x6 head (3,600 weights). The budget it frees pays for a fourth
    3x3 in block 2 (RF 22 before GAP, on a 4x4 map), with channels that widen as the
    maps shrink (10 -> 18), where a digit's parts are recognised; block 1 and the
    transition are narrower than 03's (12 and 8 channels).
    """

    def __init__(self, dropout: float = 0.05):
        super().__init__()
        d = dropout
        # Block 1
        self.conv1 = conv_block(1, 8, bn=True, dropout=d)             # 28 -> 26 | RF 3
        self.conv2 = conv_block(8, 12, bn=True, dropout=d)            # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                               # 24 -> 12 | RF 6
        self.trans1 = conv_block(12, 8, kernel=1, bn=True)            # 12 -> 12 | RF 6
        # Block 2: four 3x3s, widening as the maps shrink
        self.conv3 = conv_block(8, 10, bn=True, dropout=d)            # 12 -> 10 | RF 10
        self.conv4 = conv_block(10, 14, bn=True, dropout=d)           # 10 -> 8  | RF 14
        self.conv5 = conv_block(14, 16, bn=True, dropout=d)           # 8 -> 6   | RF 18
        self.conv6 = conv_block(16, 18, bn=True, dropout=d)           # 6 -> 4   | RF 22
        # Output: GAP sees the whole 4x4 map, a 1x1 conv maps 18 channels to 10 classes
        self.gap = nn.AdaptiveAvgPool2d(1)                            # 4 -> 1   | RF 28
        self.head = nn.Conv2d(18, 10, 1, bias=False)                  # 1 -> 1   | RF 28

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv6(self.conv5(self.conv4(self.conv3(x))))
        x = self.head(self.gap(x))
        return F.log_softmax(x.flatten(1), dim=1)

# %%
# NBVAL_CHECK_OUTPUT
SEED = 1
engine.seed_everything(SEED)  # before the weights are drawn
model = Regularized(dropout=0.0)
print(f"{engine.count_parameters(model):,} parameters")

# %% [markdown]
# The summary follows the real forward pass; the **RF** column is each layer's receptive field in input pixels and **Jump** the input pixels between neighbouring output units.

# %%
# NBVAL_CHECK_OUTPUT
summary(model, (1, 28, 28))

# %% [markdown]
# ## Training
# The rotation and the distortion are drawn per image on the training batches only (never on the test images).
#
# The recipe holds everything but the seed. `recipes.run` is the package's one training path (the command line uses it too: `python -m eva_utils train --model augmentation --seed 1` repeats this run); it calls `engine.fit`, the loop above plus a progress bar and one plain-text line per epoch.

# %%
recipe = recipes.get_recipe("augmentation")
settings = recipe.run_settings()  # a full run; EVA_SMOKE=1 (CI only) makes it a quick one
recipe

# %%
run = recipes.run(recipe, SEED, model=model, device=device, settings=settings)
history, loaders = run.history, run.loaders
history.meta["device_name"] = report.device_description(device)
report.save_history(history, recipe.name, quick=settings.quick);  # results/<step>.json, for later notebooks

# %% [markdown]
# ## Curves
# Loss and accuracy per epoch; the right panel is zoomed to the top of the range, with the course's 99.4% line.

# %%
plots.plot_history(history, recipe.name);

# %% [markdown]
# ## The augmented digits
# Row 1: eight training digits; rows 2-5: four random draws of the same digits through the training loader's rotation and distortion.

# %%
plots.show_augmented(loaders.train, n=8, repeats=4);

# %% [markdown]
# ## Ablation: the dropout kept, the distortion left out
# The same recipe from the same seed, once on 04's network with its dropout (0.05) kept, once with rotation alone (`elastic=0`), against 04 (dropout, no augmentation) and the run above. One seed each, on the test set: this measures what each part did for this seed; it did not choose them (notebook 06 shows how the distortion was chosen, on a validation split).

# %%
ablation = {"04: dropout, no augmentation": report.load_history("04_regularizer")}
for label, (dropout, change) in {"rotation + distortion + dropout 0.05": (0.05, {}),
                                 "rotation alone, no dropout": (0.0, dict(elastic=0.0))}.items():
    engine.seed_everything(SEED)
    ablation[label] = recipes.run(recipe.with_(**change), SEED, model=Regularized(dropout=dropout), device=device,
                                  settings=settings, progress=False, verbose=False).history
ablation["rotation + distortion, no dropout (this run)"] = history
Markdown(report.compare_markdown(ablation))

# %%
plots.plot_gap(ablation);

# %% [markdown]
# ## What it gets wrong
# A grid of misclassified test digits (predicted / true), then a browser to step through all of them with the model's probabilities (evaluated in fp32, like the test line).

# %%
plots.show_misclassified(model, loaders.test, n=24);

# %%
widgets.misclassified_browser(model, loaders.test);

# %% [markdown]
# ## Results
# Rendered from `history`; the same table fills the slot at the top.

# %%
report.show_results(history, f"Results: {recipe.name}", quick=settings.quick);

# %% [markdown]
# ## Try this
# 1. Set `recipe = recipe.with_(rotation=15.0)` and re-run the training: expect train accuracy to fall further below test (the task gets harder than the test set needs).
# 2. Add shifts: `recipe.with_(translate=0.1)` moves digits by up to 3 pixels; look at the augmented digits cell first, then at the last epochs' test lines.
# 3. Look at the misclassified digits: count how many are turned more than ±7°; those are the ones a larger rotation range could still teach.
# 4. Bend harder: `recipe.with_(elastic=34.0)` is Simard et al.'s strength. Look at the augmented digits cell, then compare train accuracy with this run's: how much distortion can 7,972 parameters carry?
