"""The course's models, one per step, written the way the course teaches them.

Every block's comment gives its output size and receptive field (RF) for a 28x28
input, as ``# 28 -> 26 | RF 3``; :func:`eva_utils.rf_table` recomputes those numbers
from the real forward pass and the notebooks show both.

Steps (each changes one idea from the one before):

* ``skeleton``     - the structure: two conv blocks, a 1x1 + max-pool transition at RF 6,
                     and a small convolutional head instead of a big dense layer.
* ``lighter``      - the same structure with far fewer channels (under 10k parameters).
* ``batchnorm``    - ``lighter`` + BatchNorm after every 3x3/1x1 conv but the last.
* ``regularizer``  - global average pooling instead of the 6x6 head, and dropout; the
                     parameters GAP frees pay for a fourth 3x3 in block 2 whose channels
                     widen towards the output. Under 8k parameters (7,972).
* ``augmentation`` - 04's architecture; random rotation and a mild elastic distortion
                     in the data take over from dropout as the regulariser (dropout 0).
* ``final``        - 05's model; notebook 06 changes only the optimizer (OneCycleLR).
* ``stretch``, ``fashion_adapted``, ``cifar_advanced`` - the bonus notebooks 07-09
  (under 3,600 parameters; Fashion-MNIST; CIFAR-10 with advanced convolutions).
  See :mod:`eva_utils.recipes` for how each step trains.

Models return log-probabilities (``log_softmax``) as the PyTorch MNIST example does.
"""
from __future__ import annotations

import os
import pickle
import re
import sys
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import datasets

#: The image size every MNIST model of the course is designed for (C, H, W).
MNIST_INPUT = datasets.MNIST.shape


def check_input(x: torch.Tensor, expected=MNIST_INPUT, what: str = "MNIST digits") -> None:
    """Fail clearly on a wrong image size instead of returning a number for the wrong input.

    (The GAP models would accept any size, and their planned receptive fields would
    silently no longer hold.)
    """
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"expected a batch of shape (N, {', '.join(map(str, expected))}) "
                         f"({what}), got {tuple(x.shape)}; resize or pad the images to "
                         f"{expected[1]}x{expected[2]} with {expected[0]} channel(s)")


def check_output(model: nn.Module, info: "datasets.DatasetInfo" = datasets.MNIST) -> None:
    """Before training, one forward pass on a dummy batch of two blank images: the model must
    give one score per class, shape ``[batch, classes]``.

    Otherwise the error would come from the loss, mid-epoch and in torch's words
    (``IndexError: Target 7 is out of bounds`` for a model with 5 outputs). The pass runs in
    eval mode without gradients, so it draws no random numbers and changes no BatchNorm
    statistics: the training that follows is unchanged. A model with lazy layers (whose first
    forward pass draws their weights) is left to the training's first batch.
    """
    from torch.nn.parameter import is_lazy

    params = list(model.parameters()) + list(model.buffers())
    if any(is_lazy(p) for p in params):
        return
    device = params[0].device if params else torch.device("cpu")
    shape = (2, *info.shape)
    classes = len(info.classes)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, device=device))
    except Exception as err:  # noqa: BLE001 - any failure of the user's forward pass, named in one line
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"the model fails on a batch of {info.title} images of shape {shape} ({first}); "
                         "fix its forward pass before training") from None
    finally:
        model.train(was_training)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != (2, classes):
        raise ValueError(f"the model's output for a batch of 2 {info.title} images has shape {got}, but "
                         f"training needs [batch, {classes}]: one score for each of the {classes} classes; "
                         f"make its last layer give {classes} outputs")


def conv_block(in_ch: int, out_ch: int, kernel: int = 3, padding: int = 0, *,
               bn: bool = False, dropout: float = 0.0, relu: bool = True) -> nn.Sequential:
    """Conv -> (BatchNorm) -> ReLU -> (Dropout). A conv followed by BN needs no bias."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, padding=padding, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(out_ch))
    if relu:
        layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


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


def he_init(model: nn.Module) -> nn.Module:
    """He (Kaiming) initialisation of every conv: weights ~ N(0, 2/fan_in), biases 0.

    Why: without BatchNorm, PyTorch's default init shrinks the signal layer by layer,
    and a 9-layer plain ReLU net sits at chance (loss 2.30) for hundreds of steps.
    He init keeps the signal's scale, so the net learns from the first batch.
    (BatchNorm fixes the scale itself; the BN models keep the default init.)
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


class Skeleton(nn.Module):
    """Step 1: get the structure right; size and accuracy come later (~42k params)."""

    def __init__(self):
        super().__init__()
        # Block 1: edges and gradients
        self.conv1 = conv_block(1, 16)                    # 28 -> 26 | RF 3
        self.conv2 = conv_block(16, 32)                   # 26 -> 24 | RF 5
        # Transition: max-pool where RF ~ 5-7 (MNIST edges are that big), then 1x1 to squeeze
        self.pool1 = nn.MaxPool2d(2, 2)                   # 24 -> 12 | RF 6
        self.trans1 = conv_block(32, 16, kernel=1)        # 12 -> 12 | RF 6
        # Block 2: parts of digits
        self.conv3 = conv_block(16, 32)                   # 12 -> 10 | RF 10
        self.conv4 = conv_block(32, 32)                   # 10 -> 8  | RF 14
        self.conv5 = conv_block(32, 64)                   # 8 -> 6   | RF 18
        # Head: 1x1 to 10 channels, then one 6x6 conv sees the whole map (a small dense layer, in effect)
        self.head1 = conv_block(64, 10, kernel=1)         # 6 -> 6   | RF 18
        self.head2 = nn.Conv2d(10, 10, 6)                 # 6 -> 1   | RF 28
        he_init(self)  # no BatchNorm: start with well-scaled weights

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.conv4(self.conv3(x)))
        x = self.head2(self.head1(x))
        return F.log_softmax(x.flatten(1), dim=1)


class Lighter(nn.Module):
    """Step 2: the skeleton's structure with few channels (under 10k params)."""

    def __init__(self):
        super().__init__()
        # Block 1
        self.conv1 = conv_block(1, 8)                     # 28 -> 26 | RF 3
        self.conv2 = conv_block(8, 16)                    # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                   # 24 -> 12 | RF 6
        self.trans1 = conv_block(16, 8, kernel=1)         # 12 -> 12 | RF 6
        # Block 2
        self.conv3 = conv_block(8, 12)                    # 12 -> 10 | RF 10
        self.conv4 = conv_block(12, 16)                   # 10 -> 8  | RF 14
        self.conv5 = conv_block(16, 12)                   # 8 -> 6   | RF 18
        # Head
        self.head1 = conv_block(12, 10, kernel=1)         # 6 -> 6   | RF 18
        self.head2 = nn.Conv2d(10, 10, 6)                 # 6 -> 1   | RF 28
        he_init(self)  # no BatchNorm: start with well-scaled weights

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.conv4(self.conv3(x)))
        x = self.head2(self.head1(x))
        return F.log_softmax(x.flatten(1), dim=1)


class BatchNormNet(nn.Module):
    """Step 3: 02's network with BatchNorm after every conv but the last (``bn=True``).

    BatchNorm re-scales every layer's output itself, so the He initialisation that 01
    and 02 needed is dropped (PyTorch's default init is fine here).
    """

    def __init__(self):
        super().__init__()
        # Block 1
        self.conv1 = conv_block(1, 8, bn=True)            # 28 -> 26 | RF 3
        self.conv2 = conv_block(8, 16, bn=True)           # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                   # 24 -> 12 | RF 6
        self.trans1 = conv_block(16, 8, kernel=1, bn=True)  # 12 -> 12 | RF 6
        # Block 2
        self.conv3 = conv_block(8, 12, bn=True)           # 12 -> 10 | RF 10
        self.conv4 = conv_block(12, 16, bn=True)          # 10 -> 8  | RF 14
        self.conv5 = conv_block(16, 12, bn=True)          # 8 -> 6   | RF 18
        # Head: the last conv has no BatchNorm (its outputs are the class scores)
        self.head1 = conv_block(12, 10, kernel=1, bn=True)  # 6 -> 6   | RF 18
        self.head2 = nn.Conv2d(10, 10, 6)                 # 6 -> 1   | RF 28

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.conv4(self.conv3(x)))
        x = self.head2(self.head1(x))
        return F.log_softmax(x.flatten(1), dim=1)


class Regularized(nn.Module):
    """Step 4 (and the final model): global average pooling + dropout, under 8k params.

    GAP replaces the 6x6 head (3,600 weights). The budget it frees pays for a fourth
    3x3 in block 2 (RF 22 before GAP, on a 4x4 map), with channels that widen as the
    maps shrink (10 -> 18), where a digit's parts are recognised; block 1 ends narrower
    than 03's (12 channels against 16), and the transition keeps 03's 8.
    """

    def __init__(self, dropout: float = 0.05):
        super().__init__()
        d = dropout
        # Block 1
        self.conv1 = conv_block(1, 8, bn=True, dropout=d)             # 28 -> 26 | RF 3
        self.conv2 = conv_block(8, 12, bn=True, dropout=d)            # 26 -> 24 | RF 5
        # Transition
        self.pool1 = nn.MaxPool2d(2, 2)                               # 24 -> 12 | RF 6
        self.trans1 = conv_block(12, 8, kernel=1, bn=True)            # 12 -> 12 | RF 6
        # Block 2: four 3x3s, widening as the maps shrink
        self.conv3 = conv_block(8, 10, bn=True, dropout=d)            # 12 -> 10 | RF 10
        self.conv4 = conv_block(10, 14, bn=True, dropout=d)           # 10 -> 8  | RF 14
        self.conv5 = conv_block(14, 16, bn=True, dropout=d)           # 8 -> 6   | RF 18
        self.conv6 = conv_block(16, 18, bn=True, dropout=d)           # 6 -> 4   | RF 22
        # Output: GAP sees the whole 4x4 map, a 1x1 conv maps 18 channels to 10 classes
        self.gap = nn.AdaptiveAvgPool2d(1)                            # 4 -> 1   | RF 28
        self.head = nn.Conv2d(18, 10, 1, bias=False)                  # 1 -> 1   | RF 28

    def forward(self, x):
        check_input(x)
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv6(self.conv5(self.conv4(self.conv3(x))))
        x = self.head(self.gap(x))
        return F.log_softmax(x.flatten(1), dim=1)


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


# ----------------------------------------------------------------------------- the bonus datasets


class FashionNet(nn.Module):
    """The course's first GAP architecture (three 3x3s in block 2, 7,756 parameters) adapted to
    clothes: the first block padded.

    Why padded: MNIST's digits sit in a 20x20 box with a 4-pixel empty margin, so the final
    model's unpadded 3x3s lose nothing when they shrink 28 -> 24. Trousers, dresses, bags and
    coats fill the 28x28 frame: unpadded, the first block sees the border pixels only through
    a corner of its windows. Padding the first two convs keeps every border pixel at full
    weight and leaves a larger 8x8 map for the second block (more positions for GAP to average),
    at about 1.3x the compute. Why no second max-pool and no dropout: on the validation split
    a candidate with a second pool (7x7 maps) was about level with the final model trained with
    the same shifts and flips, and every 8k model there kept its train accuracy within about
    half a point of validation accuracy (no over-fitting to regularise away), so capacity, not
    regularisation, is what they lack.
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        d = dropout
        # Block 1, padded: clothes reach the border of the image (digits do not)
        self.conv1 = conv_block(1, 8, padding=1, bn=True, dropout=d)     # 28 -> 28 | RF 3
        self.conv2 = conv_block(8, 16, padding=1, bn=True, dropout=d)    # 28 -> 28 | RF 5
        # Transition: max-pool at RF 5-6, then a 1x1 squeeze (as in the final model)
        self.pool1 = nn.MaxPool2d(2, 2)                                  # 28 -> 14 | RF 6
        self.trans1 = conv_block(16, 10, kernel=1, bn=True)              # 14 -> 14 | RF 6
        # Block 2, unpadded as in the final model
        self.conv3 = conv_block(10, 16, bn=True, dropout=d)              # 14 -> 12 | RF 10
        self.conv4 = conv_block(16, 16, bn=True, dropout=d)              # 12 -> 10 | RF 14
        self.conv5 = conv_block(16, 16, bn=True, dropout=d)              # 10 -> 8  | RF 18
        # Output: GAP over the 8x8 map, a 1x1 conv maps 16 channels to 10 classes
        self.gap = nn.AdaptiveAvgPool2d(1)                               # 8 -> 1   | RF 32
        self.head = nn.Conv2d(16, 10, 1, bias=False)                     # 1 -> 1   | RF 32

    def forward(self, x):
        check_input(x, what="Fashion-MNIST images")
        x = self.trans1(self.pool1(self.conv2(self.conv1(x))))
        x = self.conv5(self.conv4(self.conv3(x)))
        x = self.head(self.gap(x))
        return F.log_softmax(x.flatten(1), dim=1)


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


class ReportedBaseline(nn.Module):
    """Notebook 09's network to beat: a student team's CIFAR-10 net, 467,098 parameters.

    Rebuilt layer for layer from the torchsummary its authors published (EVA course,
    Assignment 7, by Anjan Kumar Patra, Pradipt Trivedi, Avnish Midha and Ramkumar M.), who
    report 83.61% test accuracy after 20 epochs; the course does not re-run it. Plain padded
    3x3s in pairs, max-pooling between them, one depthwise + pointwise pair at the end, GAP
    and a linear layer: the classic layout that :class:`AdvancedConvNet` is measured against.

    ``dropout``: the published summary lists the Dropout layers but not their rate; 0.1 is
    this rebuild's choice (it changes no parameter count and no shape).
    """

    def __init__(self, dropout: float = 0.1):
        super().__init__()

        # conv -> ReLU -> BN -> dropout: the published order (the course's own blocks put BN before ReLU)
        def block(i, o, kernel=3):
            return nn.Sequential(nn.Conv2d(i, o, kernel, padding=kernel // 2, bias=False),
                                 nn.ReLU(), nn.BatchNorm2d(o), nn.Dropout(dropout))

        # Block 1 (32x32)
        self.block1 = nn.Sequential(
            block(3, 16),                                      # 32 -> 32 | RF 3
            block(16, 32),                                     # 32 -> 32 | RF 5
            nn.MaxPool2d(2),                                   # 32 -> 16 | RF 6,  jump 2
        )
        # Block 2 (16x16)
        self.block2 = nn.Sequential(
            block(32, 64),                                     # 16 -> 16 | RF 10
            block(64, 64),                                     # 16 -> 16 | RF 14
            nn.MaxPool2d(2),                                   # 16 -> 8  | RF 16, jump 4
        )
        # Block 3 (8x8)
        self.block3 = nn.Sequential(
            block(64, 128),                                    # 8 -> 8   | RF 24
            block(128, 128),                                   # 8 -> 8   | RF 32
            nn.MaxPool2d(2),                                   # 8 -> 4   | RF 36, jump 8
        )
        # Block 4 (4x4): a plain 3x3, then a depthwise 3x3 (no ReLU/BN after it) and a pointwise 1x1
        self.block4 = nn.Sequential(
            block(128, 128),                                   # 4 -> 4   | RF 52
            nn.Conv2d(128, 128, 3, padding=1, groups=128, bias=False),  # 4 -> 4 | RF 68 (depthwise)
            block(128, 256, kernel=1),                         # 4 -> 4   | RF 68 (pointwise)
        )
        # Output: GAP over the 4x4 map, then a linear layer
        self.gap = nn.AdaptiveAvgPool2d(1)                     # 4 -> 1   | RF 68 + 3*8 = 92
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        check_input(x, (3, 32, 32), "CIFAR-10")
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return F.log_softmax(self.fc(self.gap(x).flatten(1)), dim=1)


#: name -> constructor, one name per course step. Steps 05 (``augmentation``) and 06
#: (``final``) keep step 04's architecture. From 05 on, random rotation and a mild elastic
#: distortion regularise through the data, and dropout is switched off: measured (05's
#: ablation), with dropout too the 7,972-parameter network under-fits (train accuracy ends
#: 2.6 points below test).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "skeleton": Skeleton,
    "lighter": Lighter,
    "batchnorm": BatchNormNet,
    "regularizer": Regularized,                              # dropout 0.05
    "augmentation": partial(Regularized, dropout=0.0),       # rotation + elastic distortion replace dropout
    "final": partial(Regularized, dropout=0.0),              # 05's model, OneCycle LR
    "stretch": Stretch,                                      # 07: under 3,600 parameters
    "fashion_adapted": FashionNet,                           # 08: Fashion-MNIST
    "cifar_advanced": AdvancedConvNet,                       # 09: CIFAR-10
}


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name; unknown names list the known ones."""
    try:
        factory = MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; choose one of: {known}") from None
    model = factory(**kwargs)
    model.registry_name = name
    model.registry_kwargs = dict(kwargs)
    return model


def _first_line(err: BaseException) -> str:
    """An exception's first line, without the terminal colour codes torch puts in some."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _misfit(name: str, kwargs: dict, weights: dict) -> Optional[str]:
    """What in ``weights`` does not fit model ``name`` built with ``kwargs`` (None when all fits).

    The model is built on the meta device (shapes, no memory): a crafted checkpoint whose
    arguments ask for 30,000-channel layers costs nothing here, and is refused before a
    real build would allocate what it asks for.
    """
    with torch.device("meta"):
        skeleton = build(name, **kwargs)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    problems = []
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing:
        problems.append("Missing key(s) in state_dict: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        problems.append("Unexpected key(s): " + ", ".join(unexpected[:5]) + (" ..." if len(unexpected) > 5 else ""))
    for key, shape in expected.items():
        value = weights.get(key)
        if key in weights and not isinstance(value, torch.Tensor):
            problems.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif key in weights and tuple(value.shape) != shape:
            problems.append(f"size mismatch for {key}: {tuple(value.shape)} in the checkpoint, {shape} in the model")
    detail = "; ".join(problems)
    return (detail[:300] + "...") if len(detail) > 300 else (detail or None)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved by ``--save``/``save_checkpoint`` and return it in eval mode.

    Only tensors and plain values are read (``weights_only``): a pickled whole model could run
    code, and is refused. The model is built only once its weights are known to fit it (see
    :func:`_misfit`). A checkpoint of a quick-mode run (``EVA_SMOKE``) says so on stderr, and
    the model returned has ``quick = True``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch's own text is several lines, with terminal colour codes
        pickled = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if pickled:  # a whole model (or other object) pickled: unpickling it could run any code
            raise ValueError(f"{path} holds a pickled {pickled.group(1)} object (a whole model saved with "
                             "torch.save(model)?), which could run code when loaded, so it is not read; save "
                             "the weights with eva_utils.engine.save_checkpoint or `python -m eva_utils train "
                             "--save PATH`") from None
        detail = ("damaged, or not a torch file" if isinstance(err, pickle.UnpicklingError)
                  else f"{type(err).__name__}: {_first_line(err)}")
        raise ValueError(f"{path} is not a readable eva_utils checkpoint ({detail}); re-create it with "
                         "`python -m eva_utils train --save PATH`") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict) or not state.get("model_name"):
        raise ValueError(f"{path} is not an eva_utils checkpoint (no model name/state_dict); "
                         "re-create it with `python -m eva_utils train --save PATH`")
    name, kwargs = state["model_name"], state.get("model_kwargs") or {}
    redo = f"re-create it with `python -m eva_utils train --recipe {name} --save {path}`"
    if not isinstance(kwargs, dict):
        raise ValueError(f"{path} names model {name!r} with arguments {kwargs!r}, not a dict of "
                         f"arguments; {redo}")
    try:
        detail = _misfit(name, kwargs, state["state_dict"])
    except Exception as err:  # unknown name, arguments the model does not take or cannot use
        raise ValueError(f"{path} names model {name!r} with arguments {kwargs}, which cannot be built "
                         f"({_first_line(err)}); the checkpoint is from another version or was edited: "
                         f"{redo}") from None
    if detail:
        raise ValueError(f"{path}: its weights do not fit model {name!r} {kwargs} ({detail}); the checkpoint "
                         f"is from another version of the model or was edited: {redo}")
    model = build(name, **kwargs)
    try:
        model.load_state_dict(state["state_dict"])
    except Exception as err:  # what the shapes do not show (a dtype that cannot be copied)
        raise ValueError(f"{path}: its weights do not load into model {name!r} {kwargs} ({_first_line(err)}); "
                         f"{redo}") from None
    if state.get("quick"):
        model.quick = True
        print(f"note: {path} is from a quick-mode run (EVA_SMOKE): a few hundred images, not a real result",
              file=sys.stderr)
    return model.eval()
