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
# # 06 · Optimizer: OneCycle learning rate, the course target
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/06_optimizer.ipynb)
#
# ## Target
# - Same model and data as 05 (its rotation and mild elastic distortion); one change: **how the optimizer steps**. **OneCycleLR** instead of 05's constant LR: a warm-up to a peak LR (read off an LR range test below), then an anneal far below the start, within the first 13 epochs; the last 2 epochs **hold** the cycle's floor LR, so the last 3 epochs, which the target judges, score one settled network rather than one still moving. With the schedule, SGD's momentum becomes Nesterov's. Before every evaluation, BatchNorm's statistics are recomputed over 10,000 clean training images (**precise BN**), so each score uses statistics that belong to the weights it scores, not a running average of the last few augmented batches. Two ablation rows take each back out (the cycle over all 15 epochs; no precise BN), to measure what they add.
# - The course target: **< 8,000 parameters, >= 99.40% test accuracy in each of the last 3 epochs, within 15 epochs**, for every one of seeds 1 to 5, with margin.
# - Show how the final design was chosen: the architecture of 04 and this recipe against the other candidates tried, on a validation split and two, four or six seeds each, never on the test set.
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

import torch

from IPython.display import Markdown

import eva_utils
from eva_utils import data, engine, histories, plots, recipes, report, widgets
from eva_utils.summary import summary

device = eva_utils.start()  # figures inline, the Results slot above, the clock, and where this runs

# %% [markdown]
# ## Analysis
# - **The target is met for all 5 seeds, with about a tenth of a point to spare.** Every seed holds >= 99.40% in each of its last 3 epochs; the lowest of any seed's last 3 is 99.48% (seed 4), the mean of the seeds' lowest 99.53%, the spread 0.08 points (seeds table and plot). Seed 1, the run below, ends at 99.56%, 99.57% and 99.56%. No seed's last 3 differ by more than 0.02 points: the hold and precise BN score one settled network. The README's seeds tables take the same recipe to seeds 1-10 at one and at two threads.
# - **Where the margin comes from: the data (ninth-round table, validation split).** The mild elastic distortion that 05 added to the rotation was the last change chosen. Over six seeds its mean of the lowest is 99.47% against 99.41% for the recipe without it, its worst seed 99.42% against 99.39%, and no seed is below its pair (seeds 3, 4 and 6 are 0.09-0.11 points above). Its train accuracy on the bent digits is 98.87% against 99.59%: the model fits its training images less well and the held-out ones better, which is what the distortion is for: each training digit is redrawn a little, as another hand might draw it. Seeds 1 and 2 alone had called it even (seventh-round table: 99.44% against 99.43%); the rule for the extra seeds (at least +0.03 points, no seed more than 0.02 below its pair) was written down before the sixth came in. At Simard et al.'s strength (alpha 34) it is too much for 7,972 parameters: 99.19%, with train accuracy down to 96.90%.
# - **What the hold does.** With the cycle over all 15 epochs (precise BN kept) its anneal runs to the very last step, so the last 3 epochs score a network still moving: seed 1 climbs 99.55%, 99.58%, 99.60% without the hold and stays at 99.56%, 99.57%, 99.56% with it (ablation table). On this seed that costs nothing at the target, and one seed on the test set does not choose: the hold was chosen on the validation split (four-seed table below) for its mechanism: with it no seed's last 3 spread more than 0.03 points; without it, up to 0.09. Ending the cycle after 13 epochs and holding its floor LR (0.00005) for the last 2 leaves the weights almost still.
# - **What precise BN does.** It changes no weight: the training is the same, step for step; only the statistics BatchNorm uses when scoring are recomputed over 10,000 clean training images instead of following the last ~10 augmented batches. On seed 1 it moved the test lines by 0.02 at most (99.57%, 99.55%, 99.55% without it, ablation table). On the validation split over four seeds (sixth-round table) it left the mean of the lowest at 99.42% and raised the worst seed's lowest from 99.37% to 99.41%: with running statistics seed 3 moved 0.03 points within its hold (99.37%, 99.40%, 99.40%), with precise BN no seed's last 3 differ by more than 0.01. Slowing the running statistics instead (momentum 0.01) had left the level where the hold alone had it (99.42%, margin table).
# - **How the hold was chosen (validation split, never the test set).** In the margin table, one change at a time from the previous final recipe: a different peak LR (99.27%, 99.34%), batch 64 (99.36%), weight decay (99.39%), rotation 5 or 10 degrees (99.31%, 99.32%), training in fp32 (99.33%), and four other layouts (99.32-99.33%) were all below the recipe run again (99.44%); the hold was 0.02 below it on seeds 1-2 (99.42%) but its last 3 epochs sat within 0.02 points of each other. Over four seeds it was ahead: mean of the lowest 99.42% against 99.39%, and its worst seed's lowest 99.37% against 99.33% (four-seed table). Two to four seeds cannot separate designs a few hundredths apart, so the hold was kept for its mechanism, which the four-seed table shows directly: with it, no seed's last 3 spread more than 0.03 points; without it, up to 0.09.
# - **A second round from the final found nothing better (second-round tables, validation split).** Over four seeds the final (mean of the lowest 99.42%) stayed ahead of a 1-epoch hold (99.41%), bilinear rotation (99.37%), 07's separable block 2 widened to 7,674 parameters and five 3x3s in block 2 (99.36% each); on two seeds shifts (99.37%) and a slant (99.35%) were lower, with train accuracy falling to 99.31% and 99.49%. The model sits where more regularisation costs accuracy and less over-fits (rotation 5 degrees in the margin table), and the budget spent on width or depth instead did not help.
# - **Three later rounds found nothing better either (later-rounds table, validation split, seeds 1-2).** Against the final's 99.42% mean of the lowest, SiLU and GELU in place of ReLU and a 3-epoch hold came closest (99.39% each; SiLU and GELU were ahead on seed 1 and 0.07 behind on seed 2); the other changes were at 99.34-99.38%, an EMA of the weights on top of the hold at 99.35%, and label smoothing lowest at 99.26%, with train accuracy down to 99.38%.
# - **More parameters would not buy it either (diagnostic table, validation split, seeds 1-2).** The final's layout with every width x1.4 (15,275 parameters, twice the budget) fits the training images better (99.72% against 99.59% in the last epoch) but not the validation images (mean of the lowest 99.40% against 99.42%): at this recipe the level is not bought by parameters.
# - **Nor by averaging the weights (eighth round, validation split, seeds 1-2).** The SWA tail was lower than the final then (99.37% against 99.43%): averaging the weights of 4 epochs at the start LR did not make up for the 2 epochs of annealing the shorter cycle gave up.
# - **The schedule is what makes the last epochs hold.** Same model, same data, same seed: 05's constant LR ends at 99.29-99.44%, jumping from epoch to epoch, the cycle with its hold at 99.56-99.57% (ablation table). The LR plot shows the scheduler really stepped: a warm-up to 0.05 over the first quarter of the cycle, an anneal far below 05's 0.01 by epoch 13, then the floor for the last 2 epochs.
# - **The peak LR.** In the range test the loss falls slowly up to an LR of about 0.01, fastest between 0.01 and 0.1, and is lowest at 0.361, just before it rises again; the recipe's peak, 0.05, is in the steepest part, about a decade below the lowest-loss LR (the usual margin for OneCycle's peak). On the validation split a peak of 0.1 was no better (first design table: 99.34% against 99.37% for the same layout; margin table: 99.27% against 99.44%).
# - **How the architecture was chosen (first design table, validation split, two seeds each).** Only the architecture moved the lowest-of-last-3 accuracy by more than a few hundredths: 04's layout (a fourth 3x3 in block 2, widening to 18 channels) at 99.43% against 99.37% for the first GAP layout. Regularisers made it worse (label smoothing 99.30%, shifts and zoom 99.34%, with train accuracy falling to 99.11-99.35%), as did a padded block 1 (99.33%), batch 64 and a higher peak LR (99.34%); weight averaging (EMA) moved it by +0.01 on the first layout and -0.03 on the final one.
# - **Train accuracy ends below test** (last-epoch gap -0.68 points): it is measured on the turned and bent training digits, which are harder than the test digits. The step table shows the path: BatchNorm bought the big jump (02 to 03), GAP with the re-laid block 2 cut the size below 8,000 while raising the best accuracy (03 to 04), augmentation in place of dropout raised it again (05: 99.44%), and the schedule made the last epochs hold (99.56-99.57%).

# %% [markdown]
# ## The model
# Unchanged from 05: 04's architecture with dropout 0. The class `Regularized` is defined in notebook 04 (where the architecture changed; a test keeps it equal to `eva_utils.models.Regularized`) and imported here from the package. To change it, edit it in 04.

# %%
from eva_utils.models import Regularized
# %% tags=["nbval-check-output"]
SEED = 1
engine.seed_everything(SEED)  # before the weights are drawn
model = Regularized(dropout=0.0)
print(f"{engine.count_parameters(model):,} parameters")

# %% [markdown]
# The summary follows the real forward pass; the **RF** column is each layer's receptive field in input pixels and **Jump** the input pixels between neighbouring output units.

# %% tags=["nbval-check-output"]
summary(model, (1, 28, 28))

# %% [markdown]
# ## Choosing the recipe, on a validation split
# Each candidate trained this model for 15 epochs from seeds 1, 2 on the first 50,000 training images and was scored on the last 10,000 (never trained on, and not the test set): `python tools/final_design.py` in the repository made these runs, and they ship with the package. What the target asks of every seed is the lowest of its last 3 epochs, so the table ranks the candidates by that, averaged over seeds.

# %%
candidates = {  # the label shown: the name the run was saved under
    "04's architecture (the final model), OneCycle": 'deeper_widening',
    "04's architecture, OneCycle + EMA of the weights (0.999)": 'deeper_widening_ema',
    'block 2 one 3x3 deeper, 14 channels each': 'deeper_block2',
    'block 2 one 3x3 deeper, 14 channels each, + EMA': 'deeper_block2_ema',
    'first GAP layout (three 3x3s in block 2), OneCycle': 'onecycle',
    'first GAP layout + EMA of the weights (0.999)': 'ema',
    'first GAP layout, block 1 padded (8x8 map at GAP)': 'padded_block1',
    'first GAP layout + label smoothing 0.1': 'label_smoothing',
    'first GAP layout + shifts and zoom (10%) + EMA': 'shift_zoom_ema',
    'first GAP layout, batch 64': 'batch64',
    'first GAP layout, peak LR 0.1': 'peak_lr_0.1',
}
design = report.load_design_runs("06_design", candidates, seeds=(1, 2))
print("evaluated on:", next(iter(design[next(iter(design))].values())).meta["evaluated_on"])
Markdown(report.design_markdown(design))

# %% [markdown]
# ### Margin for every seed: one change at a time from the final
# The target asks *every* seed to hold 99.40% in each of its last 3 epochs, and the recipe chosen above (OneCycle over all 15 epochs) met it on seeds 1 and 2 with little margin: its lowest was 99.42% in the first design table and 99.43% run again (margin table), two or three hundredths above the line. Each row below changes one thing from that model and recipe, on the same split, from seeds 1 and 2 (`tools/final_design.py`, the `final_*` runs); "the final, run again" is the recipe itself. The rows ran on two CPUs, an Intel Xeon (peak LR, batch, weight decay, rotation 10, the three layouts, and the rerun's seed 2) and an AMD EPYC (the others): the same seed gives other last digits on each.

# %%
final_candidates = {
    "the final, run again (OneCycle over 15 epochs)": "final_rerun",
    "the cycle in 13 epochs, then 2 epochs at its floor LR (the hold)": "final_hold_2",
    "the hold + BatchNorm running stats over ~100 batches (momentum 0.01)": "final_hold_2_bn_0.01",
    "trained in fp32 instead of bf16 autocast": "final_fp32",
    "peak LR 0.1": "final_peak_lr_0.1",
    "peak LR 0.03": "final_peak_lr_0.03",
    "batch 64": "final_batch64",
    "weight decay 1e-4": "final_weight_decay",
    "rotation +-5 degrees": "final_rotation_5",
    "rotation +-10 degrees": "final_rotation_10",
    "max-pool one 3x3 later (5x5 map at GAP)": "final_pool_later",
    "block 2's first 3x3 padded (6x6 map at GAP)": "final_padded_conv3",
    "wider block 1 (10, 14), narrower block 2": "final_wide_block1",
    "flatter widths (12, 13, 16, 16 in block 2)": "final_flatter",
}
Markdown(report.design_markdown(report.load_design_runs("06_design", final_candidates, seeds=(1, 2))))

# %% [markdown]
# Two seeds cannot separate rows a few hundredths apart, so the two candidates that matter, the final as it was and with the hold, ran two more seeds each (3 and 4, AMD EPYC):

# %%
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"OneCycle over 15 epochs": "final_rerun", "the cycle in 13 epochs + a 2-epoch hold": "final_hold_2"},
    seeds=(1, 2, 3, 4))))

# %% [markdown]
# ### A second round from the final (with the hold)
# Once the hold was in, six more changes were tried, each one from the final model and recipe, on the same split and CPU (AMD EPYC; `tools/final_design.py`, the later `final_*` runs): a shorter hold, three changes to the augmentation (shifts, bilinear instead of nearest-pixel rotation, a random slant as handwriting has), and two layouts that buy width or depth differently. Seeds 1 and 2 for every row, then seeds 3 and 4 for the four rows whose train accuracy did not fall (shifts and the slant lowered it: more regularisation than 7,972 parameters can carry):

# %%
second_round = {
    "the final (the cycle in 13 epochs + a 2-epoch hold)": "final_hold_2",
    "the cycle in 14 epochs + a 1-epoch hold": "final_hold_1",
    "+ shifts of up to 1.4 px (5%)": "final_shift_0.05",
    "rotation read bilinearly instead of nearest-pixel": "final_bilinear",
    "+ a random slant of up to +-10 degrees": "final_shear_10",
    "07's depthwise-separable block 2, widened": "final_separable",
    "five 3x3s in block 2 (2x2 map at GAP), narrower": "final_five_3x3",
}
Markdown(report.design_markdown(report.load_design_runs("06_design", second_round, seeds=(1, 2))))

# %%
closest = ["the final (the cycle in 13 epochs + a 2-epoch hold)", "the cycle in 14 epochs + a 1-epoch hold",
           "rotation read bilinearly instead of nearest-pixel", "07's depthwise-separable block 2, widened",
           "five 3x3s in block 2 (2x2 map at GAP), narrower"]
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {label: second_round[label] for label in closest}, seeds=(1, 2, 3, 4))))

# %% [markdown]
# ### Later rounds from the final (with the hold)
# Three later rounds, looking for margin for every seed, tried more changes, one at a time from the final model and recipe, on the same split and seeds 1 and 2 (AMD EPYC; `tools/final_design.py`, the last `final_*` runs): smooth activations, ReLU before BatchNorm, label smoothing, AdamW; a two-scale head, steeper widths, batch 256, other warm-up shares, no rotation in the hold; a longer hold and an EMA of the weights on top of it.

# %%
later_rounds = {
    "the final (the cycle in 13 epochs + a 2-epoch hold)": "final_hold_2",
    "SiLU instead of ReLU": "final_silu",
    "GELU instead of ReLU": "final_gelu",
    "each block's ReLU before its BatchNorm": "final_relu_before_bn",
    "label smoothing 0.1": "final_label_smoothing",
    "AdamW (peak LR 0.01, weight decay 0.01)": "final_adamw",
    "two-scale head: GAP of conv5 and conv6 (7,976 parameters)": "final_multiscale",
    "steeper widths, up to 22 channels (7,960 parameters)": "final_steeper",
    "batch 256, LRs doubled": "final_batch256",
    "warm-up share 0.4 instead of 0.25": "final_pct_0.4",
    "warm-up share 0.15": "final_pct_0.15",
    "no rotation in the 2 hold epochs": "final_clean_hold",
    "the cycle in 12 epochs + a 3-epoch hold": "final_hold_3",
    "the hold + EMA of the weights (0.999)": "final_hold_2_ema",
}
Markdown(report.design_markdown(report.load_design_runs("06_design", later_rounds, seeds=(1, 2))))

# %% [markdown]
# ### A sixth round: precise BN, and what more parameters would buy
# At the floor LR the weights hardly move, yet the test line still moved within the hold: BatchNorm's running statistics follow the last ~10 augmented batches (momentum 0.1). Precise BN recomputes them before each evaluation over the first 10,000 training images, unaugmented, in a fixed order (`recipes.Recipe.precise_bn`). Seeds 1 to 4, same split and CPU (AMD EPYC):

# %%
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"the final (the cycle in 13 epochs + a 2-epoch hold)": "final_hold_2",
                  "the hold + precise BN (10,000 clean training images)": "final_precise_bn"},
    seeds=(1, 2, 3, 4))))

# %% [markdown]
# A diagnostic, not a candidate: the final's layout with every width x1.4 (15,275 parameters, twice the budget), seeds 1 and 2, to see whether the level is bought by parameters at all.

# %%
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"the final (the cycle in 13 epochs + a 2-epoch hold)": "final_hold_2",
                  "diagnostic: every width x1.4 (15,275 parameters)": "diagnostic_widths_x1.4"},
    seeds=(1, 2))))

# %% [markdown]
# ### Seventh and eighth rounds: more distortion, and averaging the weights
# From the final as it was then (the hold + precise BN), same split and CPU, seeds 1 and 2: an elastic distortion on top of the rotation (Simard et al., 2003), mild (alpha 16, moves of about half a pixel) and at Simard's strength (alpha 34); and, instead of the hold, a stochastic-weight-averaging tail (Izmailov et al., 2018): the cycle in 11 epochs, then 4 epochs at the start LR (0.005) while a uniform average of the weights is kept and scored from epoch 12 (`swa_tail` in `tools/final_design.py`).

# %%
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"the final (the hold + precise BN)": "final_precise_bn",
                  "+ a mild elastic distortion (alpha 16)": "final_elastic_16",
                  "+ Simard's elastic distortion (alpha 34)": "final_elastic_34",
                  "an SWA tail instead of the hold (epochs 12-15)": "final_swa_tail"},
    seeds=(1, 2))))

# %% [markdown]
# ### Ninth round: the mild distortion over six seeds, and adopted
# Seeds 1 and 2 had called the mild distortion even with the final, so a ninth round took both to seeds 3 to 6 (same split and CPU), with a rule written down before the last seed came in: adopt it if its mean of the lowest is at least 0.03 points higher and no seed is more than 0.02 below its pair. It is the recipe this notebook trains (and 05's augmentation); the test-set runs below came only after this table.

# %%
ninth_round = report.load_design_runs(
    "06_design", {"the final before it (the hold + precise BN)": "final_precise_bn",
                  "+ the mild elastic distortion (alpha 16): the final now": "final_elastic_16"},
    seeds=(1, 2, 3, 4, 5, 6))
Markdown(report.design_markdown(ninth_round))

# %% [markdown]
# ## The peak learning rate: an LR range test
# A throwaway copy of the model trains for 200 batches while the LR rises from 0.0001 to 1; the loss falls fastest a little below the LR where it stops falling. OneCycle's peak is chosen from that region.

# %%
recipe = recipes.get_recipe("final")
settings = recipe.run_settings()  # a full run; EVA_SMOKE=1 (CI only) makes it a quick one
engine.seed_everything(0)
probe = Regularized(dropout=0.0)
probe_loaders = data.loaders(recipe.batch_size, augment=recipe.make_augment(), device=device, seed=0,
                             splits=data.Splits(train_limit=settings.train_limit, test_limit=settings.test_limit))
lr_test = engine.lr_range_test(probe, device, probe_loaders.train,
                               torch.optim.SGD(probe.parameters(), lr=1e-4, momentum=recipe.momentum,
                                               nesterov=recipe.nesterov), steps=200)
print(f"lowest smoothed loss {lr_test['lowest_loss']:.3f} at LR {lr_test['lowest_lr']:.3g}; "
      f"the recipe's peak LR {recipe.max_lr:g}")
plots.plot_lr_range(lr_test, chosen=recipe.max_lr);

# %% [markdown]
# ## Training, seed 1
# The recipe holds everything but the seed; `recipes.run` (the package's one training path) trains it, and `python -m eva_utils train --recipe final --seed 1` repeats this run.

# %%
recipe

# %%
# a full run records its device and keeps its history as results/<step>.json, for later notebooks
run = recipes.run(recipe, SEED, model=model, device=device, settings=settings)
history, loaders = run.history, run.loaders

# %% [markdown]
# ## Ablation: the hold and precise BN, each taken back out
# The same recipe from the same seed, once with its cycle stretched over all 15 epochs (`hold_epochs=0`) and once scored with BatchNorm's running statistics as training left them (`precise_bn=0`), against 05 (constant LR 0.01, plain momentum) and the run above. One seed each, on the test set: this measures what each did to this seed, it did not choose them (the validation tables above did).

# %%
ablations = {}
for label, change in {"OneCycle over all 15 epochs, no hold (precise BN)": dict(hold_epochs=0),
                      "the hold, no precise BN (running statistics)": dict(precise_bn=0)}.items():
    engine.seed_everything(SEED)
    ablations[label] = recipes.run(recipe.with_(**change), SEED, model=Regularized(dropout=0.0), device=device,
                                   settings=settings, progress=False, verbose=False, save=False).history
Markdown(report.compare_markdown({"05: constant LR 0.01, momentum": histories.load_history("05_augmentation"),
                                  **ablations, "the hold + precise BN (this run)": history}))

# %% [markdown]
# ## Curves
# Loss and accuracy per epoch, the accuracy zoomed to the top of the range with the 99.4% line.

# %%
plots.plot_history(history, recipe.name);

# %% [markdown]
# ## The learning rate really changed
# One point per optimizer step, read from the optimizer during training (not from the schedule's formula).

# %%
plots.plot_lr(history);

# %% [markdown]
# ## Seeds 1 to 5
# The same recipe from seeds 2 to 5 (seed 1 is the run above), each reproducible with `python -m eva_utils train --recipe final --seed N`; `python -m eva_utils seeds --recipe final --seeds 1-10` runs ten and prints the same table.

# %%
seed_histories = {SEED: history}
for seed in (2, 3, 4, 5):
    engine.seed_everything(seed)
    seed_histories[seed] = recipes.run(recipe, seed, model=Regularized(dropout=0.0), device=device,
                                       settings=settings, progress=False, verbose=False, save=False).history
    print(f"seed {seed}: last 3 test accuracies " + ", ".join(f"{a:.2f}%" for a in seed_histories[seed].last(3)))
print(report.seeds_summary_line(seed_histories))
Markdown(report.seeds_markdown(seed_histories))

# %%
plots.plot_seeds(seed_histories);

# %% [markdown]
# ## All six steps
# Parameters against best test accuracy, from each notebook's full run (`results/*.json` in this folder where you ran them, else the course's reference runs that ship with `eva_utils`) and this run.

# %%
steps = report.step_rows(["01_skeleton", "02_lighter", "03_batchnorm", "04_regularizer",
                          "05_augmentation"], current={"06_optimizer": history})
plots.plot_steps(steps)
Markdown(report.steps_markdown(steps))

# %% [markdown]
# ## What it gets wrong
# A grid of misclassified test digits (predicted / true), then a browser to step through all of them with the model's probabilities (evaluated in fp32, like the test line).

# %%
plots.show_misclassified(model, loaders.test, n=24);

# %%
widgets.misclassified_browser(model, loaders.test);

# %% [markdown]
# ## Receptive field on a real digit
# Each panel shows the input window that the central unit of a layer sees (orange; dashed where it reaches into padding). The explorer below lets you pick any layer, unit and digit; it opens at a middle layer.

# %%
digits = next(iter(loaders.test))[0][:16].cpu()
widgets.rf_gallery(model, digits[0]);

# %%
widgets.rf_explorer(model, digits);

# %% [markdown]
# ## Results
# Rendered from `history`; the same table fills the slot at the top.

# %%
report.show_results(history, f"Results: {recipe.name}", quick=settings.quick);

# %% [markdown]
# ## Try this
# 1. Set `recipe = recipe.with_(scheduler=None, lr=0.01, nesterov=False)` (05's constant LR on this model) and re-run the training: expect the last epochs' test lines to move up and down by a few hundredths to tenths instead of settling.
# 2. Pick a peak yourself from the LR range test (for example where its loss is lowest) with `recipe = recipe.with_(max_lr=PEAK, lr=PEAK / 10)`, and compare the middle and last epochs' test lines with this run's. Expect a peak other than 0.05 to end lower, not higher: on the validation split (margin table) the mean of the lowest was 99.34% with a peak of 0.03 and 99.27% with 0.1, against 99.44% for 0.05.
# 3. Turn on weight averaging, `recipe = recipe.with_(ema=0.999)`: expect the last epochs' test lines no higher than this run's, probably a little lower: on the validation split the EMA rows were level or lower than the same rows without it (99.40% against 99.43% for OneCycle on 04's architecture, 99.38% against 99.37% on the first GAP layout, 99.35% against 99.42% on top of the hold).
# 4. Take precise BN out, `recipe = recipe.with_(precise_bn=0)`, and re-run the seeds cell: compare each seed's last 3 test lines, and the spread, with the table above (the ablation table shows seed 1). Expect the same level and a seed's last 3 a little less steady: on seed 1 precise BN moved the test lines by two hundredths at most, and on the validation split, with running statistics, seed 3 moved within its hold (99.37%, 99.40%, 99.40%, sixth-round table).
