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
# # 06 · Optimizer: the OneCycle learning-rate schedule, the course target
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/06_optimizer.ipynb)
#
# ## Target
# - Same model and data as 05; one idea: **how the optimizer steps**. Instead of 05's constant LR, **OneCycleLR** warms the LR up to a peak (read off an LR range test), then anneals it far below its start within 13 epochs, lowering SGD's **momentum** while the LR rises and raising it again as the LR falls (*momentum cycling*). The last 2 epochs **hold** the floor LR, so the 3 epochs the target judges score one settled network.
# - Two smaller changes, each measured by an ablation row over seeds 1-3: **Nesterov** momentum (the gradient taken one momentum step ahead), and **precise BN** (BatchNorm's statistics recomputed over clean training images before each evaluation, so they belong to the weights scored).
# - The course target: **< 8,000 parameters, >= 99.40% test accuracy in each of the last 3 epochs, within 15 epochs**, for every one of seeds 1 to 5.
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
# - **The course target is met for all 5 seeds**: the lowest of any seed's last 3 epochs is 99.48% (seed 4), the mean of the seeds' lowest 99.53% (seeds table).
# - **The schedule makes the last epochs hold** (ablation table). 05's constant LR ends seed 1 at 99.29%, 99.44%, 99.39%; the recipe at 99.56%, 99.57%, 99.56%. Without the hold the last 3 still climb (widest spread 0.07 points against 0.01) at the same level (mean of the lowest 99.55% against 99.56%).
# - **Nesterov and precise BN bought nothing three seeds can show**: the mean of the lowest is 99.56% with plain momentum and 99.54% without precise BN, against the recipe's 99.56%. The recipe keeps both; the step's lesson is the schedule.
# - **The peak LR follows from the range test**: the loss falls fastest near an LR of 0.0715 and is lowest at 0.361; the recipe's 0.05 sits in the steep part, about a decade below the lowest point.
# - **Momentum cycles against the LR**: 0.95 at the start, 0.85 at the LR's peak, 0.95 again in the hold (schedule plot).

# %% [markdown]
# ## The model
# Unchanged from 05: 04's architecture with dropout 0. `Regularized` is defined in notebook 04 and imported here from the package; to change it, edit it in 04.

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
# ## The peak learning rate: an LR range test
# A throwaway copy of the model trains while the LR rises exponentially, one step per batch. The smoothed loss falls fastest where learning is fastest and turns up where the LR is too large; OneCycle's peak goes in the steep part, below the lowest point.

# %%
recipe = recipes.get_recipe("final")
settings = recipe.run_settings()  # a full run; EVA_SMOKE=1 (CI only) makes it a quick one
engine.seed_everything(0)
probe = Regularized(dropout=0.0)
probe_loaders = data.loaders(recipe.batch_size, augment=recipe.make_augment(), device=device, seed=0,
                             splits=data.Splits(train_limit=settings.train_limit, test_limit=settings.test_limit))
lr_test = engine.lr_range_test(probe, device, probe_loaders.train,
                               torch.optim.SGD(probe.parameters(), lr=1e-4, momentum=recipe.momentum,
                                               nesterov=recipe.nesterov), start=1e-4, end=1.0, steps=200)
losses = lr_test["loss"]
steepest = min(range(1, len(losses)), key=lambda i: losses[i] - losses[i - 1])
print(f"smoothed loss {losses[0]:.2f} at the start (LR {lr_test['lr'][0]:.2g}); steepest fall at LR "
      f"{lr_test['lr'][steepest]:.3g}; lowest smoothed loss {lr_test['lowest_loss']:.3f} at LR "
      f"{lr_test['lowest_lr']:.3g}; the recipe's peak LR {recipe.max_lr:g}")
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
# ## Curves
# Loss and accuracy per epoch; the right panel zooms in on the top of the range, with the course's 99.4% line (where the zoom would leave points out, a middle panel shows every epoch).

# %%
plots.plot_history(history, recipe.name);

# %% [markdown]
# ## The schedule, as the optimizer saw it
# The LR (log scale, so the hold's floor shows) and the momentum at every optimizer step, read from the optimizer during training, not from the schedule's formula.

# %%
plots.plot_lr(history);
print(f"LR: start {history.batch_lr[0]:.3g}, peak {max(history.batch_lr):.3g}, held at {history.batch_lr[-1]:.3g}")
if history.batch_momentum:
    print(f"momentum: start {history.batch_momentum[0]:.3g}, lowest {min(history.batch_momentum):.3g} "
          f"(at the LR's peak), end {history.batch_momentum[-1]:.3g}")

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
# ## What each part bought: ablations over seeds 1-3
# Each row takes one part out of the recipe and trains seeds 1-3 on the test set like the seed runs above (`python tools/ablation_runs.py 06` made them, with the recipe itself; they ship with the package). They measure; the validation split chose (see the appendix). 05's row is its own notebook's run, seed 1.

# %%
ablation = report.load_design_runs("06_optimizer_ablation", {
    "the recipe: OneCycle + hold, Nesterov, precise BN": "recipe",
    "no hold (the cycle over all 15 epochs)": "no_hold",
    "plain momentum instead of Nesterov": "no_nesterov",
    "no precise BN (running statistics)": "no_precise_bn"}, seeds=(1, 2, 3))
ablation["05: constant LR 0.01, plain momentum (seed 1)"] = {1: histories.load_history("05_augmentation")}
shipped = ablation["the recipe: OneCycle + hold, Nesterov, precise BN"]
print("ran on:", shipped[1].meta.get("device_name"))
same = all(shipped[s].test_acc == seed_histories[s].test_acc for s in (1, 2, 3))
print("the shipped runs of the recipe equal this notebook's seeds 1-3:", "yes" if same else
      "no (another machine, precision or thread count gives other last digits)")
Markdown(report.design_markdown(ablation, first_column="run", ranked=False, spread=True))

# %% [markdown]
# ## How the recipe was chosen
# The recipe, and 04's architecture, were chosen on a validation split (held-out training images, never the test set) over nine rounds of candidates, two to six seeds each: peak LR, batch size, weight decay, rotation, layouts, the hold, precise BN, the elastic distortion, weight averaging. The appendix, [10_appendix_design_log](10_appendix_design_log.ipynb), renders every round.

# %% [markdown]
# ## All six steps
# Parameters against best test accuracy, from each notebook's full run (yours in `results/` where you ran them, else the course's reference runs) and this run.

# %%
steps = report.step_rows(["01_skeleton", "02_lighter", "03_batchnorm", "04_regularizer",
                          "05_augmentation"], current={"06_optimizer": history})
plots.plot_steps(steps)
Markdown(report.steps_markdown(steps))

# %% [markdown]
# ## What it gets wrong
# Misclassified test digits (predicted / true), then a browser through all of them with the model's probabilities.

# %%
plots.show_misclassified(model, loaders.test, n=24);

# %%
widgets.misclassified_browser(model, loaders.test);

# %% [markdown]
# ## Receptive field on a real digit
# Each panel shows the input window the central unit of a layer sees (orange; dashed where it reaches into padding). The explorer lets you pick any layer, unit and digit.

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
# 1. Set `recipe = recipe.with_(scheduler=None, lr=0.01, nesterov=False)` (05's constant LR) and re-run the training: expect the last epochs' test lines to move up and down instead of settling.
# 2. Pick a peak from the LR range test (say, at its lowest loss): `recipe = recipe.with_(max_lr=PEAK, lr=PEAK / 10)`. Expect it to end lower, not higher: on the validation split a lower and a higher peak both did (the appendix's margin table).
# 3. Turn on weight averaging, `recipe = recipe.with_(ema=0.999)`: expect no gain; on the validation split an EMA on top of the hold was lower (the appendix's later-rounds table).
# 4. Take precise BN out, `recipe = recipe.with_(precise_bn=0)`, and re-run the seeds cell: the ablation table shows what to expect for seeds 1-3.
