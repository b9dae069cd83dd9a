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
# # 03 · BatchNorm
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/03_batchnorm.ipynb)
#
# ## Target
# - One idea: **BatchNorm** after every conv but the last (convs before BN drop their bias).
# - It brings a second change with it: BN sets the scale of every layer itself, so the **He initialisation** 01-02 needed is dropped and the convs keep PyTorch's default init. An ablation below trains the same network with and without He init, from three seeds, to measure what that second change does.
# - Expect faster, steadier training and higher accuracy at the same size.
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
from eva_utils import engine, plots, recipes, report, widgets
from eva_utils.summary import summary

device = eva_utils.start()  # figures inline, the Results slot above, the clock, and where this runs

# %% [markdown]
# ## Analysis
# - **BatchNorm makes it train fast.** For almost the same parameter count as 02 (9,566: BatchNorm adds two parameters per channel and the convs lose their biases), the first epoch already reaches 98.11% test accuracy, and the best is 99.22% (epoch 15), half a point above 02's 98.74% and above 01's 99.15% with a quarter of its parameters (step table).
# - **Dropping He initialisation helped.** With BatchNorm setting each layer's scale, PyTorch's default init did better on every seed (init table): a mean best test accuracy of 99.23% over seeds 1-3 against 99.02% with He init, and mean last-3 accuracies of 99.09-99.11% against 98.93-98.95%. Each seed's best is higher with the default init.
# - **Now it over-fits.** Train accuracy climbs to 99.73% while test accuracy moves between 98.83% and 99.10% from epoch 4 to 14 and ends at 99.22%: the last-epoch gap is +0.51 points (Results), and +0.60 on average over the three seeds (init table). Many of the misclassified digits below are badly written, but several are ordinary digits a person reads at once.
# - **Still too big** for the target (over 8,000 parameters), and 3,610 of them sit in the 6x6 head (`head2` in the summary).
# - **Next (04):** replace the 6x6 head by global average pooling, spend the freed weights where the digit's parts are recognised, and regularise (dropout) to close the gap.

# %% [markdown]
# ## Where BatchNorm sits
# The course's block, as 01 showed it: with `bn=True` a `BatchNorm2d` follows the convolution, and the convolution loses its bias.

# %%
from eva_utils.models import check_input


def conv_block(in_ch: int, out_ch: int, kernel: int = 3, padding: int = 0, *,
               bn: bool = False, dropout: float = 0.0, relu: bool = True) -> nn.Sequential:
    """Conv -> (BatchNorm) -> ReLU -> (Dropout). A conv followed by BN needs no bias."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, padding=padding, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(out_ch))
    if relu:
        layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)

# %% [markdown]
# ## The model
# 02's network with `bn=True` in every block but the last conv. Edit it here; a test checks it equals `eva_utils.models.BatchNormNet`.

# %%
class BatchNormNet(nn.Module):
    """Step 3: 02's network with BatchNorm after every conv but the last (``bn=True``).

    BatchNorm re-scales every layer's output itself, so the He initialisation that 01
    and 02 needed is dropped (PyTorch's default init is fine here).
    """

    def __init__(self):
        super().__init__()
        # Block 1
        self.conv1 = conv_block(1, 8, bn=True)            # 28 -> 26 | RF 3
        self.conv2 = conv_block(8, 16, bn=True)           # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                   # 24 -> 12 | RF 6
        self.trans1 = conv_block(16, 8, kernel=1, bn=True)  # 12 -> 12 | RF 6
        # Block 2
        self.conv3 = conv_block(8, 12, bn=True)           # 12 -> 10 | RF 10
        self.conv4 = conv_block(12, 16, bn=True)          # 10 -> 8  | RF 14
        self.conv5 = conv_block(16, 12, bn=True)          # 8 -> 6   | RF 18
        # Head: the last conv has no BatchNorm (its outputs are the class scores)
        self.head1 = conv_block(12, 10, kernel=1, bn=True)  # 6 -> 6   | RF 18
        self.head2 = nn.Conv2d(10, 10, 6)                 # 6 -> 1   | RF 28

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.conv4(self.conv3(x)))
        x = self.head2(self.head1(x))
        return F.log_softmax(x.flatten(1), dim=1)

# %% tags=["nbval-check-output"]
SEED = 1
engine.seed_everything(SEED)  # before the weights are drawn
model = BatchNormNet()
print(f"{engine.count_parameters(model):,} parameters")

# %% [markdown]
# The summary follows the real forward pass; the **RF** column is each layer's receptive field in input pixels and **Jump** the input pixels between neighbouring output units.

# %% tags=["nbval-check-output"]
summary(model, (1, 28, 28))

# %% [markdown]
# ## Training
# The recipe holds everything but the seed. `recipes.run` is the package's one training path (the command line uses it too: `python -m eva_utils train --recipe batchnorm --seed 1` repeats this run); it calls `engine.fit`, the plain PyTorch loop that 01 writes out, plus a progress bar and one plain-text line per epoch.

# %%
recipe = recipes.get_recipe("batchnorm")
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
# ## Against 01 and 02
# The earlier steps' runs (from `results/` if you ran them in this folder, else the course's reference runs that ship with `eva_utils`) beside this one.

# %%
Markdown(report.steps_markdown(report.step_rows(["01_skeleton", "02_lighter"], {"03_batchnorm (this run)": history})))

# %% [markdown]
# ## Ablation: does BatchNorm still need He initialisation?
# This step changed two things: it added BatchNorm, and it left the convs with PyTorch's default init instead of 01-02's He init. To measure the second, the same network and recipe train again with `he_init(model)` applied right after it is built, and both versions run from seeds 1, 2 and 3 (seed 1 with the default init is the run above). The table gives each seed's best and last 3 test accuracies, then the mean over the three seeds (the last 3 averaged epoch by epoch). Five more runs of 15 epochs: this cell takes about five times as long as the training above.

# %%
from eva_utils.models import he_init


def train_seed(seed: int, he: bool):
    """One more run of this recipe, a fresh BatchNormNet from ``seed`` (He init on top if ``he``),
    trained exactly as above but quietly and without saving: an ablation, not the step's run."""
    engine.seed_everything(seed)  # before the weights are drawn
    net = BatchNormNet()
    if he:
        he_init(net)
    return recipes.run(recipe, seed, model=net, device=device, settings=settings,
                       progress=False, verbose=False, save=False).history


SEEDS = (1, 2, 3)
init_runs = {"default init": {SEED: history}, "He init": {}}
for seed in SEEDS:
    if seed != SEED:
        init_runs["default init"][seed] = train_seed(seed, he=False)
    init_runs["He init"][seed] = train_seed(seed, he=True)

Markdown(report.compare_markdown(
    {f"{init}, seed {seed}": h for init, runs in init_runs.items() for seed, h in runs.items()},
    means={f"{init}, mean of seeds {SEEDS[0]}-{SEEDS[-1]}": runs.values() for init, runs in init_runs.items()}))

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
# 1. Set `bn=False` for `conv1` and `conv2` only: the parameter count falls by 24 (their BatchNorm layers' 48 parameters go, their 24 biases come back), to 9,542. Expect it still to train from the first epoch, since the BatchNorm layers from `trans1` on still set the scale of everything after them; the first epochs' test lines, next to this run's, show what the two BatchNorm layers bought at the start.
# 2. Train with `recipe = recipe.with_(lr=0.05)` (as in 02's Try this) and compare: with BatchNorm the larger LR should still train smoothly.
# 3. Add up the BatchNorm rows of the summary (2 parameters per channel): expect 164, under 2% of the 9,566.
