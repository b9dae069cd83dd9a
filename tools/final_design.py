"""The design runs behind the course's final model and recipe (notebooks 04-06), on a validation split.

Every candidate trains for 15 epochs on the first 50,000 MNIST training images and is scored on
the last 10,000 (``recipes.run(valid_size=10_000)``), from seeds 1 and 2, because what the course
target asks of every seed is the *lowest* of its last 3 epochs, where one seed's tenth of a point
is luck. Each run's history is saved as ``eva_utils/results/06_design_<candidate>_s<seed>.json``
(package data, without the per-step LRs); the appendix notebook 10 reads and shows them, so the numbers behind
the choice come from these runs, never from the test set.

The search started from the first GAP layout (:class:`FirstGap`, three 3x3s in block 2, 7,756
parameters) under 06's OneCycle recipe. Recipe changes (weight averaging, label smoothing, shifts
and zoom, batch 64, a higher peak LR) and a padded block 1 did not beat it; a fourth 3x3 in block 2
with channels widening towards the output did, and became ``models.Regularized``.

Issue 12 (margin for every seed) tried one change each from the final model and recipe on an
Intel Xeon, seeds 1-2, one thread per run, two runs side by side (the ``final_*`` candidates):
none beat ``final_rerun`` (the final itself, lowest of last 3: 99.42 / 99.44 on validation).
Peak LR 0.1 (99.30 / 99.23) and 0.03 (99.34 / 99.34), batch 64 (99.33 / 99.39), weight decay 1e-4
(99.42 / 99.36), rotation 10 (99.28 / 99.36), the max-pool one layer later (99.32 / 99.33), a wider
block 1 (99.34 / 99.32) and flatter widths (99.37 / 99.28) were all lower. Then on an AMD EPYC:
rotation 5 (99.29 / 99.32), block 2's first 3x3 padded (99.32 / 99.33) and training in fp32 instead
of bf16 autocast (99.32 / 99.34) were lower too; ``final_hold_2`` (the cycle in 13 epochs, then 2
epochs at its floor LR) was at 99.42 / 99.42 with its last 3 epochs within 0.02 points, and from
seeds 3-4 against the final run again (99.37 / 99.46 against 99.33 / 99.37) ahead over four seeds
(mean of the lowest 99.42 against 99.39). The hold became the final recipe (RECIPES["final"]);
slower BatchNorm statistics on top of it (``final_hold_2_bn_0.01``) left the level unchanged.

A second AMD EPYC session tried six more changes from the final recipe (with the hold). Mean of
the lowest of the last 3 against the final's 99.42 (seeds 1-4) / 99.42 (seeds 1-2): the cycle in
14 epochs and a 1-epoch hold (99.45 / 99.36 / 99.36 / 99.45: 99.41), rotation read bilinearly
(99.44 / 99.30 / 99.39 / 99.35: 99.37), 07's depthwise-separable block 2 widened to 7,674
parameters (99.39 / 99.42 / 99.28 / 99.35: 99.36), five 3x3s in block 2 (99.39 / 99.43 /
99.23 / 99.37: 99.36), and from seeds 1-2 shifts of up to 1.4 px (99.33 / 99.40) and a slant of up to
+-10 degrees (99.33 / 99.37), both with train accuracy falling (99.3-99.55): none raised the level.

A third AMD EPYC session, seeds 1-2 against the final's 99.42 / 99.42: SiLU (99.44 / 99.35) and
GELU (99.43 / 99.35) instead of ReLU, label smoothing 0.1 (99.29 / 99.23, train accuracy down to
99.4), AdamW under the same OneCycle shape (start 0.001, peak 0.01, weight decay 0.01:
99.29 / 99.45) and each block's ReLU before its BatchNorm (99.36 / 99.36): none raised the
level. (Nesterov momentum 0.95 was tried too and scored exactly the final's digits: OneCycleLR
cycles SGD's momentum between 0.95 and 0.85 itself, so the recipe's value was never used. The
run was dropped, and a recipe that sets a momentum under OneCycle is now refused.) Their histories are shipped with the others.

A fourth AMD EPYC session, seeds 1-2: a two-scale head (GAP of
conv5 and conv6, :class:`MultiScale`, 99.39 / 99.37), steeper widths to 22 channels (99.36 /
99.31), batch 256 with the LRs doubled (99.34 / 99.39), a warm-up share of 0.4 (99.41 / 99.36)
or 0.15 (99.33 / 99.41), and no rotation in the 2 hold epochs (:class:`CleanAfter`, 99.38 /
99.34, train accuracy up to 99.73): none raised the level.

A fifth AMD EPYC session, seeds 1-2: a 3-epoch hold (the cycle in 12 epochs, 99.37 / 99.40) and an
EMA of the weights (0.999) on top of the 2-epoch hold (99.35 / 99.35) were lower too. The appendix notebook 10's
"later rounds" table shows the third, fourth and fifth rounds.

A sixth AMD EPYC session: precise BN on top of the hold (``final_precise_bn``: BatchNorm's
statistics recomputed over 10,000 clean training images before each evaluation), seeds 1-4:
99.44 / 99.42 / 99.41 / 99.42 against the hold's 99.42 / 99.42 / 99.37 / 99.46, the same mean of
the lowest (99.42) with the worst seed raised and no seed's last 3 more than 0.01 apart; adopted
(RECIPES["final"]). A diagnostic with every width x1.4 (15,275 parameters, over the budget)
scored 99.41 / 99.39: the level is not bought by width. The appendix notebook 10's "sixth round" shows both.

A seventh AMD EPYC session, from the final with precise BN, seeds 1-2 (two runs side by side, one
thread each): an elastic distortion on top of the rotation (a recipe's ``elastic``), mild
(alpha 16, moves of ~0.7 px: 99.45 / 99.42, train accuracy on the distorted images 98.9) and at
Simard et al.'s strength (alpha 34, ~1.5 px: 99.25 / 99.13, train 96.9), against the final's
99.44 / 99.42. The mild one equals the final within noise at ~1.5x the training time (429 against
~290 s per run here); the strong one over-regularises 7,972 parameters. Neither was adopted
then (the appendix notebook 10's "seventh and eighth rounds" table shows them now).

An eighth AMD EPYC session, seeds 1-2: a stochastic-weight-averaging tail instead of the hold
(:func:`swa_tail`: the cycle in 11 epochs, then 4 epochs at the start LR 0.005 with a uniform
average of the weights scored from epoch 12, precise BN as in the final): 99.36 / 99.37 against
99.44 / 99.42, train accuracy 99.47 / 99.51. The 11-epoch cycle alone ended at 99.42 / 99.40
(epoch 11), and averaging the weights of 4 epochs at LR 0.005 did not win back the 2 epochs of
annealing it cost. Not adopted. Two more from the final, not shown in the appendix (notebook 10): an anti-aliased max-pool (:class:`BlurPool`: 99.41 / 99.41, train 99.59 / 99.60, at ~1.4x the
time) and dropout 0.02 back on top of the rotation (99.35 / 99.34, train 98.98 / 98.94). Neither
raised the level.

A ninth AMD EPYC session took the mild elastic distortion to seeds 3-6, with the final (precise
BN) run again from seeds 5 and 6 beside it (one thread per run, two side by side). The elastic
distortion now lives in the package (a recipe's ``elastic``, :class:`eva_utils.augment.RandomAffine`),
its smoothing as two matrix products instead of a 17x17 convolution (the same numbers: one pixel
in 2 million differs), so it costs little: seed 6 took 263 s against the final's 266 s, where the
convolution had made a run ~1.5x longer (438-482 s for seeds 3-5). Lowest of the last 3, seeds 1-6:
99.45 / 99.42 / 99.50 / 99.51 / 99.42 / 99.50 (mean 99.47) against the final's 99.44 / 99.42 /
99.41 / 99.42 / 99.40 / 99.39 (mean 99.41): +0.05 on average, no seed below its pair, the worst
seed 99.42 against 99.39. Seeds 1-2 alone had called it even; seeds 3-6 separated it. Chosen on
this split (``final_elastic_16``) and adopted: RECIPES["final"] (and 05's recipe) carry it.

    OMP_NUM_THREADS=1 python tools/final_design.py                  # every candidate, seeds 1 and 2
    OMP_NUM_THREADS=1 python tools/final_design.py ema,onecycle 3   # the named candidates, seed 3
"""
from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from eva_utils import augment, data, devices, engine, histories, recipes  # noqa: E402
from eva_utils.models import Regularized, check_input, conv_block  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import design_runs  # noqa: E402
from design_runs import VALIDATION, CleanAfter, batches_per_epoch  # noqa: E402
from stretch_design import StretchSearch  # noqa: E402  (07's first layout, as final_separable ran it)


class FirstGap(nn.Module):
    """Where the search started: 03's widths with GAP, three 3x3s in block 2 (7,756 parameters)."""

    def __init__(self, padding: int = 0):
        super().__init__()
        # Block 1 (padding=1: the "padded block 1" candidate, 28x28 maps and an 8x8 map at GAP)
        self.conv1 = conv_block(1, 8, bn=True, padding=padding)       # 28 -> 26 | RF 3
        self.conv2 = conv_block(8, 16, bn=True, padding=padding)      # 26 -> 24 | RF 5
        self.pool1 = nn.MaxPool2d(2, 2)                               # 24 -> 12 | RF 6
        self.trans1 = conv_block(16, 10, kernel=1, bn=True)           # 12 -> 12 | RF 6
        self.conv3 = conv_block(10, 16, bn=True)                      # 12 -> 10 | RF 10
        self.conv4 = conv_block(16, 16, bn=True)                      # 10 -> 8  | RF 14
        self.conv5 = conv_block(16, 16, bn=True)                      # 8 -> 6   | RF 18
        self.gap = nn.AdaptiveAvgPool2d(1)                            # 6 -> 1   | RF 28
        self.head = nn.Conv2d(16, 10, 1, bias=False)

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.conv4(self.conv3(x)))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class Deeper(nn.Module):
    """Block 2 one 3x3 deeper (RF 22 before GAP, a 4x4 map), paid for by narrower layers:
    ``widths = (conv1, conv2, trans1, conv3, conv4, conv5, conv6)``. With the widths
    (8, 12, 8, 10, 14, 16, 18) this is ``models.Regularized(dropout=0.0)``, weights drawn alike."""

    def __init__(self, widths=(8, 16, 8, 12, 14, 14, 14), padded: int = 0):
        if padded not in (0, 1):
            raise ValueError(f"padded is 0 or 1 (block 2's first 3x3 padded), got {padded}")
        super().__init__()
        c1, c2, t, c3, c4, c5, c6 = widths
        # padded=1: block 2's first 3x3 keeps its map size (padding 1), so GAP averages a
        # 6x6 map: more positions per weight, for more compute
        self.conv1 = conv_block(1, c1, bn=True)                 # 28 -> 26 | RF 3
        self.conv2 = conv_block(c1, c2, bn=True)                # 26 -> 24 | RF 5
        self.pool1 = nn.MaxPool2d(2, 2)                         # 24 -> 12 | RF 6
        self.trans1 = conv_block(c2, t, kernel=1, bn=True)      # 12 -> 12 | RF 6
        self.conv3 = conv_block(t, c3, bn=True, padding=padded)  # 12 -> 10 (12 padded) | RF 10
        self.conv4 = conv_block(c3, c4, bn=True)                # 10 -> 8  | RF 14
        self.conv5 = conv_block(c4, c5, bn=True)                # 8 -> 6   | RF 18
        self.conv6 = conv_block(c5, c6, bn=True)                # 6 -> 4   | RF 22
        self.gap = nn.AdaptiveAvgPool2d(1)                      # 4 -> 1   | RF 28
        self.head = nn.Conv2d(self.head_inputs(widths), 10, 1, bias=False)

    @staticmethod
    def head_inputs(widths) -> int:
        """The head's input channels: conv6's (a subclass may feed it more)."""
        return widths[-1]

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv6(self.conv5(self.conv4(self.conv3(x))))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class PoolLater(nn.Module):
    """The max-pool one 3x3 later (RF 7 at the pool, a 22x22 map), block 2 three 3x3s to a 5x5 map
    at GAP: more edges and strokes seen at full resolution, for more compute per image."""

    def __init__(self, widths=(8, 10, 12, 8, 14, 16, 18)):
        super().__init__()
        c1, c2, c3, t, c4, c5, c6 = widths
        self.conv1 = conv_block(1, c1, bn=True)                 # 28 -> 26 | RF 3
        self.conv2 = conv_block(c1, c2, bn=True)                # 26 -> 24 | RF 5
        self.conv3 = conv_block(c2, c3, bn=True)                # 24 -> 22 | RF 7
        self.pool1 = nn.MaxPool2d(2, 2)                         # 22 -> 11 | RF 8
        self.trans1 = conv_block(c3, t, kernel=1, bn=True)      # 11 -> 11 | RF 8
        self.conv4 = conv_block(t, c4, bn=True)                 # 11 -> 9  | RF 12
        self.conv5 = conv_block(c4, c5, bn=True)                # 9 -> 7   | RF 16
        self.conv6 = conv_block(c5, c6, bn=True)                # 7 -> 5   | RF 20
        self.gap = nn.AdaptiveAvgPool2d(1)                      # 5 -> 1   | RF 28
        self.head = nn.Conv2d(c6, 10, 1, bias=False)

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv3(self.conv2(self.conv1(x)))))
        x = self.conv6(self.conv5(self.conv4(x)))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class FiveDeep(nn.Module):
    """Block 2 five 3x3s (RF 26 before GAP, a 2x2 map): one more than the final model, paid for
    by narrower layers, ``widths = (conv1, conv2, trans1, conv3, conv4, conv5, conv6, conv7)``."""

    def __init__(self, widths=(8, 10, 8, 10, 12, 12, 14, 16)):
        super().__init__()
        c1, c2, t, c3, c4, c5, c6, c7 = widths
        self.conv1 = conv_block(1, c1, bn=True)                 # 28 -> 26 | RF 3
        self.conv2 = conv_block(c1, c2, bn=True)                # 26 -> 24 | RF 5
        self.pool1 = nn.MaxPool2d(2, 2)                         # 24 -> 12 | RF 6
        self.trans1 = conv_block(c2, t, kernel=1, bn=True)      # 12 -> 12 | RF 6
        self.conv3 = conv_block(t, c3, bn=True)                 # 12 -> 10 | RF 10
        self.conv4 = conv_block(c3, c4, bn=True)                # 10 -> 8  | RF 14
        self.conv5 = conv_block(c4, c5, bn=True)                # 8 -> 6   | RF 18
        self.conv6 = conv_block(c5, c6, bn=True)                # 6 -> 4   | RF 22
        self.conv7 = conv_block(c6, c7, bn=True)                # 4 -> 2   | RF 26
        self.gap = nn.AdaptiveAvgPool2d(1)                      # 2 -> 1   | RF 28
        self.head = nn.Conv2d(c7, 10, 1, bias=False)

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv7(self.conv6(self.conv5(self.conv4(self.conv3(x)))))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class MultiScale(Deeper):
    """The final model with a two-scale head: GAP of conv5's 6x6 map (RF 18, strokes) and of
    conv6's 4x4 map (RF 22, parts) side by side, one 1x1 conv from both to the 10 classes.
    conv6 narrows from 18 to 17 channels to pay for the wider head (7,976 parameters)."""

    def __init__(self, widths=(8, 12, 8, 10, 14, 16, 17)):
        super().__init__(widths)  # GAP: 6 -> 1 (conv5) and 4 -> 1 (conv6)

    @staticmethod
    def head_inputs(widths) -> int:
        return widths[-2] + widths[-1]  # conv5's and conv6's channels

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        strokes = self.conv5(self.conv4(self.conv3(x)))
        parts = self.conv6(strokes)
        x = torch.cat([self.gap(strokes), self.gap(parts)], dim=1)
        return F.log_softmax(self.head(x).flatten(1), dim=1)


def _rotation_until_hold():
    """The final recipe's rotation for the cycle's epochs, none in the hold's."""
    return CleanAfter(FINAL.make_augment(), batches_per_epoch(FINAL) * (FINAL.epochs - FINAL.hold_epochs))


# 06's recipe as the search knew it: OneCycle over all 15 epochs, Nesterov, peak LR 0.05, rotation
# +-7. Issue 12 then added the hold (FINAL, the final_hold_2 row) and precise BN (final_precise_bn):
# The ninth round's winner, the mild elastic distortion, came last (final_elastic_16):
# RECIPES["final"] is START.with_(hold_epochs=2, precise_bn=10_000, elastic=16.0). Every row is
# defined from these, without the distortion, so each reruns as it ran.
START = recipes.RECIPES["final"].with_(hold_epochs=0, bn_momentum=None, precise_bn=0, elastic=0.0)
FINAL = START.with_(hold_epochs=2)
#: The final with precise BN (the seventh to ninth rounds' base), before the distortion.
PRECISE = FINAL.with_(precise_bn=10_000)


def _final():
    return Regularized(dropout=0.0)


def _final_with(activation):
    """The final model with every ReLU swapped for ``activation`` (no weights: drawn as before)."""
    def factory():
        model = _final()
        for block in model.modules():
            if isinstance(block, nn.Sequential):
                for i, layer in enumerate(block):
                    if isinstance(layer, nn.ReLU):
                        block[i] = activation()
        return model
    return factory


class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang, 2019): a max over 2x2 windows at stride 1, then a fixed
    [1 2 1] x [1 2 1] / 16 blur at stride 2, instead of max-pooling at stride 2. A max-pool at stride 2
    keeps every other position's maximum, so a one-pixel shift of the digit can change which
    stroke survives; blurring before subsampling makes block 2's input move smoothly with it.
    No weights (the blur is a fixed buffer): 24x24 -> 23x23 -> 12x12, as the max-pool's 24 -> 12.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.max = nn.MaxPool2d(2, stride=1)
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("blur", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x):  # one blur per channel (depthwise)
        return F.conv2d(self.max(x), self.blur.to(x.dtype), stride=2, padding=1, groups=self.blur.shape[0])


def _final_blurpool():
    """The final model with its max-pool anti-aliased (:class:`BlurPool`; weights drawn as before)."""
    model = _final()
    model.pool1 = BlurPool(12)
    return model


def _final_relu_before_bn():
    """The final model with each block's ReLU moved before its BatchNorm (conv -> ReLU -> BN)."""
    model = _final()
    for block in model.modules():
        if isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[2], nn.ReLU):
            block[1], block[2] = block[2], block[1]
    return model


def swa_tail(seed: int, *, swa_from: int = 12, swa_lr: float = 0.005, epochs: int = 15) -> histories.History:
    """The final recipe with a stochastic-weight-averaging tail (Izmailov et al., 2018), on the
    validation split: OneCycle over the first ``swa_from - 1`` epochs, then a constant ``swa_lr``
    (the start LR: high enough that the weights keep exploring) while a uniform average of the
    weights after every step is kept (``torch.optim.swa_utils.AveragedModel``); from epoch
    ``swa_from`` on the average is what is scored, with precise BN as in the final recipe.

    A training loop of its own, because a recipe has no SWA tail (the hold's LR is the cycle's
    floor, where an average of the steps is the last step); it is :func:`engine.fit`'s loop with
    the average switched on at ``swa_from``.
    """
    from torch.optim.swa_utils import AveragedModel

    recipe = PRECISE.with_(hold_epochs=epochs - swa_from + 1)
    engine.seed_everything(seed)
    model = _final()
    device = devices.pick_device("cpu")
    loaders = data.loaders(recipe.batch_size, dataset=recipe.info, device=device, seed=seed,
                           augment=recipe.make_augment(),
                           splits=data.Splits(valid_size=VALIDATION, bn_images=recipe.precise_bn))
    speed = recipe.speed(device)
    net = speed.prepare(model, device)
    optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), epochs)
    cycle = scheduler._schedulers[0]  # the OneCycle part; the tail's LR is set here, not by the floor
    history = histories.History(meta={"params": engine.count_parameters(model), "device": str(device),
                                   "precision": speed.precision, "model": type(model).__name__, "swa_from": swa_from,
                                   "swa_lr": swa_lr, "precise_bn": recipe.precise_bn, "seed": seed})
    averaged = None
    for epoch in range(1, epochs + 1):
        if epoch == swa_from:
            averaged = AveragedModel(engine.unwrap(net), use_buffers=True)
            for group in optimizer.param_groups:
                group["lr"] = swa_lr
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        tr = engine.train(net, device, loaders.train, optimizer, speed=speed, progress=False,
                          scheduler=None if averaged is not None else cycle, averaged=averaged)
        seconds = time.perf_counter() - start
        evaluated = averaged if averaged is not None else net
        engine.recompute_bn(evaluated, loaders.bn)
        te = engine.test(evaluated, device, loaders.valid, speed, verbose=False)
        history.add(epoch=epoch, train_loss=tr["loss"], train_acc=tr["acc"], test_loss=te["loss"],
                    test_acc=te["acc"], test_correct=te["correct"], test_total=te["total"], lr=lr,
                    seconds=seconds)
    return history


#: candidate -> (recipe, model factory[, augmentation factory: instead of the recipe's]), or a
#: callable of the seed that trains with a loop of its own and returns the history. Each is one
#: change from "onecycle" (or two, tried together), or from the final recipe (the later groups).
CANDIDATES = {
    "onecycle": (START, FirstGap),
    "ema": (START.with_(ema=0.999), FirstGap),
    "label_smoothing": (START.with_(label_smoothing=0.1), FirstGap),
    "shift_zoom_ema": (START.with_(translate=0.1, scale=0.1, ema=0.999), FirstGap),
    "batch64": (START.with_(batch_size=64), FirstGap),
    "peak_lr_0.1": (START.with_(lr=0.01, max_lr=0.1), FirstGap),
    "padded_block1": (START, lambda: FirstGap(padding=1)),
    "deeper_block2": (START, lambda: Deeper((8, 16, 8, 12, 14, 14, 14))),
    "deeper_block2_ema": (START.with_(ema=0.999), lambda: Deeper((8, 16, 8, 12, 14, 14, 14))),
    "deeper_widening": (START, _final),
    "deeper_widening_ema": (START.with_(ema=0.999), _final),
    # tried after the choice, on another CPU (AMD EPYC), seeds 1-2 (not shown in the appendix, notebook 10):
    # plain momentum instead of Nesterov, and a longer warm-up
    "final_plain_momentum": (START.with_(nesterov=False), _final),
    "final_pct_0.3": (START.with_(pct_start=0.3), _final),
    # issue 12 (margin for every seed), Intel Xeon, seeds 1-2: one change each from the final
    "final_peak_lr_0.1": (START.with_(lr=0.01, max_lr=0.1), _final),
    "final_batch64": (START.with_(batch_size=64), _final),
    "final_wide_block1": (START, lambda: Deeper((10, 14, 8, 10, 13, 16, 16))),
    "final_pool_later": (START, PoolLater),
    "final_rerun": (START, _final),  # deeper_widening again, same machine kind: the baseline's digits today
    "final_peak_lr_0.03": (START.with_(lr=0.003, max_lr=0.03), _final),
    "final_weight_decay": (START.with_(weight_decay=1e-4), _final),
    "final_rotation_10": (START.with_(rotation=10.0), _final),
    "final_rotation_5": (START.with_(rotation=5.0), _final),
    "final_flatter": (START, lambda: Deeper((8, 12, 8, 12, 13, 16, 16))),
    # issue 12, AMD EPYC, seeds 1-2: a bigger map at GAP (block 2's first 3x3 padded), fp32
    # training, the hold (adopted: RECIPES["final"]), and the hold with slower BN running stats
    "final_padded_conv3": (START, lambda: Deeper((8, 12, 8, 10, 14, 16, 18), padded=1)),
    "final_fp32": (START.with_(cpu_precision="fp32"), _final),  # train in fp32, not bf16 autocast
    "final_hold_2": (START.with_(hold_epochs=2), _final),  # the cycle in 13 epochs, 2 at its floor
    "final_hold_2_bn_0.01": (START.with_(hold_epochs=2, bn_momentum=0.01), _final),
    # issue 12, a second AMD EPYC session: one change each from the final recipe (with the hold)
    "final_hold_1": (START.with_(hold_epochs=1), _final),  # the cycle in 14 epochs, 1 at its floor
    "final_shift_0.05": (FINAL.with_(translate=0.05), _final),  # + shifts of up to 1.4 px
    "final_bilinear": (FINAL, _final, lambda: augment.RandomAffine(degrees=FINAL.rotation, mode="bilinear")),
    "final_shear_10": (FINAL, _final, lambda: augment.RandomAffine(degrees=FINAL.rotation, shear=10.0)),
    "final_separable": (FINAL, lambda: StretchSearch(widths=(10, 20, 12, 20, 28))),  # 07's block 2 at 7,674
    "final_five_3x3": (FINAL, FiveDeep),  # 7,836 parameters
    # issue 12, a third AMD EPYC session: smooth activations, label smoothing
    "final_silu": (FINAL, _final_with(nn.SiLU)),
    "final_gelu": (FINAL, _final_with(nn.GELU)),
    "final_label_smoothing": (FINAL.with_(label_smoothing=0.1), _final),
    # ... Adam(W) under the same OneCycle shape (peak 0.01), ReLU before BN
    "final_adamw": (FINAL.with_(optimizer="adamw", lr=0.001, max_lr=0.01, weight_decay=0.01), _final),
    "final_relu_before_bn": (FINAL, _final_relu_before_bn),
    # issue 12, a fourth AMD EPYC session: steeper widths, batch 256 (LR x2), the warm-up's share,
    # a two-scale head
    "final_steeper": (FINAL, lambda: Deeper((8, 10, 8, 10, 12, 16, 22))),  # 7,960 parameters
    "final_batch256": (FINAL.with_(batch_size=256, lr=0.01, max_lr=0.1), _final),
    "final_pct_0.15": (FINAL.with_(pct_start=0.15), _final),
    "final_pct_0.4": (FINAL.with_(pct_start=0.4), _final),
    "final_multiscale": (FINAL, MultiScale),
    "final_clean_hold": (FINAL, _final, _rotation_until_hold),  # no rotation in the 2 hold epochs
    # issue 12, a fifth AMD EPYC session: a 3-epoch hold, an EMA of the weights on top of the hold
    "final_hold_3": (START.with_(hold_epochs=3), _final),  # the cycle in 12 epochs, 3 at its floor
    "final_hold_2_ema": (FINAL.with_(ema=0.999), _final),
    # issue 12, a sixth AMD EPYC session: BatchNorm's statistics recomputed over 10,000 clean
    # training images before each evaluation (precise BN; adopted: RECIPES["final"])
    "final_precise_bn": (PRECISE, _final),
    # ... and a diagnostic, not a candidate (twice the budget): the final's layout with every width
    # x1.4 (15,275 parameters), to see whether the level is bought by parameters at all
    "diagnostic_widths_x1.4": (FINAL, lambda: Deeper((11, 17, 11, 14, 20, 22, 25))),
    # issue 12, a seventh AMD EPYC session, from the final with precise BN (PRECISE):
    # elastic distortions on top of the rotation, mild and at Simard et al.'s strength
    # (the recipe's ``elastic``: augment.RandomAffine adds the displacement to the rotation's warp)
    # (final_elastic_16, adopted in the ninth round: RECIPES["final"])
    "final_elastic_16": (PRECISE.with_(elastic=16.0), _final),
    "final_elastic_34": (PRECISE.with_(elastic=34.0), _final),
    # issue 12, an eighth AMD EPYC session: a stochastic-weight-averaging tail instead of the hold
    # (a training loop of its own: a callable of the seed that returns the history)
    "final_swa_tail": partial(swa_tail, swa_from=12, swa_lr=0.005),
    # ... an anti-aliased max-pool, and a little dropout back on top of the rotation
    "final_blurpool": (PRECISE, _final_blurpool),
    "final_dropout_0.02": (PRECISE, lambda: Regularized(dropout=0.02)),
}


def main(argv: list[str]) -> None:
    design_runs.main("06_design", CANDIDATES, argv, seeds=[1, 2],
                     describe=lambda h: "last 3 " + ", ".join(f"{a:.2f}" for a in h.last(3)))


if __name__ == "__main__":
    main(sys.argv[1:])
