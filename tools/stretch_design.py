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

Usage (one thread per run; two side by side on two cores):
``OMP_NUM_THREADS=1 python tools/stretch_design.py all_separable_w22_ema,base_w18 1,2,3``
"""
from __future__ import annotations

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
    "base_w18_clean_last_epoch": (STRETCH_BASE, _w(18), _clean_last_epoch(STRETCH_BASE)),
}


def main(argv: list[str]) -> None:
    design_runs.main("07_design", CANDIDATES, argv, seeds=[1], describe=lambda h: (
        f"{h.meta['params']:,} params; by epoch " + ", ".join(f"{a:.2f}" for a in h.test_acc)))


if __name__ == "__main__":
    main(sys.argv[1:])
