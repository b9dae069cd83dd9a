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
# # Appendix · How 06's recipe was chosen: the design log
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/10_appendix_design_log.ipynb)
#
# For instructors and the curious. Notebook 06 teaches the LR schedule and trains the final recipe; this appendix shows how that recipe and 04's architecture were chosen: candidates trained on a **validation split** (trained on the rest of the training images and scored on the last 10,000, never the test set), two to six seeds each, one change at a time. Nothing trains here: every table is rendered from the runs that `python tools/final_design.py` made, which ship with the package (`eva_utils/results/06_design_*.json`).
#
# ## Target
# - Show every round of the search as it was run, ranked by what the course target asks of every seed: the **lowest of the last 3 epochs**, averaged over seeds ("mean of the lowest"), with the worst seed's lowest beside it.
# - Keep the test set out of it: the test-set runs in 06 came only after the last table here.
#
# ## Results
# The last round's table (the mild elastic distortion over six seeds, and adopted) is rendered at the end of this appendix, with every earlier round above it.

# %%
# On Colab, install the course package (the version these outputs were made with); locally, use the installed one.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "eva-utils @ git+https://github.com/eva-course/small-cnns.git@v0.2.0"], check=True)

from IPython.display import Markdown

from eva_utils import report

# %% [markdown]
# ## Analysis
# - **Only the architecture moved the level by more than a few hundredths** (first design table). 04's layout, a fourth 3x3 in block 2 widening to 18 channels, reached a mean of the lowest of 99.43% against 99.37% for the first GAP layout. Regularisers made it worse (label smoothing 99.30%; shifts and zoom 99.34%, with train accuracy falling), as did a padded block 1, batch 64 and a peak LR of 0.1.
# - **The hold was kept for its mechanism** (margin and four-seed tables). On seeds 1-2, one change at a time from the recipe of the time, every row was below that recipe run again (99.44%), the hold too (99.42%), but over four seeds the 2-epoch hold was ahead, 99.42% against 99.39%, and with it no seed's last 3 epochs spread more than 0.03 points; without it, up to 0.09. Two to four seeds cannot separate rows a few hundredths apart, so the mechanism decided.
# - **Later rounds found nothing better** (second-round and later-rounds tables): a 1-epoch hold, bilinear rotation, wider or deeper layouts, smooth activations, AdamW, label smoothing and an EMA of the weights all stayed at or below the final's 99.42%.
# - **Precise BN steadied the worst seed** (sixth-round table): the mean of the lowest stayed at 99.42% and the worst seed's lowest rose from 99.37% to 99.41%.
# - **More parameters did not buy it** (diagnostic table): every width x1.4 (15,275 parameters) fitted the training images better, not the validation images.
# - **The mild elastic distortion was the last change adopted** (ninth-round table). Seeds 1-2 had called it even, so it ran six seeds under a rule written down before the last came in (at least +0.03 points, no seed more than 0.02 below its pair): 99.47% against 99.41%, no seed below its pair. At Simard's strength (alpha 34) it was too much for 7,972 parameters (seventh-round table).

# %% [markdown]
# ## The first design round: the architecture and the recipe
# Each candidate trained 04's model (or the layout named) for 15 epochs from seeds 1, 2 on the training images before the last 10,000 and was scored on those 10,000 (never trained on, and not the test set): `python tools/final_design.py` in the repository made these runs, and they ship with the package. What the target asks of every seed is the lowest of its last 3 epochs, so the table ranks the candidates by that, averaged over seeds.

# %% tags=["nbval-check-output"]
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

# %% tags=["nbval-check-output"]
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

# %% tags=["nbval-check-output"]
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"OneCycle over 15 epochs": "final_rerun", "the cycle in 13 epochs + a 2-epoch hold": "final_hold_2"},
    seeds=(1, 2, 3, 4)), spread=True))

# %% [markdown]
# ### A second round from the final (with the hold)
# Once the hold was in, six more changes were tried, each one from the final model and recipe, on the same split and CPU (AMD EPYC; `tools/final_design.py`, the later `final_*` runs): a shorter hold, three changes to the augmentation (shifts, bilinear instead of nearest-pixel rotation, a random slant as handwriting has), and two layouts that buy width or depth differently. Seeds 1 and 2 for every row, then seeds 3 and 4 for the four rows whose train accuracy did not fall (shifts and the slant lowered it: more regularisation than 7,972 parameters can carry):

# %% tags=["nbval-check-output"]
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

# %% tags=["nbval-check-output"]
closest = ["the final (the cycle in 13 epochs + a 2-epoch hold)", "the cycle in 14 epochs + a 1-epoch hold",
           "rotation read bilinearly instead of nearest-pixel", "07's depthwise-separable block 2, widened",
           "five 3x3s in block 2 (2x2 map at GAP), narrower"]
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {label: second_round[label] for label in closest}, seeds=(1, 2, 3, 4))))

# %% [markdown]
# ### Later rounds from the final (with the hold)
# Three later rounds, looking for margin for every seed, tried more changes, one at a time from the final model and recipe, on the same split and seeds 1 and 2 (AMD EPYC; `tools/final_design.py`, the last `final_*` runs): smooth activations, ReLU before BatchNorm, label smoothing, AdamW; a two-scale head, steeper widths, batch 256, other warm-up shares, no rotation in the hold; a longer hold and an EMA of the weights on top of it.

# %% tags=["nbval-check-output"]
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

# %% tags=["nbval-check-output"]
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"the final (the cycle in 13 epochs + a 2-epoch hold)": "final_hold_2",
                  "the hold + precise BN (10,000 clean training images)": "final_precise_bn"},
    seeds=(1, 2, 3, 4))))

# %% [markdown]
# A diagnostic, not a candidate: the final's layout with every width x1.4 (15,275 parameters, twice the budget), seeds 1 and 2, to see whether the level is bought by parameters at all.

# %% tags=["nbval-check-output"]
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"the final (the cycle in 13 epochs + a 2-epoch hold)": "final_hold_2",
                  "diagnostic: every width x1.4 (15,275 parameters)": "diagnostic_widths_x1.4"},
    seeds=(1, 2))))

# %% [markdown]
# ### Seventh and eighth rounds: more distortion, and averaging the weights
# From the final as it was then (the hold + precise BN), same split and CPU, seeds 1 and 2: an elastic distortion on top of the rotation (Simard et al., 2003), mild (alpha 16, moves of about half a pixel) and at Simard's strength (alpha 34); and, instead of the hold, a stochastic-weight-averaging tail (Izmailov et al., 2018): the cycle in 11 epochs, then 4 epochs at the start LR (0.005) while a uniform average of the weights is kept and scored from epoch 12 (`swa_tail` in `tools/final_design.py`).

# %% tags=["nbval-check-output"]
Markdown(report.design_markdown(report.load_design_runs(
    "06_design", {"the final (the hold + precise BN)": "final_precise_bn",
                  "+ a mild elastic distortion (alpha 16)": "final_elastic_16",
                  "+ Simard's elastic distortion (alpha 34)": "final_elastic_34",
                  "an SWA tail instead of the hold (epochs 12-15)": "final_swa_tail"},
    seeds=(1, 2))))

# %% [markdown]
# ### Ninth round: the mild distortion over six seeds, and adopted
# Seeds 1 and 2 had called the mild distortion even with the final, so a ninth round took both to seeds 3 to 6 (same split and CPU), with a rule written down before the last seed came in: adopt it if its mean of the lowest is at least 0.03 points higher and no seed is more than 0.02 below its pair. It is the recipe this notebook trains (and 05's augmentation); the test-set runs below came only after this table.

# %% tags=["nbval-check-output"]
ninth_round = report.load_design_runs(
    "06_design", {"the final before it (the hold + precise BN)": "final_precise_bn",
                  "+ the mild elastic distortion (alpha 16): the final now": "final_elastic_16"},
    seeds=(1, 2, 3, 4, 5, 6))
Markdown(report.design_markdown(ninth_round))
