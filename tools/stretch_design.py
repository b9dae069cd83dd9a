"""The design runs behind notebook 07's bonus model and recipe, on a validation split.

The bonus target: < 3,600 parameters, >= 99.40% test accuracy reached by epoch 6 (of at most 6)
and held, for every seed. Every candidate here trains for 6 epochs on the first 50,000 MNIST
training images and is scored on the last 10,000 (``recipes.run(valid_size=10_000)``); the test
set is never looked at. Each run's history is saved as
``eva_utils/results/07_design_<candidate>_s<seed>.json`` (package data, without the per-step LRs),
and notebook 07 renders them, so the numbers behind the choice come from these runs.

First round, seed 1, one change at a time from ``base_w18``: 07's first recipe
(``recipes.STRETCH_START``: 06's OneCycle in 6 epochs, peak LR 0.1, Nesterov, rotation +-7 degrees)
with what 05 and 06 gained since (the mild elastic distortion, precise BN: ``STRETCH_BASE``), on
07's first layout with 18 separable channels (a plain 3x3 opens block 2, then three depthwise-
separable 3x3s; 3,560 parameters). Where the parameters are spent came first, as the frontier
suggests: block 2's first 3x3 separable too (``sep3_*``), block 1 padded, a depthwise ReLU, and
every 3x3 after conv1 separable (``all_separable_w22``, 3,500 parameters: 24 channels before the
pool, 22 in block 2). Then the recipe: batch 64, peak LR 0.2, an EMA of the weights, how much
augmentation (none, rotation alone, rotation 10, elastic 24, none in the last epoch).

Second round: the leading rows from seeds 2 and 3 as well, since one seed's tenth of a point is
noise. The choice (``CHOSEN``) is the best mean over seeds 1-3.

Third round, seeds 1-2, each from ``CHOSEN``: the same parameters spent differently (the pool
later, :class:`LatePool`; block 2's last three 3x3s one shared conv, :class:`SharedBlock2`; the last
conv straight to the classes; SiLU) and the recipe's remaining knobs (weight decay, label
smoothing, fp32 training), then the data and the signal's path (the warp resampled bilinearly,
shifts, zoom, a peak LR of 0.15, a skip around each of block 2's last three 3x3s:
:class:`ResidualStretch`). The rows at least level with ``CHOSEN`` on seeds 1-2 ran from seed 3;
one would replace it only with a mean at least 0.03 points higher and no seed more than 0.02
below (the appendix's rule). None did (notebook 07 prints the verdicts).

Usage (one thread per run; two side by side on two cores):
``OMP_NUM_THREADS=1 python tools/stretch_design.py all_separable_w22_ema,base_w18 1,2,3``
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import design_runs  # noqa: E402  (it puts the repository on the path for eva_utils)
from design_runs import CleanAfter, batches_per_epoch  # noqa: E402

from eva_utils import recipes  # noqa: E402
from eva_utils.models import SeparableConv, Stretch, check_input, conv_block  # noqa: E402



#: 07's start with 05's mild elastic distortion and 06's precise BN.
STRETCH_BASE = recipes.STRETCH_START.with_(elastic=recipes.ELASTIC_ALPHA, precise_bn=10_000)


class SeparableBNReLU(nn.Sequential):
    """A depthwise-separable 3x3 with BatchNorm and ReLU after the depthwise conv too (MobileNet's
    layout, unlike :class:`SeparableConv`'s Xception one): one more non-linearity per layer for
    2 x C_in BatchNorm weights."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, groups=in_ch, bias=False), nn.BatchNorm2d(in_ch), nn.ReLU(),
            conv_block(in_ch, out_ch, kernel=1, bn=True),
        )


class StretchSearch(nn.Module):
    """The Stretch layout with the search's two structural switches.

    ``sep_conv3``: block 2's first 3x3 depthwise-separable too (all of block 2 separable).
    ``padded_block1``: block 1's two 3x3s padded (28 -> 28 -> 28, max-pool to 14), so block 2
    ends on a 6x6 map instead of 4x4.
    ``widths = (conv1, conv2, trans1, conv3, separable)`` as in :class:`Stretch`.
    """

    def __init__(self, widths=(8, 12, 8, 12, 18), sep_conv3: bool = False, padded_block1: bool = False,
                 depthwise_relu: bool = False):
        super().__init__()
        sep = SeparableBNReLU if depthwise_relu else (lambda i, o: SeparableConv(i, o, padding=0))
        c1, c2, t, c3, s = widths
        p = 1 if padded_block1 else 0
        self.widths = tuple(widths)
        self.conv1 = conv_block(1, c1, padding=p, bn=True)            # 28 -> 26 (28) | RF 3
        self.conv2 = conv_block(c1, c2, padding=p, bn=True)           # 26 -> 24 (28) | RF 5
        self.pool1 = nn.MaxPool2d(2, 2)                               # -> 12 (14)    | RF 6
        self.trans1 = conv_block(c2, t, kernel=1, bn=True)
        self.conv3 = sep(t, c3) if sep_conv3 else conv_block(t, c3, bn=True)  # RF 10
        self.sep4 = sep(c3, s)                                        # RF 14
        self.sep5 = sep(s, s)                                         # RF 18
        self.sep6 = sep(s, s)                                         # -> 4 (6)      | RF 22
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(s, 10, 1, bias=False)

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.sep6(self.sep5(self.sep4(self.conv3(x))))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class LatePool(nn.Module):
    """The all-separable layout with the pool moved later: more depthwise-separable 3x3s at full
    resolution before it (``before_pool`` widths), fewer or narrower after it (``after_pool``).

    Why: a separable 3x3's parameters do not depend on the size of its map, so the same
    parameters can be spent where the map is 24x24 instead of 12x12, buying compute (more
    positions per weight) rather than weights; the GAP then averages a 3x3 or 4x4 map.
    ``trans`` is the 1x1 squeeze after the pool (0: none).
    """

    def __init__(self, conv1=10, before_pool=(16, 16), trans=10, after_pool=(21, 21, 21, 21)):
        super().__init__()
        self.widths = (conv1, tuple(before_pool), trans, tuple(after_pool))
        layers, c = [conv_block(1, conv1, bn=True)], conv1               # 28 -> 26 | RF 3
        for w in before_pool:                                             # each: -2 px, RF + 2
            layers.append(SeparableConv(c, w, padding=0))
            c = w
        layers.append(nn.MaxPool2d(2, 2))                                 # halves the map
        if trans:
            layers.append(conv_block(c, trans, kernel=1, bn=True))
            c = trans
        for w in after_pool:                                              # each: -2 px, RF + 4
            layers.append(SeparableConv(c, w, padding=0))
            c = w
        self.body = nn.Sequential(*layers)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(c, 10, 1, bias=False)

    def forward(self, x):
        check_input(x)
        return F.log_softmax(self.head(self.gap(self.body(x))).flatten(1), dim=1)


class SharedBlock2(nn.Module):
    """Stretch with block 2's last 3x3s one shared separable conv, applied ``applications`` times.

    Why: in 6 epochs the frontier climbs with parameters, so reusing a layer's weights buys
    depth at no parameter cost and spends the budget on width instead. Each application keeps
    a BatchNorm of its own (the statistics of its input differ), 2 x width parameters each;
    ``own_depthwise`` gives each application its own depthwise 3x3 too (9 x width each) and
    shares only the 1x1, where the parameters are. With four applications the first is padded,
    so the GAP still averages a 4x4 map.
    """

    def __init__(self, widths=(10, 24, 10, 36), applications: int = 3, own_depthwise: bool = False):
        super().__init__()
        c1, c2, t, s = self.widths = tuple(widths)
        self.conv1 = conv_block(1, c1, bn=True)                       # 28 -> 26 | RF 3
        self.conv2 = SeparableConv(c1, c2, padding=0)                 # 26 -> 24 | RF 5
        self.pool1 = nn.MaxPool2d(2, 2)                               # 24 -> 12 | RF 6
        self.trans1 = conv_block(c2, t, kernel=1, bn=True)            # 12 -> 12 | RF 6
        self.conv3 = SeparableConv(t, s, padding=0)                   # 12 -> 10 | RF 10
        pads = [1] + [0] * 3 if applications == 4 else [0] * applications   # ... -> 4x4 | RF 22 (26)
        depthwise = [nn.Conv2d(s, s, 3, padding=p, groups=s, bias=False) for p in pads]
        self.depthwise = nn.ModuleList(depthwise if own_depthwise else depthwise[:1])
        self.pads = pads
        self.pointwise = nn.Conv2d(s, s, 1, bias=False)               # shared by every application
        self.norms = nn.ModuleList(nn.BatchNorm2d(s) for _ in pads)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(s, 10, 1, bias=False)

    def forward(self, x):
        check_input(x)
        x = self.conv3(self.trans1(self.pool1(self.conv2(self.conv1(x)))))
        for i, (pad, norm) in enumerate(zip(self.pads, self.norms)):
            dw = self.depthwise[i if len(self.depthwise) > 1 else 0]
            x = F.relu(norm(self.pointwise(F.conv2d(x, dw.weight, padding=pad, groups=dw.groups))))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


def _headless(widths=(10, 24, 10, 26)):
    """Stretch whose last separable conv maps straight to the 10 classes (no BN, no ReLU) before
    the GAP: the head's 1x1 and block 2's last 22 x 22 pointwise become one 26 x 10 one."""
    def build():
        model = Stretch(widths=widths)
        s = widths[3]
        model.conv6 = nn.Sequential(nn.Conv2d(s, s, 3, groups=s, bias=False), nn.Conv2d(s, 10, 1, bias=False))
        model.head = nn.Identity()
        return model
    return build


def _silu(widths=(10, 24, 10, 22)):
    """Stretch with SiLU (x * sigmoid(x)) in place of every ReLU: a smooth activation, no parameters."""
    def build():
        model = Stretch(widths=widths)
        for module in list(model.modules()):
            for name, child in module.named_children():
                if isinstance(child, nn.ReLU):
                    setattr(module, name, nn.SiLU())
        return model
    return build


class ResidualStretch(Stretch):
    """The chosen Stretch with a skip around each of block 2's last three 3x3s: the layer's
    output plus its input, centre-cropped by a pixel each side (the unpadded 3x3 shrank the map
    by two). No parameters added; the identity path lets the signal and its gradient pass
    every layer, which can make 6 epochs go further."""

    def forward(self, x):
        check_input(x)
        x = self.conv3(self.trans1(self.pool1(self.conv2(self.conv1(x)))))
        for conv in (self.conv4, self.conv5, self.conv6):
            x = conv(x) + x[..., 1:-1, 1:-1]
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


def _bilinear_warp(recipe):
    """The recipe's own warp (rotation and elastic distortion), resampled bilinearly instead of by the
    nearest pixel: a sub-pixel move shades a stroke's edge instead of jumping it a whole pixel or not at all."""
    return lambda: dataclasses.replace(recipe.make_augment(), mode="bilinear")


def _clean_last_epoch(recipe):
    return lambda: CleanAfter(recipe.make_augment(), batches_per_epoch(recipe) * (recipe.epochs - 1))


def _separable(widths=(10, 24, 10, 22)):
    """The layout chosen here, every 3x3 after conv1 depthwise-separable: the package's Stretch."""
    return lambda: Stretch(widths=widths)


def _w(s):
    """07's first layout (a plain 3x3 opens block 2, then three separable ones ``s`` wide)."""
    return lambda: StretchSearch(widths=(8, 12, 8, 12, s))


#: The row the course adopts (``RECIPES["stretch"]`` on ``models.Stretch()``), chosen by the mean of
#: its epoch-6 validation accuracy over seeds 1-3 against the other rows run from those seeds.
CHOSEN = "all_separable_w22_ema"

#: The chosen row's recipe (``RECIPES["stretch"]``), where the third round starts.
CHOSEN_RECIPE = STRETCH_BASE.with_(ema=0.99)

#: name -> (recipe, model factory[, augmentation factory])
CANDIDATES = {
    # 07's first recipe as it was, on its model (the old ``stretch`` recipe without its EMA)
    "start_w16": (recipes.STRETCH_START, _w(16)),
    "base_w18": (STRETCH_BASE, _w(18)),
    "sep3_w20": (STRETCH_BASE, lambda: StretchSearch((8, 12, 8, 20, 20), sep_conv3=True)),
    "padded_b1_w18": (STRETCH_BASE, lambda: StretchSearch((8, 12, 8, 12, 18), padded_block1=True)),
    "base_w18_batch64": (STRETCH_BASE.with_(batch_size=64), _w(18)),
    "base_w18_ema": (STRETCH_BASE.with_(ema=0.99), _w(18)),
    "base_w18_peak_0.2": (STRETCH_BASE.with_(lr=0.02, max_lr=0.2), _w(18)),
    # how much augmentation 3.5k parameters can use in 6 epochs (train accuracy stays below validation)
    "base_w18_no_augmentation": (STRETCH_BASE.with_(rotation=0.0, elastic=0.0), _w(18)),
    "base_w18_rotation_only": (STRETCH_BASE.with_(elastic=0.0), _w(18)),
    "base_w18_elastic_24": (STRETCH_BASE.with_(elastic=24.0), _w(18)),
    "base_w18_rotation_10": (STRETCH_BASE.with_(rotation=10.0), _w(18)),
    # block 1 wider (16 channels after conv2), paid for by an all-separable block 2 18 wide
    "sep3_wide_block1": (STRETCH_BASE, lambda: StretchSearch((8, 16, 8, 18, 18), sep_conv3=True)),
    "w17_depthwise_relu": (STRETCH_BASE, lambda: StretchSearch((8, 12, 8, 12, 17), depthwise_relu=True)),
    "base_w18_ema_batch64": (STRETCH_BASE.with_(ema=0.99, batch_size=64), _w(18)),
    "all_separable_w22": (STRETCH_BASE, _separable()),
    "all_separable_w22_ema": (STRETCH_BASE.with_(ema=0.99), _separable()),
    "all_separable_w22_ema_batch64": (STRETCH_BASE.with_(ema=0.99, batch_size=64), _separable()),
    "all_separable_sep2_28_ema": (STRETCH_BASE.with_(ema=0.99), _separable((10, 28, 12, 21))),
    "all_separable_w22_ema_0.995": (STRETCH_BASE.with_(ema=0.995), _separable()),
    # third round: the pool later (the same parameters spent on larger maps), and the recipe's
    # regularisers the first rounds left out (weight decay, label smoothing)
    "late_pool_16x2_w21_ema": (CHOSEN_RECIPE, lambda: LatePool(10, (16, 16), 10, (21,) * 4)),
    "late_pool_16x3_w20_ema": (CHOSEN_RECIPE, lambda: LatePool(10, (16, 16, 16), 10, (20,) * 3)),
    "all_separable_w22_ema_wd": (CHOSEN_RECIPE.with_(weight_decay=5e-4), _separable()),
    "all_separable_w22_ema_ls": (CHOSEN_RECIPE.with_(label_smoothing=0.05), _separable()),
    "shared_block2_w36_ema": (CHOSEN_RECIPE, lambda: SharedBlock2((10, 24, 10, 36))),
    "headless_w26_ema": (CHOSEN_RECIPE, _headless()),
    "all_separable_w22_ema_silu": (CHOSEN_RECIPE, _silu()),
    "all_separable_w22_ema_fp32": (CHOSEN_RECIPE.with_(cpu_precision="fp32"), _separable()),
    "shared_block2_x4_w36_ema": (CHOSEN_RECIPE, lambda: SharedBlock2((10, 24, 10, 36), 4)),
    "shared_pointwise_w31_ema": (CHOSEN_RECIPE,
                                 lambda: SharedBlock2((10, 24, 10, 31), own_depthwise=True)),
    # third round, continued: the data and the signal's path (each from CHOSEN)
    "all_separable_w22_ema_bilinear": (CHOSEN_RECIPE, _separable(), _bilinear_warp(CHOSEN_RECIPE)),
    "all_separable_w22_ema_bilinear_elastic_24": (CHOSEN_RECIPE.with_(elastic=24.0), _separable(),
                                                  _bilinear_warp(CHOSEN_RECIPE.with_(elastic=24.0))),
    "residual_w22_ema": (CHOSEN_RECIPE, lambda: ResidualStretch()),
    "all_separable_w22_ema_shift_1px": (CHOSEN_RECIPE.with_(translate=0.05), _separable()),
    "all_separable_w22_ema_zoom_10": (CHOSEN_RECIPE.with_(scale=0.1), _separable()),
    "all_separable_w22_ema_peak_0.15": (CHOSEN_RECIPE.with_(lr=0.015, max_lr=0.15), _separable()),
    "base_w18_clean_last_epoch": (STRETCH_BASE, _w(18), _clean_last_epoch(STRETCH_BASE)),
}


def main(argv: list[str]) -> None:
    design_runs.main("07_design", CANDIDATES, argv, seeds=[1], describe=lambda h: (
        f"{h.meta['params']:,} params; by epoch " + ", ".join(f"{a:.2f}" for a in h.test_acc)))


if __name__ == "__main__":
    main(sys.argv[1:])
