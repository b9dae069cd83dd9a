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
# # 09 · CIFAR-10 with advanced convolutions: depthwise-separable, dilated, GAP
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eva-course/small-cnns/blob/main/notebooks/09_cifar10_advanced_convs.ipynb)
#
# ## Target
# - The course's second dataset, **CIFAR-10** (32x32 colour, 10 classes). The network to beat: a student's 467,098-parameter net (plain 3x3 blocks, one depthwise + pointwise pair, GAP + Linear) at **83.61%** test accuracy after 20 epochs.
# - **< 200,000 parameters**, **receptive field > 44 before GAP** (GAP then makes the output see the whole image), no max-pooling (stride-2 convs downsample), at least one **depthwise-separable** and one **dilated** convolution, GAP before the classifier.
# - **>= 85% test accuracy within 20 epochs** for seeds 1 and 2 (goal: 88%).
# - Augmentation on whole batches, a different draw per image: random crop (pad 4), horizontal flip, cutout.
#
# ## Results
# Measured by this notebook's own run: the table under the next cell is filled in by the last cell from the run's history (nothing here is typed).

# %%
# On Colab, install the course package from the repository; locally, import the installed one.
import sys
if "google.colab" in sys.modules:
    # !pip install -q "eva-utils @ git+https://github.com/eva-course/small-cnns.git@v0.2.0"

import inspect
import time

import matplotlib.pyplot as plt
import torch

from eva_utils import data, engine, models, plots, recipes, report, widgets
from eva_utils import cifar
from eva_utils.summary import summary

# %matplotlib inline
NOTEBOOK_START = time.time()
report.results_placeholder()

# %% [markdown]
# ## Analysis
# - **Target met for both seeds, goal not reached.** Both seeds end above 85% test accuracy within 20 epochs with **140,570 parameters** (the seeds table below), under the 200,000 budget and under a third of the 467,098-parameter network in the Target, which reached 83.61%. The 88% goal is missed by about a point.
# - **Receptive field.** The last feature map (4x4, before GAP) has an RF of 69 px, above the required 44; GAP then lets the output see the whole 32x32 image (summary and RF cells).
# - **What the separable convs buy.** Measured on this model (table above), the six depthwise-separable layers need about an eighth of the weights and MACs of plain 3x3 convs with the same channels; the plain versions alone would hold several times the whole model's parameters. That is what pays for 128-192 channels in the last blocks inside the budget.
# - **What the dilated convs buy.** Setting the two dilated convs back to dilation 1 changes neither parameters nor MACs but shrinks the RF before GAP (RF table above). Here dilation is a margin rather than a necessity (the undilated RF would also pass 44); the stride-2 convs do most of the RF growth.
# - **Curves.** While the LR is high (the middle of the OneCycle schedule) test accuracy is noisy, with dips of several points, and sits below train; in the annealing phase it climbs nearly every epoch, and the best epochs are the last ones. At the end train accuracy (measured on augmented batches) is only a point or two above test: the model is not over-fitting; it is short of capacity or epochs, which is where the missing point towards 88% would have to come from (not tried here).
# - **Per class.** Cats are the hardest class by far, then dogs and birds; automobiles are the easiest. The misclassified grid (spread over all the mistakes) shows the usual confusions: cats and dogs with each other and with other animals, birds taken for airplanes and other animals, trucks for automobiles.
# - **Speed.** About 53-69 s per training epoch with **one thread** on this CPU (float32, channels-last), while other training jobs shared the two cores, so the numbers are pessimistic. Only one conv runs at 32x32: BatchNorm and ReLU on large maps cost as much as the convolutions on a CPU, which is why the design drops to 16x16 after the second conv.

# %%
device = engine.pick_device()
print(report.run_header(device, recipes.quick_mode(), NOTEBOOK_START))

# %% [markdown]
# ## Data
# CIFAR-10 from `torchvision.datasets.CIFAR10(download=True)` where there is internet; offline, from a folder of PNG class folders (`$EVA_CIFAR10_DIR`, or `../shared/data/cifar10` next to the repository). The PNGs are decoded **once** into one uint8 tensor per split and cached; every later run loads the cache, checked for 50,000/10,000 images and 5,000/1,000 per class. Normalisation uses the per-channel mean/std computed from the training tensor.

# %%
start = time.perf_counter()
tensors = cifar.load_tensors()
print(f"loaded in {time.perf_counter() - start:.1f} s from {cifar.cache_path()}; decoded once from "
      f"{tensors['meta']['source']} in {tensors['meta']['decode_seconds']:.1f} s")
for split in ("train", "test"):
    x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
    print(f"{split}: {tuple(x.shape)} {x.dtype}, per class: {torch.bincount(y).tolist()}")
mean, std = cifar.channel_stats(tensors["train_x"])
print("train mean", [round(m, 8) for m in mean], "\ntrain std ", [round(s, 8) for s in std])

# %% [markdown]
# The fast loader (the whole split as one tensor, batched by index) and the textbook `ImageFolder` + `DataLoader` pipeline give the same normalised test tensors:

# %%
fast = cifar.loaders(128, fast=True, device="cpu", test_limit=200)
classic = cifar.loaders(128, fast=False, device="cpu", test_limit=200, test_batch_size=200)
x_fast, y_fast = next(iter(fast.test))
x_classic, y_classic = next(iter(classic.test))
print(x_fast.shape, "same tensors in both paths:",
      torch.allclose(x_fast, x_classic, atol=1e-5) and torch.equal(y_fast, y_classic))
plots.show_augmented(fast.train, n=8, repeats=3, class_names=cifar.class_names,
                     title='Row 1: original; rows 2+: random crop + flip + cutout draws');

# %% [markdown]
# ## The model
# Four blocks C1-C4 and GAP, no max-pooling. Only one conv runs at 32x32 (on a CPU every layer there costs four times one at 16x16, batch-norm and ReLU included); stride-2 convs downsample at the end of C1, C2 and C3. Comments give each layer's output size and RF.

# %%
print(inspect.getsource(cifar.SeparableConv))
print(inspect.getsource(cifar.AdvancedConvNet))

# %%
# NBVAL_CHECK_OUTPUT
model = cifar.build()
print(f"{engine.count_parameters(model):,} parameters, {cifar.total_macs(model):,} MACs per image")

# %% [markdown]
# The summary follows the real forward pass; **RF** is each layer's receptive field in input pixels, **Jump** the input pixels between neighbouring output units.

# %%
# NBVAL_CHECK_OUTPUT
summary(model, (3, 32, 32))

# %%
# NBVAL_CHECK_OUTPUT
rf_gap = cifar.rf_before_gap(model)
print(f"RF of the last feature map (before GAP): {rf_gap} px; "
      f"RF of the output (after GAP): {summary(model, (3, 32, 32)).final_rf} px")

# %% [markdown]
# ## What depthwise-separable and dilated convolutions buy, measured on this model
# **Depthwise-separable**: a plain 3x3 from C_in to C_out channels has 9·C_in·C_out weights and costs that many multiply-accumulates (MACs) per output pixel. The separable version splits it into a depthwise 3x3 (9·C_in: each channel filtered on its own) and a pointwise 1x1 (C_in·C_out: channels mixed), with the **same RF growth**. Each separable layer of this model against the plain 3x3 it replaces (MACs per image, from the layer shapes):

# %%
from IPython.display import Markdown
Markdown(cifar.separable_markdown(cifar.separable_costs(model)))

# %% [markdown]
# **Dilated**: a 3x3 with dilation 2 spreads its 9 taps over a 5x5 window, so it adds 4·jump to the RF instead of 2·jump, at the same parameters and MACs. The same model with its two dilated convs set back to dilation 1:

# %%
plain = cifar.without_dilation(model)
print(f"RF before GAP: {cifar.rf_before_gap(model)} px with dilation, {cifar.rf_before_gap(plain)} px without; "
      f"params {engine.count_parameters(model):,} vs {engine.count_parameters(plain):,}, "
      f"MACs {cifar.total_macs(model):,} vs {cifar.total_macs(plain):,}")
rows = ["| layer | kind | output | jump | RF (this model) | RF (no dilation) |", "|---|---|---|---|---|---|"]
for (name, kind, size, jump, rf), (*_, rf_plain) in zip(cifar.rf_rows(model), cifar.rf_rows(plain)):
    rows.append(f"| `{name}` | {kind} | {size} | {jump} | {rf} | {rf_plain} |")
Markdown("\n".join(rows))

# %% [markdown]
# ## Training
# SGD with Nesterov momentum and weight decay 5e-4 under **OneCycleLR** (0.01 -> 0.1 in the first quarter, then down to 1e-4), batch 128, 20 epochs. On a CPU the model trains in float32 with channels-last tensors (`cifar.speed`): in a benchmark made while designing the model (not re-measured by this notebook) that was faster than the default bf16 autocast, because PyTorch's CPU backward of depthwise convs, strided ones above all, is slow in bf16 and in the default memory format. The recipe was fixed before the run; nothing was tuned on the test set.

# %%
recipe = cifar.RECIPE
settings = recipe.run_settings()  # full run; EVA_SMOKE=1 (CI only) makes it a quick one
speed = cifar.speed(device)
# quick mode has 512 images: batches of 32 give OneCycle enough steps for its warm-up phase
batch_size = 32 if settings.quick else recipe.batch_size
SEED = 1
engine.seed_everything(SEED)
loaders = cifar.loaders(batch_size, device=device, seed=SEED,
                        train_limit=settings.train_limit, test_limit=settings.test_limit)
optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), settings.epochs)
print(f"torch threads: {torch.get_num_threads()}; {speed.resolve(device)}")
recipe

# %%
history = engine.fit(model, settings.epochs, loaders.train, loaders.test, optimizer, scheduler,
                     device=device, speed=speed)
history.meta["device_name"] = report.device_description(device)
history.meta["threads"] = torch.get_num_threads()
report.save_history(history, recipe.name, quick=settings.quick)
print(f"{sum(history.seconds) / len(history):.1f} s per training epoch with {torch.get_num_threads()} thread(s)")

# %% [markdown]
# ## Curves and the learning rate actually used

# %%
plots.plot_history(history, recipe.name, target=cifar.TARGET_ACC);
plots.plot_lr(history);

# %% [markdown]
# ## Per class, and what it gets wrong

# %%
per_class = cifar.per_class_accuracy(model, loaders.test)
Markdown("| class | test accuracy |\n|---|---|\n" +
         "\n".join(f"| {name} | {acc:.1f}% |" for name, acc in per_class.items()))

# %%
plots.show_misclassified(model, loaders.test, n=24, class_names=cifar.class_names,
                        mean=cifar.CIFAR10_MEAN, std=cifar.CIFAR10_STD);

# %%
widgets.misclassified_browser(model, loaders.test, class_names=cifar.class_names,
                              mean=cifar.CIFAR10_MEAN, std=cifar.CIFAR10_STD);

# %% [markdown]
# ## Seeds 1 and 2
# The same recipe from seed 2 (seed 1 is the run above).

# %%
seed_histories = {1: history}
for seed in (2,):
    print(f"--- seed {seed}")
    engine.seed_everything(seed)
    seed_loaders = cifar.loaders(batch_size, device=device, seed=seed,
                                 train_limit=settings.train_limit, test_limit=settings.test_limit)
    seed_model = cifar.build()
    seed_opt, seed_sched = recipe.make_optimizer(seed_model, len(seed_loaders.train), settings.epochs)
    seed_histories[seed] = engine.fit(seed_model, settings.epochs, seed_loaders.train, seed_loaders.test,
                                      seed_opt, seed_sched, device=device, speed=speed, progress=False)
    seed_histories[seed].meta["device_name"] = report.device_description(device)
    seed_histories[seed].meta["threads"] = torch.get_num_threads()
    report.save_history(seed_histories[seed], f"{recipe.name}_seed{seed}", quick=settings.quick)
rows = ["| seed | params | best test (epoch) | last test | last 3 test | s/epoch | target (>= 85%) |",
        "|---|---|---|---|---|---|---|"]
for seed, h in seed_histories.items():
    best, ep = h.best_test
    rows.append(f"| {seed} | {h.meta['params']:,} | {best:.2f}% ({ep}) | {h.test_acc[-1]:.2f}% | "
                f"{', '.join(f'{a:.2f}' for a in h.last(3))} | {sum(h.seconds) / len(h):.1f} | "
                f"{'met' if best >= cifar.TARGET_ACC else 'NOT met'} |")
Markdown("\n".join(rows))

# %% [markdown]
# ## Results
# Rendered from `history` (seed 1); the same table fills the slot at the top.

# %%
report.show_results(history, f"Results: {recipe.name} (seed 1)", quick=settings.quick,
                    target_line=cifar.target_line(history, rf_gap));
