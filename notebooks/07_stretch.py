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
# - A bonus target: **< 3,600 parameters** (under half of the course's 8,000 budget) reaching **>= 99.40% test accuracy at epoch 6 or earlier** and holding it through the last epoch, for every seed (seeds 1-5 here), reproducible from the command line (`python -m eva_utils train --recipe stretch --seed N`).
# - One idea: **depthwise-separable convolutions** (a depthwise 3x3 that only looks around, then a 1x1 that only mixes channels) for every 3x3 after the first, which lets 3.5k parameters afford 22-24 channels where plain 3x3s afford 8-12. The recipe is 06's, shortened to 6 epochs, with 05's augmentation and an average of the weights (EMA) evaluated.
# - **Nothing is tuned on the test set**: every choice was made on a validation split (the last 10,000 of the 60,000 training images) by the design runs shown below; the test set only reports. An ablation measures what each part bought, and the size/accuracy frontier shows where the target sits.
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

from typing import Optional

import torch.nn as nn
import torch.nn.functional as F

from IPython.display import Markdown

import eva_utils
from eva_utils import engine, plots, recipes, report, widgets
from eva_utils.summary import summary

device = eva_utils.start()  # figures inline, the Results slot above, the clock, and where this runs

# %% [markdown]
# ## Analysis
# - **The target is not met.** With 3,500 parameters, 2 of 5 seeds reach 99.40% by epoch 6 (seeds 2 and 3: 99.44% and 99.42%); seeds 1, 4 and 5 end at 99.34%, 99.27% and 99.38%. The mean is 99.37%, the spread 0.17 points (seeds table): the model sits just under the line, and which side a seed lands on is mostly luck.
# - **Where the line is crossed: the frontier.** Same layout and recipe, seed 1, epoch 6: ~2k and ~3k parameters end at 99.29% and 99.28%, 3.5k at 99.34%, ~5k at 99.48%, ~8k at 99.54%. In 6 epochs, 99.40% takes between 3.5k and 5k parameters here.
# - **What bought the most: the separable convolutions.** On validation (second round, seeds 1-3), every 3x3 after conv1 separable averages 99.31% against 99.24% for 07's first layout, where a plain 3x3 opens block 2; on the test set, plain 3x3s at the same budget end 0.07 points lower (ablation).
# - **Spending the same parameters differently did not move the level (third round).** One shared separable conv for block 2's last three 3x3s (36 channels) led seeds 1-2 (99.34% against 99.28%) but came out level over seeds 1-3 (mean -0.00 points, seed 3 0.13 lower). No row passed the rule, so the chosen row stays. The pool later, a head-less last conv, skips, weight decay, label smoothing, fp32 training, bilinear resampling, shifts and zoom were all lower on seeds 1-2.
# - **Augmentation still pays at 3.5k parameters.** Train accuracy on the turned and bent digits ends 0.96 points below test (Results): the model is short of capacity, not over-fitting. Yet without augmentation, or with rotation alone, validation drops to 99.11% and 99.07% against 99.28% (first round); stronger augmentation is lower too (99.17%, 99.15%).
# - **The EMA, precise BN and the schedule were not the limit.** The EMA raised the validation mean by 0.01 points; on test seed 1 the rows without the EMA or without precise BN both end at 99.35%, 0.01 above the chosen recipe (ablation). Batch 64 and a peak LR of 0.2 scored 99.28% and 99.24% against the base's 99.28% (first round).

# %% [markdown]
# ## The model
# The course's structure (3x3s at full resolution, max-pool at RF 6, a 1x1 that narrows, a second block, GAP), with every 3x3 after the first **depthwise-separable**: a depthwise 3x3 (one filter per channel) then a 1x1 that mixes channels. Same RF growth as a plain 3x3 for a fraction of the weights, so the budget buys width. Edit the classes here; a test checks they equal `eva_utils.models`' (`Stretch` is registered as `stretch`). `widths` sets the budget: the frontier below scales it; `separable=False` builds plain 3x3s instead (the ablation's comparison).

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

    Only the first layer is a plain 3x3 (with one input channel a depthwise conv has nothing
    to save, and edges need full 3x3 filters). Every 3x3 after it is depthwise-separable
    (:class:`SeparableConv`, unpadded): it grows the RF like a plain 3x3 for about a ninth of
    the weights, so 3.5k parameters buy 24 channels before the pool and 22 in block 2 where
    a plain network affords 8-12 (notebook 07's design runs chose this over a plain 3x3
    opening block 2, on the validation split).

    ``widths = (conv1, conv2, trans1, block 2)`` sets the budget (the frontier of notebook 07
    scales them); ``separable=False`` builds every 3x3 after conv1 as a plain one instead
    (the ablation's comparison, at narrower widths for the same budget).
    """

    def __init__(self, widths=(10, 24, 10, 22), separable: bool = True):
        super().__init__()
        self.widths, self.separable = tuple(widths), separable
        c1, c2, t, s = widths

        def block(i, o):
            return SeparableConv(i, o, padding=0) if separable else conv_block(i, o, bn=True)

        # Block 1
        self.conv1 = conv_block(1, c1, bn=True)                       # 28 -> 26 | RF 3
        self.conv2 = block(c1, c2)                                    # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                               # 24 -> 12 | RF 6
        self.trans1 = conv_block(c2, t, kernel=1, bn=True)            # 12 -> 12 | RF 6
        # Block 2: four 3x3s, depthwise-separable
        self.conv3 = block(t, s)                                      # 12 -> 10 | RF 10
        self.conv4 = block(s, s)                                      # 10 -> 8  | RF 14
        self.conv5 = block(s, s)                                      # 8 -> 6   | RF 18
        self.conv6 = block(s, s)                                      # 6 -> 4   | RF 22
        # Output: GAP over the 4x4 map, a 1x1 conv to the 10 classes
        self.gap = nn.AdaptiveAvgPool2d(1)                            # 4 -> 1   | RF 28
        self.head = nn.Conv2d(s, 10, 1, bias=False)                   # 1 -> 1   | RF 28

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv6(self.conv5(self.conv4(self.conv3(x))))
        x = self.head(self.gap(x))
        return F.log_softmax(x.flatten(1), dim=1)

# %% [markdown]
# With its default widths (the registered `stretch` model):

# %% tags=["nbval-check-output"]
SEED = 1
engine.seed_everything(SEED)
model = Stretch()  # the registered model: models.build("stretch") builds the same
print(f"widths {model.widths}, separable {model.separable}: {engine.count_parameters(model):,} parameters")

# %% [markdown]
# The summary follows the real forward pass; **RF** is each layer's receptive field in input pixels, **Jump** the input pixels between neighbouring output units.

# %% tags=["nbval-check-output"]
summary(model, (1, 28, 28))

# %% [markdown]
# ## How the design was chosen, on the validation split
# `tools/stretch_design.py` trained each candidate for 6 epochs on the first 50,000 training images and scored it on the last 10,000 (never trained on, and not the test set); its runs ship with the package and are read here, not re-trained. The start is 07's first recipe (06's OneCycle in 6 epochs, peak LR 0.1, rotation alone) on 07's first layout (a plain 3x3 opens block 2, then three separable 3x3s, 16 wide). **First round, seed 1:** 05's elastic distortion and 06's precise BN on that layout widened to 18 (the base), then one change at a time from the base: where the parameters are spent first, then the recipe. The column "last 1 accuracies by seed" is epoch 6, the epoch the target judges.

# %%
first_round = {
    "07's first recipe, first layout (3,332)": "start_w16",
    "base: + elastic distortion + precise BN, 18 separable channels": "base_w18",
    "base, block 2's first 3x3 separable too, 20 wide": "sep3_w20",
    "base, block 2 all separable, block 1 16 wide": "sep3_wide_block1",
    "base, every 3x3 after conv1 separable, 24/22 wide": "all_separable_w22",
    "base, block 1 padded (GAP over 6x6)": "padded_b1_w18",
    "base, BN + ReLU after each depthwise conv (17 wide)": "w17_depthwise_relu",
    "base + EMA of the weights (0.99)": "base_w18_ema",
    "base, batch 64": "base_w18_batch64",
    "base + EMA, batch 64": "base_w18_ema_batch64",
    "base, peak LR 0.2": "base_w18_peak_0.2",
    "base, no augmentation": "base_w18_no_augmentation",
    "base, rotation alone (no elastic distortion)": "base_w18_rotation_only",
    "base, rotation 10 degrees": "base_w18_rotation_10",
    "base, elastic alpha 24": "base_w18_elastic_24",
    "base, no augmentation in the last epoch": "base_w18_clean_last_epoch",
    "every 3x3 after conv1 separable + EMA (0.99)": "all_separable_w22_ema",
    "every 3x3 after conv1 separable + EMA (0.995)": "all_separable_w22_ema_0.995",
    "every 3x3 after conv1 separable + EMA, batch 64": "all_separable_w22_ema_batch64",
    "every 3x3 after conv1 separable, 28 before the pool, + EMA": "all_separable_sep2_28_ema",
}
Markdown(report.design_markdown(report.load_design_runs("07_design", first_round, seeds=(1,)),
                                target=recipes.STRETCH_TARGET))

# %% [markdown]
# **Second round, seeds 1-3:** one seed's tenth of a point is noise, so the leading layouts, with and without the EMA, ran from two more seeds. The row with the best mean becomes the recipe and model that the rest of the notebook trains.

# %%
second_round = {
    "base (first layout, 18 separable channels)": "base_w18",
    "base + EMA": "base_w18_ema",
    "every 3x3 after conv1 separable": "all_separable_w22",
    "every 3x3 after conv1 separable + EMA": "all_separable_w22_ema",
}
design = report.load_design_runs("07_design", second_round, seeds=(1, 2, 3))
Markdown(report.design_markdown(design, target=recipes.STRETCH_TARGET))

# %% [markdown]
# **Third round, seeds 1-2:** the second round's winner was still short of the target, so the same parameters were spent in other ways, each from the chosen row (every 3x3 after conv1 separable + EMA): the pool later (more separable 3x3s on the 24x24 map, where a weight is used at more positions); block 2's last three 3x3s as **one shared separable conv applied three (or four) times**, each with its own BatchNorm, so the budget buys 36 channels (or, sharing only the 1x1, 31 with a depthwise 3x3 each); the last separable conv mapping straight to the 10 classes (no head); SiLU instead of ReLU; a skip around each of block 2's last three 3x3s (no parameters); and the recipe's remaining knobs: weight decay 5e-4, label smoothing 0.05, training in fp32 instead of bf16, a peak LR of 0.15, and the data (the warp resampled bilinearly instead of by the nearest pixel, also with elastic alpha 24; random shifts of up to 1 pixel; random zoom of +-10%).

# %%
chosen_row = "the chosen row: every 3x3 after conv1 separable + EMA"
third_round = {
    chosen_row: "all_separable_w22_ema",
    "pool later: two separable 3x3s 16 wide before it, block 2 21 wide": "late_pool_16x2_w21_ema",
    "pool later: three separable 3x3s before it, block 2 three 3x3s 20 wide": "late_pool_16x3_w20_ema",
    "block 2's last three 3x3s one shared conv, 36 wide": "shared_block2_w36_ema",
    "one shared conv applied four times (the first padded), 36 wide": "shared_block2_x4_w36_ema",
    "only the shared 1x1, a depthwise 3x3 each, 31 wide": "shared_pointwise_w31_ema",
    "last conv straight to the 10 classes (no head), block 2 26 wide": "headless_w26_ema",
    "SiLU instead of ReLU": "all_separable_w22_ema_silu",
    "weight decay 5e-4": "all_separable_w22_ema_wd",
    "label smoothing 0.05": "all_separable_w22_ema_ls",
    "trained in fp32 (bf16 on this CPU)": "all_separable_w22_ema_fp32",
    "a skip around each of block 2's last three 3x3s": "residual_w22_ema",
    "peak LR 0.15": "all_separable_w22_ema_peak_0.15",
    "the warp resampled bilinearly": "all_separable_w22_ema_bilinear",
    "the warp resampled bilinearly, elastic alpha 24": "all_separable_w22_ema_bilinear_elastic_24",
    "random shifts of up to 1 pixel": "all_separable_w22_ema_shift_1px",
    "random zoom of +-10%": "all_separable_w22_ema_zoom_10",
}
third = report.load_design_runs("07_design", third_round, seeds=(1, 2))
Markdown(report.design_markdown(third, target=recipes.STRETCH_TARGET))

# %% [markdown]
# The rows whose mean over seeds 1-2 is at least the chosen row's ran from seed 3 too. The rule is the appendix's (its ninth round), applied unchanged: a row replaces the chosen one only if its mean over seeds 1-3 is at least 0.03 points higher and no seed is more than 0.02 points below the chosen row's.

# %%
def mean_at_6(runs):
    return recipes.seeds_summary(runs, recipes.STRETCH_TARGET)["mean_min"]


leading = {label: third_round[label] for label, runs in third.items()
           if label == chosen_row or mean_at_6(runs) >= mean_at_6(third[chosen_row])}
third_leading = report.load_design_runs("07_design", leading, seeds=(1, 2, 3))
reference = third_leading[chosen_row]
for label, runs in third_leading.items():
    if label != chosen_row:
        gain = round(mean_at_6(runs) - mean_at_6(reference), 2)  # accuracies are hundredths of a point
        worst = round(min(runs[s].test_acc[-1] - reference[s].test_acc[-1] for s in runs), 2)
        verdict = "replaces it" if gain >= 0.03 and worst >= -0.02 else "does not replace it"
        print(f"{label}: mean {gain:+.2f} points, worst seed {worst:+.2f} -> {verdict}")
Markdown(report.design_markdown(third_leading, target=recipes.STRETCH_TARGET))

# %%
recipe = recipes.get_recipe("stretch")  # what `python -m eva_utils train --recipe stretch` trains
means = {label: recipes.seeds_summary(runs, recipes.STRETCH_TARGET)["mean_min"] for label, runs in design.items()}
chosen = max(means, key=means.get)
print(f"best mean at epoch 6 on validation: {chosen} ({means[chosen]:.2f}%)")
chosen_run = design[chosen][1]
print("the registered 'stretch' recipe and model are that row:",
      chosen_run.meta.get("ema") == recipe.ema and chosen_run.meta["params"] == engine.count_parameters(Stretch()))
settings = recipe.run_settings()  # full run; EVA_SMOKE=1 (CI only) makes it a quick one
recipe

# %% [markdown]
# ## Training, seed 1 (test set)
# The chosen recipe on all 60,000 training images, evaluated on the test set after every epoch (the EMA's weights, with BatchNorm's statistics recomputed over 10,000 clean training images).

# %%
engine.seed_everything(SEED)  # before the weights are drawn, as the command line does
run = recipes.run(recipe, SEED, model=Stretch(), device=device, settings=settings)
model, history, loaders = run.model, run.history, run.loaders  # a full run saves results/07_stretch.json itself
print(recipes.target_report(history, target=recipes.STRETCH_TARGET)[1])

# %%
plots.plot_history(history, recipe.name);

# %%
plots.plot_lr(history);

# %% [markdown]
# ## Seeds 1 to 5
# Each row is reproducible with `python -m eva_utils train --recipe stretch --seed N` (one thread, as this notebook ran).

# %%
seed_histories = {SEED: history}
for seed in (2, 3, 4, 5):
    print(f"--- seed {seed}")
    engine.seed_everything(seed)
    seed_histories[seed] = recipes.run(recipe, seed, model=Stretch(), device=device, settings=settings,
                                       progress=False, verbose=False, save=False).history
print(report.seeds_summary_line(seed_histories, target=recipes.STRETCH_TARGET))
Markdown(report.seeds_markdown(seed_histories, target=recipes.STRETCH_TARGET))

# %%
plots.plot_seeds(seed_histories, last=1, title="The chosen recipe from each seed (the target judges epoch 6)");

# %% [markdown]
# ## Ablation: what each part bought, in test accuracy at epoch 6
# Seed 1, all 60,000 training images, the test set; each row takes one part back out of the chosen recipe and model (the first row is the run above). The plain-3x3 row keeps the budget: with plain 3x3s it affords 6-9 channels. This is reporting, not choosing: the choice was made on the validation split.

# %%
ablations = {
    "without the EMA": (recipe.with_(ema=None), Stretch),
    "without precise BN": (recipe.with_(precise_bn=0), Stretch),
    "without the elastic distortion (rotation alone)": (recipe.with_(elastic=0.0), Stretch),
    "plain 3x3s instead of separable (6/9 wide)": (recipe, lambda: Stretch(widths=(6, 9, 6, 9), separable=False)),
}
ablation_runs = {"the chosen recipe and model": history}
for name, (changed, build) in ablations.items():
    print(f"--- {name}")
    engine.seed_everything(SEED)
    ablation_runs[name] = recipes.run(changed, SEED, model=build(), device=device, settings=settings,
                                      progress=False, verbose=False, save=False).history
Markdown(report.variants_markdown([{"name": name, "params": h.meta["params"], "acc": list(h.test_acc), "split": "test"}
                                   for name, h in ablation_runs.items()], reference="the chosen recipe and model"))

# %% [markdown]
# ## The frontier: accuracy at epoch 6 against size
# The chosen recipe and the same layout with its widths scaled to about 2k, 3k, 5k and 8k parameters (seed 1, test set); the 3.5k point is the run above.

# %%
frontier_rows = []
for name, kwargs in recipes.stretch_frontier().items():
    if kwargs["widths"] == Stretch().widths:
        h = history
    else:
        print(f"--- {name}: widths {kwargs['widths']}")
        engine.seed_everything(SEED)
        h = recipes.run(recipe, SEED, model=Stretch(**kwargs), device=device, settings=settings,
                        progress=False, verbose=False, save=False).history
    frontier_rows.append({"name": name, "params": h.meta["params"], "acc": list(h.test_acc), "split": "test"})
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
# Each panel shows the input window that the central unit of a layer sees (orange; dashed where it reaches into padding). The explorer below lets you pick any conv or pool layer, unit and digit.

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
# 1. Build `Stretch(separable=False)` at the default widths and print its parameter count: about five times the separable model's, over even the course's 8,000 budget. That is why the ablation's plain row had to drop to 6-9 channels, and the summary shows where the weights go (the 3x3s of block 2).
# 2. Build `Stretch(widths=(12, 28, 12, 28))`, the frontier's ~5k point (its parameter count is in the frontier table), and train it with `recipes.run(recipe, 2, model=...)`: compare its epoch-6 accuracy from a second seed with the frontier's seed-1 row, to see whether the ~5k model clears 99.40% for more than one seed.
# 3. Move the max-pool one layer later: add a third separable 3x3 (`SeparableConv(24, 24, padding=0)`) to block 1 before `pool1`. The summary's RF column shows the pool at RF 8 instead of 6, block 2 ending on a 3x3 map instead of 4x4, and the parameter count raised by the new layer (24 x 9 depthwise + 24 x 24 pointwise weights, and its BatchNorm), over the 3,600 budget.
