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
# # 02 · Lighter: the same structure under 10k parameters
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/02_lighter.ipynb)
#
# ## Target
# - Keep 01's structure, cut the channels: **under 10,000 parameters**.
# - See how much accuracy the skeleton's 42k parameters were really buying.
#
# ## Results
# Measured by this notebook's own run: the table under the next cell is filled in by the last cell from the run's history (nothing here is typed).

# %%
# On Colab, install the course package (the version these outputs were made with); locally, use the installed one.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "eva-utils @ git+https://github.com/eva-course/small-cnns.git@v0.2.0"], check=True)

import torch.nn as nn
import torch.nn.functional as F

from IPython.display import Markdown

import eva_utils
from eva_utils import engine, plots, recipes, report
from eva_utils.summary import summary

device = eva_utils.start()  # figures inline, the Results slot above, the clock, and where this runs

# %% [markdown]
# ## Analysis
# - **A quarter of the parameters, most of the accuracy.** The same structure with 8-16 channels (9,484 parameters against 01's 41,972) still learns the task: 96.37% after the first epoch, a best of 98.74%, about four tenths of a point below 01's 99.15% (step table).
# - **Still learning at the end, and noisy.** The best test accuracy is the last epoch's, and on the way test accuracy jumps up and down by several tenths from one epoch to the next (97.65% at epoch 9, between 98.62% and 98.52%): the small plain network is hard to optimise at this learning rate.
# - **It still over-fits a little:** train accuracy reaches 99.15% (epoch 14), and the last epoch's gap is +0.39 points (Results).
# - **Next (03):** keep the size and make optimisation easier with **BatchNorm** after every conv, which should make training faster and steadier.

# %% [markdown]
# ## The model
# Same blocks, transition and head as 01, with 8-16 channels instead of 16-64 (`conv_block`, `he_init` and `check_input` are the ones 01 showed, from `eva_utils.models`). Edit it here; a test checks it equals `eva_utils.models.Lighter`, which the command line trains.

# %%
from eva_utils.models import check_input, conv_block, he_init


class Lighter(nn.Module):
    """Step 2: the skeleton's structure with few channels (under 10k params)."""

    def __init__(self):
        super().__init__()
        # Block 1
        self.conv1 = conv_block(1, 8)                     # 28 -> 26 | RF 3
        self.conv2 = conv_block(8, 16)                    # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                   # 24 -> 12 | RF 6
        self.trans1 = conv_block(16, 8, kernel=1)         # 12 -> 12 | RF 6
        # Block 2
        self.conv3 = conv_block(8, 12)                    # 12 -> 10 | RF 10
        self.conv4 = conv_block(12, 16)                   # 10 -> 8  | RF 14
        self.conv5 = conv_block(16, 12)                   # 8 -> 6   | RF 18
        # Head
        self.head1 = conv_block(12, 10, kernel=1)         # 6 -> 6   | RF 18
        self.head2 = nn.Conv2d(10, 10, 6)                 # 6 -> 1   | RF 28
        he_init(self)  # no BatchNorm: start with well-scaled weights

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.conv4(self.conv3(x)))
        x = self.head2(self.head1(x))
        return F.log_softmax(x.flatten(1), dim=1)

# %% [markdown]
# 01's network, for comparison (built before the seed is set below, so this run's weights do not depend on it):

# %%
from eva_utils.models import Skeleton

print(f"01's Skeleton: {engine.count_parameters(Skeleton()):,} parameters")

# %% tags=["nbval-check-output"]
SEED = 1
engine.seed_everything(SEED)  # before the weights are drawn
model = Lighter()
print(f"{engine.count_parameters(model):,} parameters")

# %% [markdown]
# The summary follows the real forward pass; the **RF** column is each layer's receptive field in input pixels and **Jump** the input pixels between neighbouring output units.

# %% tags=["nbval-check-output"]
summary(model, (1, 28, 28))

# %% [markdown]
# ## Training
# The recipe holds everything but the seed. `recipes.run` is the package's one training path (the command line uses it too: `python -m eva_utils train --recipe lighter --seed 1` repeats this run); it calls `engine.fit`, the plain PyTorch loop that 01 writes out, plus a progress bar and one plain-text line per epoch.

# %%
recipe = recipes.get_recipe("lighter")
settings = recipe.run_settings()  # a full run; EVA_SMOKE=1 (CI only) makes it a quick one
recipe

# %%
# a full run records its device and keeps its history as results/<step>.json, for later notebooks
run = recipes.run(recipe, SEED, model=model, device=device, settings=settings)
history, loaders = run.history, run.loaders

# %% [markdown]
# ## Curves
# Loss and accuracy per epoch; the right panel zooms in on the top of the range, with the course's 99.4% line (where the zoom would leave points out, a middle panel shows every epoch).

# %%
plots.plot_history(history, recipe.name);

# %% [markdown]
# ## Against 01
# 01's run (from `results/` if you ran 01 in this folder, else the course's reference run that ships with `eva_utils`) beside this one.

# %%
Markdown(report.steps_markdown(report.step_rows(["01_skeleton"], {"02_lighter (this run)": history})))

# %% [markdown]
# ## Results
# Rendered from `history`; the same table fills the slot at the top.

# %%
report.show_results(history, f"Results: {recipe.name}", quick=settings.quick);

# %% [markdown]
# ## Try this
# 1. Widen only `conv5` to 16 output channels (`conv_block(16, 16)`, and `head1` then takes 16): expect 620 more parameters, 10,104 in all, over the budget (the summary shows where: `conv5`'s 3x3 grows by 580 and `head1`'s 1x1 by 40). Compare the last epochs' test accuracy with this run's: test accuracy here moves by several tenths from one epoch to the next, so one seed will not show what the extra parameters buy.
# 2. Train with `recipe = recipe.with_(lr=0.05)`, five times this run's LR, and compare the epoch lines with this run's. Expect it to train: He initialisation keeps each layer's scale, so the loss falls within the first epoch as it does here; whether the larger steps end higher or lower than this run's is for the epoch lines to show, and one seed's difference of a few tenths is within the noise noted above. Try the same LR again in 03, where BatchNorm sets each layer's scale.
# 3. Find the 6x6 head (`head2`) in the summary: its 3,610 parameters make it the single largest layer, over a third of the network; 04 removes it.
