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
# - The course's second dataset, **CIFAR-10** (32x32 colour, 10 classes). The network to beat: a student team's 467,098-parameter net (plain 3x3 blocks, one depthwise + pointwise pair, GAP + Linear) at **83.61%** test accuracy after 20 epochs, as reported by its authors (EVA course, Assignment 7, by Anjan Kumar Patra, Pradipt Trivedi, Avnish Midha and Ramkumar M.; not re-run here). "The network to beat" below rebuilds it from their published layer list.
# - **< 200,000 parameters**, **receptive field > 44 before GAP** (GAP then makes the output see the whole image), no max-pooling (stride-2 convs downsample), at least one **depthwise-separable** and one **dilated** convolution, GAP before the classifier.
# - **>= 85% test accuracy within 20 epochs** for seeds 1 and 2 (goal: 88%).
# - Augmentation on whole batches, a different draw per image: random crop (pad 4), horizontal flip, cutout.
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

import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from IPython.display import Markdown, display

import eva_utils
from eva_utils import bench, convs, data, datasets, engine, plots, recipes, report, sources, widgets
from eva_utils.summary import summary

device = eva_utils.start()  # figures inline, the Results slot above, the clock, and where this runs

# %% [markdown]
# ## Analysis
# - **Target met for both seeds, goal not reached.** Seeds 1 and 2 both end at 87.30% test accuracy, at epoch 20 (seeds table), with **140,570 parameters**: under the 200,000 budget and above the 85% target; the 88% goal is missed.
# - **Against the network to beat.** Its authors report 83.61% after 20 epochs with 467,098 parameters; both seeds here end above that with 3.3x fewer parameters and 3.1x fewer MACs per image (the network-to-beat cells). Their figure is from their own training, not re-run here: it compares the networks as each was trained.
# - **What the separable convs buy.** The six separable layers hold 108,704 weights where plain 3x3s with the same channels would hold 923,904 (8.5x fewer), and cost 4,395,008 MACs per image instead of 36,569,088 (cost table): that pays for 128-192 channels in the last blocks inside the budget. In accuracy, one is measured: with a plain 3x3 for C3's first conv (270,490 parameters, over the budget) seed 1 ends at 87.75% against this run's 87.30% (ablation table). One seed on the test set shows what the change did there and chooses nothing; the separable conv is what keeps the model inside the budget.
# - **What the dilated convs buy.** The last feature map (4x4) sees 69 px, above the required 44 (after GAP, 93 px). With both dilated convs set back to dilation 1, parameters and MACs stay the same (140,570; 11,917,184) and that RF falls to 57 px (RF table): still above 44, so here dilation is margin, and the stride-2 convs do most of the RF growth.
# - **Curves.** While the LR is high the test accuracy is noisy (training log): seed 1 falls from 75.11% at epoch 6 to 67.72% at epoch 8. As the LR anneals it climbs, and the last epoch is the best for both seeds. Train accuracy (on augmented batches) ends 1.40 points above test (Results): the model is not over-fitting.
# - **Per class.** Cats are the hardest class (72.3%), then dogs (80.6%) and birds (81.0%); automobiles (94.2%) and ships (94.1%) are the easiest (per-class table). The largest mix-ups are cats and dogs (confusion matrix).
# - **Speed** (an AMD EPYC, one thread). Training in float32 with channels-last takes 85 ms per batch of 128, against 154 ms under the engine's default bf16 autocast (timing cell); a training epoch took 36.8 s (Results).

# %% [markdown]
# ## Data
# CIFAR-10 from `torchvision.datasets.CIFAR10(download=True)` where there is internet; offline, from a folder of PNG class folders (`$EVA_CIFAR10_DIR`, or `../shared/data/cifar10` next to the repository). The PNGs are decoded **once** into one uint8 tensor per split and cached, in a fixed shuffled order (the class folders are sorted by class); every later run loads the cache, checked for 50,000/10,000 images and 5,000/1,000 per class. Normalisation uses the per-channel mean/std computed from the training tensor.

# %%
CIFAR = datasets.CIFAR10  # shape, classes, published statistics
start = time.perf_counter()
tensors = sources.load_cifar10()
origin = tensors["meta"]["source"]
origin = f"the PNG class folders {Path(origin).name}/" if Path(origin).is_dir() else origin
print(f"loaded in {time.perf_counter() - start:.1f} s from {report.shown_path(sources.cifar_cache_path())}; "
      f"decoded once from {origin} in {tensors['meta']['decode_seconds']:.1f} s; order: {tensors['meta']['order']}")
for split in ("train", "test"):
    x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
    print(f"{split}: {tuple(x.shape)} {x.dtype}, per class: {torch.bincount(y).tolist()}")
mean, std = data.channel_stats(tensors["train_x"])
print("train mean", [round(m, 8) for m in mean], "(published:", list(CIFAR.mean), ")")
print("train std ", [round(s, 8) for s in std], "(published:", list(CIFAR.std), ")")

# %% [markdown]
# The fast loader (the whole split as one tensor, batched by index) and the textbook `ImageFolder` + `DataLoader` pipeline give the same normalised test tensors:

# %%
recipe = recipes.RECIPES["cifar_advanced"]
fast = data.loaders(128, dataset="cifar10", fast=True, augment=recipe.make_augment(), device="cpu",
                    splits=data.Splits(test_limit=200))
classic = data.loaders(128, dataset="cifar10", fast=False, device="cpu", test_batch_size=200,
                       splits=data.Splits(test_limit=200))
x_fast, y_fast = next(iter(fast.test))
x_classic, y_classic = next(iter(classic.test))
print(x_fast.shape, "same tensors in both paths:",
      torch.allclose(x_fast, x_classic, atol=1e-5) and torch.equal(y_fast, y_classic))
print(recipe.make_augment())
plots.show_augmented(fast.train, n=8, repeats=3, class_names=CIFAR.classes,
                     title='Row 1: original; rows 2+: random crop + flip + cutout draws');

# %% [markdown]
# ## The model
# Four blocks C1-C4 and GAP, no max-pooling. Only one conv runs at 32x32 (on a CPU every layer there costs four times one at 16x16, batch-norm and ReLU included); stride-2 convs downsample at the end of C1, C2 and C3. Edit the classes here; a test checks they equal `eva_utils.models`' (registered as `cifar_advanced`: `python -m eva_utils train --recipe cifar_advanced` trains it). The depthwise-separable 3x3, `SeparableConv`, is defined in notebook 07, where it is introduced (a test keeps it equal to `eva_utils.models.SeparableConv`), and imported here from the package. Comments give each layer's output size and RF.

# %%
from eva_utils.models import SeparableConv, check_input  # SeparableConv: notebook 07's


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, *, stride: int = 1, dilation: int = 1,
            groups: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (padding keeps the size, or halves it with stride 2) -> BatchNorm -> ReLU."""
    padding = dilation * (kernel - 1) // 2
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding,
                                         dilation=dilation, groups=groups, bias=False),
                               nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AdvancedConvNet(nn.Module):
    """CIFAR-10 in four blocks (C1 C2 C3 C4) + GAP, no max-pooling.

    Downsampling is done by stride-2 convolutions at the end of C1, C2 and C3; the RF is
    grown cheaply by dilated 3x3s (dilation 2 adds 4*jump instead of 2*jump) and the
    width is paid for with depthwise-separable convs. Sizes below are for a 32x32 input;
    ``jump`` is the input-pixel distance between neighbouring units.
    """

    def __init__(self, widths=(16, 48, 128, 192), dropout: float = 0.05):
        super().__init__()
        w1, w2, w3, w4 = widths
        # C1 (32x32, jump 1): ONE conv at full resolution, then straight down to 16x16: on a CPU
        # every layer here costs 4x one at 16x16 (BN and ReLU too), so it stays short and narrow
        self.c1 = nn.Sequential(
            conv_bn(3, w1),                                    # 32 -> 32 | RF 3
            conv_bn(w1, w2, stride=2),                         # 32 -> 16 | RF 5,  jump 2
        )
        # C2 (16x16, jump 2): one plain 3x3 dilated by 2 sees a 5x5 window with 9 weights
        self.c2 = nn.Sequential(
            SeparableConv(w2, w2),                             # 16 -> 16 | RF 9
            conv_bn(w2, w2, dilation=2),                       # 16 -> 16 | RF 17  (dilated)
            SeparableConv(w2, w3, stride=2),                   # 16 -> 8  | RF 21, jump 4
        )
        # C3 (8x8, jump 4)
        self.c3 = nn.Sequential(
            SeparableConv(w3, w3),                             # 8 -> 8   | RF 29
            SeparableConv(w3, w3, dilation=2),                 # 8 -> 8   | RF 45  (dilated separable)
            SeparableConv(w3, w4, stride=2),                   # 8 -> 4   | RF 53, jump 8
        )
        # C4 (4x4, jump 8)
        self.c4 = nn.Sequential(
            SeparableConv(w4, w4),                             # 4 -> 4   | RF 69
            nn.Dropout(dropout),
        )
        # Output: GAP over the 4x4 map (every unit already sees 69 > 44 pixels), then a linear layer
        self.gap = nn.AdaptiveAvgPool2d(1)                     # 4 -> 1   | RF 69 + 3*8 = 93
        self.fc = nn.Linear(w4, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before GAP (its RF is the one that must exceed 44)."""
        return self.c4(self.c3(self.c2(self.c1(x))))

    def forward(self, x):
        check_input(x, (3, 32, 32), "CIFAR-10")
        x = self.gap(self.features(x)).flatten(1)
        return F.log_softmax(self.fc(x), dim=1)

# %% tags=["nbval-check-output"]
SEED = 1
engine.seed_everything(SEED)  # before the weights are drawn
model = AdvancedConvNet()
print(f"{engine.count_parameters(model):,} parameters, {convs.total_macs(model):,} MACs per image")

# %% [markdown]
# The summary follows the real forward pass; **RF** is each layer's receptive field in input pixels, **Jump** the input pixels between neighbouring output units.

# %% tags=["nbval-check-output"]
summary(model, CIFAR.shape)

# %% tags=["nbval-check-output"]
rf_gap = convs.rf_before_gap(model)
print(f"RF of the last feature map (before GAP): {rf_gap} px; "
      f"RF of the output (after GAP): {summary(model, CIFAR.shape).final_rf} px")

# %% [markdown]
# ## What depthwise-separable and dilated convolutions buy, measured on this model
# **Depthwise-separable**: a plain 3x3 from C_in to C_out channels has 9·C_in·C_out weights and costs that many multiply-accumulates (MACs) per output pixel. The separable version splits it into a depthwise 3x3 (9·C_in: each channel filtered on its own) and a pointwise 1x1 (C_in·C_out: channels mixed), with the **same RF growth**. Each separable layer of this model against the plain 3x3 it replaces (MACs per image, from the layer shapes):

# %%
Markdown(convs.separable_markdown(convs.separable_costs(model)))

# %% [markdown]
# **Dilated**: a 3x3 with dilation 2 spreads its 9 taps over a 5x5 window, so it adds 4·jump to the RF instead of 2·jump, at the same parameters and MACs. The same model with its two dilated convs set back to dilation 1:

# %%
plain = convs.without_dilation(model)
print(f"RF before GAP: {convs.rf_before_gap(model)} px with dilation, {convs.rf_before_gap(plain)} px without; "
      f"params {engine.count_parameters(model):,} vs {engine.count_parameters(plain):,}, "
      f"MACs {convs.total_macs(model):,} vs {convs.total_macs(plain):,}")
rows = ["| layer | kind | output | jump | RF (this model) | RF (no dilation) |", "|---|---|---|---|---|---|"]
for (name, kind, size, jump, rf), (*_, rf_plain) in zip(convs.rf_rows(model), convs.rf_rows(plain)):
    rows.append(f"| `{name}` | {kind} | {size} | {jump} | {rf} | {rf_plain} |")
Markdown("\n".join(rows))

# %% [markdown]
# ## The network to beat
# The Target's baseline, rebuilt layer for layer from the summary its authors published, as `eva_utils.models.ReportedBaseline` (a test checks every row against theirs): pairs of plain padded 3x3s with max-pooling between them, one depthwise + pointwise pair at the end, GAP and a linear layer. Each of its blocks runs conv, ReLU, then BatchNorm and dropout; the dropout rate is not in their summary, so the class takes it as an argument. Its accuracy is the one its authors report after 20 epochs; it is not re-run here.

# %%
from eva_utils.models import ReportedBaseline  # written in eva_utils/models.py from the published summary

REPORTED_ACCURACY = 83.61  # % on the test set after 20 epochs, reported by its authors (not re-run here)
with torch.random.fork_rng():  # drawn aside: the seed-1 run below gets the same random numbers as without this cell
    baseline = ReportedBaseline()
summary(baseline, CIFAR.shape)

# %% [markdown]
# Both networks side by side, MACs per image counted from the layer shapes as in the cost table above:

# %%
for name, net in {"the network to beat": baseline, "AdvancedConvNet (this notebook)": model}.items():
    print(f"{name:32} {engine.count_parameters(net):>9,} params {convs.total_macs(net):>12,} MACs per image, "
          f"RF before GAP {convs.rf_before_gap(net)} px")
print(f"AdvancedConvNet has {engine.count_parameters(baseline) / engine.count_parameters(model):.1f}x fewer parameters "
      f"and {convs.total_macs(baseline) / convs.total_macs(model):.1f}x fewer MACs per image")
print(f"the network to beat: {REPORTED_ACCURACY:.2f}% test accuracy after 20 epochs, reported by its authors")

# %% [markdown]
# ## Training
# SGD with Nesterov momentum and weight decay 5e-4 under **OneCycleLR** (0.01 -> 0.1 in the first quarter, then down to 1e-4), batch 128, 20 epochs. The recipe was fixed before the run; nothing was tuned on the test set. On a CPU the recipe trains in float32 with channels-last tensors (`cpu_precision`, `cpu_channels_last`) instead of the engine's default for this hardware; the next cell times both on 10 batches, in this run:

# %%
if device.type == "cpu":
    timed = {"engine's default": engine.Speed(), "the recipe's (fp32, channels-last)": recipe.speed(device)}
    batches = 2 if recipes.quick_mode() else 10
    for name, speed in timed.items():
        per_batch, _ = bench.time_training(bench.Variant(name, True, speed), device, batches, warmup=2,
                                           recipe_name="cifar_advanced")
        print(f"{name:36} {speed.resolve(device).precision}, channels_last={speed.resolve(device).channels_last}: "
              f"{per_batch * 1000:.0f} ms per batch of {recipe.batch_size}")
else:
    print(f"on {device.type} the recipe keeps the engine's defaults: {recipe.speed(device).resolve(device)}")

# %%
settings = recipe.run_settings()  # full run; EVA_SMOKE=1 (CI only) makes it a quick one
# quick mode has 1,024 images: batches of 32 give OneCycle enough steps for its warm-up phase
if settings.quick:
    recipe = recipe.with_(batch_size=32)
print(f"torch threads: {torch.get_num_threads()}; {recipe.speed(device).resolve(device)}")
recipe

# %%
# a full run records its device and machine and keeps its history as results/<step>.json
run = recipes.run(recipe, SEED, model=model, device=device, settings=settings)
history, loaders = run.history, run.loaders
print(f"{sum(history.seconds) / len(history):.1f} s per training epoch with {torch.get_num_threads()} thread(s)")

# %% [markdown]
# ## Curves and the learning rate actually used

# %%
plots.plot_history(history, recipe.name, target=recipes.CIFAR_TARGET.acc);
plots.plot_lr(history);

# %% [markdown]
# ## Per class, and what it gets wrong

# %%
Markdown(report.per_class_markdown({"test accuracy": plots.per_class_accuracy(model, loaders.test, CIFAR.classes)}))

# %% [markdown]
# Which classes it mixes up: rows are the true class, columns its prediction (the diagonal, in blue, is what it gets right).

# %%
plots.plot_confusion(model, loaders.test, class_names=CIFAR.classes);

# %%
plots.show_misclassified(model, loaders.test, n=24, class_names=CIFAR.classes,
                        mean=loaders.mean, std=loaders.std);

# %%
widgets.misclassified_browser(model, loaders.test, class_names=CIFAR.classes,
                              mean=loaders.mean, std=loaders.std);

# %% [markdown]
# ## Seeds 1 and 2
# The same recipe from seed 2 (seed 1 is the run above), through the same training path.

# %%
seed_histories = {1: history}
for seed in (2,):
    print(f"--- seed {seed}")
    engine.seed_everything(seed)
    seed_histories[seed] = recipes.run(recipe, seed, model=AdvancedConvNet(), device=device, settings=settings,
                                       progress=False, save=f"{recipe.name}_seed{seed}").history
rows = ["| seed | params | best test (epoch) | last test | last 3 test | s/epoch | target (>= 85%) |",
        "|---|---|---|---|---|---|---|"]
for seed, h in seed_histories.items():
    met, _ = recipes.target_report(h, target=recipes.CIFAR_TARGET, rf=rf_gap)
    best, ep = h.best_test
    rows.append(f"| {seed} | {h.meta['params']:,} | {best:.2f}% ({ep}) | {h.test_acc[-1]:.2f}% | "
                f"{', '.join(f'{a:.2f}' for a in h.last(3))} | {sum(h.seconds) / len(h):.1f} | "
                f"{'met' if met else 'NOT met'} |")
Markdown("\n".join(rows))

# %% [markdown]
# ## What one separable conv buys in accuracy
# An ablation row: Try #2's model, with C3's first `SeparableConv` replaced by a plain 3x3 (`conv_bn(w3, w3)`), trained with the same recipe from seed 1, beside this notebook's own seed-1 run. It is one seed, scored on the test set; `python tools/ablation_runs.py 09 plain_c3 1` in the repository made it, and it ships with the package. It measures what the change does and chooses nothing: the model above was fixed before it ran.

# %%
plain_c3 = AdvancedConvNet()
plain_c3.c3[0] = conv_bn(128, 128)  # Try #2: a plain 3x3 (+ BN, ReLU) for C3's first separable conv
for name, net in {"this model": model, "a plain 3x3 in C3": plain_c3}.items():
    print(f"{name:18} C3's first conv {engine.count_parameters(net.c3[0]):>7,} params; whole model "
          f"{engine.count_parameters(net):,} params, {convs.total_macs(net):,} MACs per image, "
          f"RF before GAP {convs.rf_before_gap(net)} px")
try:
    ablation = report.load_design_runs("09_cifar10_advanced_convs_ablation",
                                       {"a plain 3x3 in C3 (seed 1)": "plain_c3"}, seeds=(1,))
except FileNotFoundError:
    print("no ablation run in this installation of eva_utils: `python tools/ablation_runs.py 09 plain_c3 1` makes it")
else:
    runs = {"this model (seed 1, above)": history} | {label: by_seed[1] for label, by_seed in ablation.items()}
    display(Markdown(report.compare_markdown(runs)))

# %% [markdown]
# ## Results
# Rendered from `history` (seed 1); the same table fills the slot at the top.

# %%
met, line = recipes.target_report(history, target=recipes.CIFAR_TARGET, rf=rf_gap)
report.show_results(history, f"Results: {recipe.name} (seed 1)", quick=settings.quick, target_line=line);

# %% [markdown]
# ## Try this
# 1. Set the dilation of `c2`'s plain conv back to 1 (`conv_bn(w2, w2)`) and re-run the model and RF cells: expect the RF before GAP to fall from 69 to 65 px, still above 44, with the same 140,570 parameters and 11,917,184 MACs. (The RF table's last column, 57 px, undoes both dilated convs; undoing only `c2`'s takes away 4 px, 2 x jump 2.)
# 2. Replace the first `SeparableConv` of `C3` (`SeparableConv(w3, w3)`) by `conv_bn(w3, w3)`, a plain 3x3, and re-run the model cells: expect the counts the ablation cell prints for it (C3's first conv grows from 17,792 to 147,712 parameters, the model to 270,490, over the 200,000 budget, and to 20,232,064 MACs per image; the RF stays 69). What it did in accuracy on seed 1 is the ablation table's row.
# 3. Drop the cutout (`recipe.with_(cutout=0)`) and train 5 epochs: the gap between train and test accuracy in the curves should widen.
