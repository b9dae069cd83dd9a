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
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "eva-utils @ git+https://github.com/eva-course/small-cnns.git@v0.2.0"], check=True)

from IPython.display import Markdown

import eva_utils
from eva_utils import engine, histories, plots, recipes, report, widgets
from eva_utils.summary import summary

device = eva_utils.start()  # figures inline, the Results slot above, the clock, and where this runs

# %% [markdown]
# ## Analysis
# - **Augmentation in place of dropout: the best test accuracy of the course so far.** With dropout off, ±7° rotations and the mild elastic distortion on, the best test accuracy is 99.44% at epoch 14 (04: 99.28%, ablation table). The model is still regularised, now by the data: its turned and bent training digits are harder than the test digits, so train accuracy ends 0.88 points *below* test (98.51% against 99.39%; 04's dropout left it 1.09 below).
# - **What each part bought (ablation table, one seed each).** Keeping 04's dropout on top of the augmentation is too much for 7,972 parameters: train accuracy ends 2.58 points below test and the last 3 epochs are no higher (99.22-99.39%). Rotation alone, without the distortion, ends train and test level (gap +0.13 points), with a best of 99.34% at epoch 11 and a last epoch of 99.11%; with the distortion the best is 0.10 points higher and the last epoch 99.39% against 99.11%. One seed on the test set does not choose between them: the six-seed comparison on a validation split that did is in the appendix (notebook 10, ninth round).
# - **It does not settle.** At the constant learning rate of 0.01 the test line still jumps from one epoch to the next, by up to 0.29 points in the last six epochs (99.39% at epoch 10, 99.10% at epoch 11; curves), and the last 3 epochs hold 99.29%, 99.44% and 99.39%: the target asks for >= 99.40% in *each* of them (Results: NOT MET, 0.11 points short).
# - **Next (06):** change the **learning-rate schedule**: OneCycle warms up to a high LR (fast progress) and then anneals far below 0.01, so the last epochs settle into a minimum instead of bouncing around it.

# %% [markdown]
# ## The model
# 04's architecture, built with dropout 0: the class `Regularized` is defined in notebook 04 (where the architecture changed; a test keeps it equal to `eva_utils.models.Regularized`) and imported here from the package. To change it, edit it in 04.

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
# ## Training
# The rotation and the distortion are drawn per image on the training batches only (never on the test images).
#
# The recipe holds everything but the seed. `recipes.run` is the package's one training path (the command line uses it too: `python -m eva_utils train --recipe augmentation --seed 1` repeats this run); it calls `engine.fit`, the plain PyTorch loop that 01 writes out, plus a progress bar and one plain-text line per epoch.

# %%
recipe = recipes.get_recipe("augmentation")
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
# ## The augmented digits
# Row 1: eight training digits; rows 2-5: four random draws of the same digits through the training loader's rotation and distortion.

# %%
plots.show_augmented(loaders.train, n=8, repeats=4);

# %% [markdown]
# ## Ablation: the dropout kept, the distortion left out
# The same recipe from the same seed, once on 04's network with its dropout (0.05) kept, once with rotation alone (`elastic=0`), against 04 (dropout, no augmentation) and the run above. One seed each, on the test set: this measures what each part did for this seed; it did not choose them (the appendix, notebook 10, shows how the distortion was chosen on a validation split).

# %%
ablation = {"04: dropout, no augmentation": histories.load_history("04_regularizer")}
for label, (dropout, change) in {"rotation + distortion + dropout 0.05": (0.05, {}),
                                 "rotation alone, no dropout": (0.0, dict(elastic=0.0))}.items():
    engine.seed_everything(SEED)
    ablation[label] = recipes.run(recipe.with_(**change), SEED, model=Regularized(dropout=dropout), device=device,
                                  settings=settings, progress=False, verbose=False, save=False).history
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
# 2. Add shifts: `recipe.with_(translate=0.1)` moves digits by up to 3 pixels. Expect the augmented digits cell to show digits off the centre, and train accuracy to fall further below test (a harder task). MNIST centres every digit by its centre of mass, test digits included, so there is little shift for the network to learn: do not expect the last epochs' test lines to gain more than their epoch-to-epoch jumps.
# 3. Look at the misclassified digits: count how many are turned more than ±7°; those are the ones a larger rotation range could still teach. Expect only a few (in this run's figure, the steeply slanted 1 read as 0 and one or two slanted 4s): most errors are shapes, such as 4s closed into 9s or broken strokes, which no rotation teaches.
# 4. Bend harder: `recipe.with_(elastic=34.0)` is Simard et al.'s strength. Expect the augmented digits cell to show visibly bent strokes and train accuracy to end below this run's 98.51% (a harder task). If test accuracy does not rise with it, 7,972 parameters cannot carry that much distortion.
