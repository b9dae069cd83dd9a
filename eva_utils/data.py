"""Loaders for the course's datasets: one contract for MNIST, Fashion-MNIST and CIFAR-10.

:func:`loaders` takes a dataset's description (:mod:`eva_utils.datasets`; its name is
looked up once, where it comes in) and gets its verified tensors from :mod:`eva_utils.sources`.
The same rules hold for every dataset, and :class:`Splits` says which images each loader holds:

* ``Splits(valid_size=N)`` holds out the **last** N training images as ``Loaders.valid`` (never
  augmented, never trained on): design choices are made there, the test set only reports;
* ``Splits(train_limit=N, test_limit=M)`` take the **first** N/M images of a split (quick mode,
  tests; every stored order is mixed, so a few hundred images hold every class);
* ``Splits(bn_images=N)`` adds ``Loaders.bn``: the first N training images, as they are (no
  augmentation, a fixed order), over which BatchNorm's statistics can be recomputed with the
  weights fixed before an evaluation (:func:`eva_utils.engine.recompute_bn`);
* images are normalised with the published statistics (MNIST) or with those of the images
  the model trains on (:attr:`~eva_utils.datasets.DatasetInfo.stats_from_training`);
* ``augment`` is the training augmentation: a batched callable from :mod:`eva_utils.augment`
  for the fast loader (as a recipe's :meth:`~eva_utils.recipes.Recipe.make_augment` builds it),
  or the textbook pipeline's options (:func:`classic_transforms`' keywords, as
  :meth:`~eva_utils.recipes.Recipe.classic_transform` gives them) for ``fast=False``.

Two loaders behind one interface. ``fast=True`` holds a whole split as one uint8 tensor on
the training device and batches it by index (:class:`TensorLoader`); ``fast=False`` is the
textbook pipeline (torchvision dataset + transforms + ``DataLoader``). Both yield
normalised ``(N, C, H, W)`` float tensors.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from . import augment as aug
from . import datasets, sources
from .checks import check_number
from .devices import pick_device

MNIST_MEAN = datasets.MNIST.mean[0]
MNIST_STD = datasets.MNIST.std[0]


def check_limits(**limits) -> None:
    """``train_limit=...``/``test_limit=...``: None (everything) or a whole number >= 1.

    (A negative limit would slice from the end: ``x[:-5]`` is all but five images.)
    """
    for name, value in limits.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number of images, at least 1 (or None for all), "
                             f"got {value!r}")


def check_valid_size(value, name: str = "valid_size") -> None:
    """The number of held-out images: a whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a whole number of images, 0 or more, got {value!r}")


def spread_indices(n_items: int, n: int) -> torch.Tensor:
    """``n`` indices spread evenly over ``n_items``: on a list stored class by class (the
    mistakes of a model in label order) a subset still shows every class."""
    return torch.linspace(0, n_items - 1, min(n, n_items)).round().long()


@dataclass
class Normalize:
    """Per-channel normalisation applied to float images in [0, 1]."""

    mean: tuple[float, ...] = datasets.MNIST.mean
    std: tuple[float, ...] = datasets.MNIST.std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


class TensorLoader:
    """A whole split as one uint8 tensor on the device, batched by index.

    Why: for 28x28 digits, ``DataLoader`` + PIL costs as much as the small network's
    compute. Here a batch is one gather from a tensor that already sits on the
    training device (no per-batch host-to-device copy on a GPU), converted to float,
    augmented as a whole batch with a different random draw per image, and
    normalised on the fly. Shuffling uses a seeded generator, so an epoch's order
    is repeatable; every sample appears exactly once per epoch.

    ``augment`` is a callable ``(x in [0,1], generator) -> x`` from
    :mod:`eva_utils.augment`; it is applied only when the loader is for training.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int = 128,
        shuffle: bool = False,
        augment: Optional[Callable] = None,
        normalize: Optional[Callable] = Normalize(),
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ):
        if images.dtype != torch.uint8:
            raise TypeError(f"TensorLoader keeps images as uint8; got {images.dtype}")
        if images.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
            images = images.unsqueeze(1)
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.targets = targets.to(self.device, dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.normalize = normalize
        self.drop_last = drop_last
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.dataset = self  # so len(loader.dataset) works as with a DataLoader

    def __len__(self) -> int:  # number of batches, like DataLoader
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The float batch for ``index`` (augmented if the loader augments)."""
        x = self.images[index].float().div_(255.0)
        if self.augment is not None:
            x = self.augment(x, self.generator)
        if self.normalize is not None:
            x = self.normalize(x)
        return x, self.targets[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            yield self.batch(index)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 ``(N, C, H, W)`` images on the [0, 1] scale.

    From one 256-bin histogram per channel: no float copy of the training pixels is needed
    (47M of them for Fashion-MNIST, 154M for CIFAR-10).
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"channel_stats expects uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        n = counts.sum()
        mean = float((counts * values).sum() / n)
        var = float((counts * values.pow(2)).sum() / n) - mean ** 2
        means.append(mean)
        stds.append(max(var, 0.0) ** 0.5)
    return tuple(means), tuple(stds)


CLASSIC_OPTIONS = ("rotation", "flip", "crop_padding", "elastic")


def check_augment_options(**classic) -> None:
    """Refuse, before any data is loaded, an augmentation value that is not finite or not in its range
    (a NaN rotation would turn every training image blank; ``classic`` are :func:`classic_transforms`'
    options)."""
    if unknown := sorted(set(classic) - set(CLASSIC_OPTIONS)):
        raise ValueError(f"unknown textbook augmentation option(s) {', '.join(unknown)}; "
                         f"the textbook pipeline takes {', '.join(CLASSIC_OPTIONS)}")
    rotation = classic.get("rotation", 0.0)
    check_number("rotation", rotation, at_least=0, at_most=180, unit="degrees")
    check_number("flip", classic.get("flip", 0.0), at_least=0, at_most=1)
    check_number("crop_padding", classic.get("crop_padding", 0), whole=True, at_least=0, unit="pixels")
    check_number("elastic", classic.get("elastic", 0.0), at_least=0, unit="pixels")


def classic_transforms(dataset: str | datasets.DatasetInfo, train: bool, rotation: float = 0.0,
                       mean=None, std=None, *, flip: float = 0.0, crop_padding: int = 0, elastic: float = 0.0):
    """The textbook torchvision pipeline on PIL images (what the course started from).

    MNIST: an optional random rotation, then an optional elastic distortion (``elastic``: the
    strength alpha in pixels of :class:`eva_utils.augment.RandomAffine`; torchvision's
    ``ElasticTransform`` counts alpha in half-pixels, reflects at the edges and reads the image
    a second time, so it is the batched one's twin in kind and size, not draw for draw);
    CIFAR-10's recipe: random crop with padding and a horizontal flip (filled with the mean
    pixel). Then ``ToTensor`` and ``Normalize``.
    """
    from torchvision import transforms

    check_augment_options(rotation=rotation, flip=flip, crop_padding=crop_padding, elastic=elastic)
    info = datasets.get(dataset)
    mean, std = mean or info.mean, std or info.std
    steps = []
    if train and rotation:
        # fill=(1,) applies to the uint8 PIL image: value 1/255, i.e. black
        steps.append(transforms.RandomRotation((-rotation, rotation), fill=(1,) * info.shape[0]))
    if train and elastic:
        steps.append(transforms.ElasticTransform(alpha=2 * elastic, sigma=aug.ELASTIC_SIGMA, fill=1,
                                                 interpolation=transforms.InterpolationMode.NEAREST))
    if train and crop_padding:
        fill = tuple(int(round(255 * m)) for m in mean)
        steps.append(transforms.RandomCrop(info.shape[1], padding=crop_padding, fill=fill))
    if train and flip:
        steps.append(transforms.RandomHorizontalFlip(flip))
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def hold_out(images: torch.Tensor, targets: torch.Tensor, valid_size: int):
    """``(train_x, train_y, valid_x, valid_y)``: the **last** ``valid_size`` examples held out.

    Design choices are made on the held-out part, so the test set is only used to report.
    """
    n = len(images)
    if not 0 <= valid_size < n:
        raise ValueError(f"valid_size must be between 0 and {n - 1} (images held out of the "
                         f"{n:,} training images), got {valid_size}")
    cut = n - valid_size
    return images[:cut], targets[:cut], images[cut:], targets[cut:]


@dataclass
class Loaders:
    """The pair of loaders a notebook or the command line trains with."""

    train: object
    test: object
    fast: bool
    device: torch.device
    valid: object = None  #: the held-out validation split (``valid_size`` > 0), else None
    bn: object = None  #: the first ``bn_images`` training images, unaugmented (``bn_images`` > 0), else None
    dataset: str = "mnist"
    mean: tuple = datasets.MNIST.mean  #: the normalisation the loaders apply
    std: tuple = datasets.MNIST.std


@dataclass(frozen=True)
class Splits:
    """Which images the loaders hold (by default: every training and test image)."""

    train_limit: Optional[int] = None  # only the first N training images (after the hold-out)
    test_limit: Optional[int] = None   # only the first N test images
    valid_size: int = 0                # hold out the last N training images as Loaders.valid
    bn_images: int = 0                 # Loaders.bn: the first N training images, clean, in order

    def __post_init__(self):
        check_limits(train_limit=self.train_limit, test_limit=self.test_limit)
        check_valid_size(self.valid_size)
        check_valid_size(self.bn_images, "bn_images")


def loaders(
    batch_size: int = 128,
    *,
    dataset: str | datasets.DatasetInfo = "mnist",
    device=None,
    seed: int = 1,
    fast: bool = True,
    augment=None,
    splits: Splits = Splits(),
    root=None,
    test_batch_size: int = 1000,
) -> Loaders:
    """Train/test (and validation) loaders for ``dataset`` (a description, or its name: "mnist",
    "fashion_mnist", "cifar10").

    ``fast=True``: :class:`TensorLoader` on ``device``, with ``augment`` a batched augmentation
    (:mod:`eva_utils.augment`, e.g. ``RandomAffine(degrees=7)``) or None. ``fast=False``: the
    torchvision dataset + :func:`classic_transforms` (``augment``: its options as a dict, such as
    ``{"rotation": 7}`` or ``{"flip": 0.5, "crop_padding": 4}``) + ``DataLoader`` with workers and
    ``pin_memory`` chosen for the device.

    ``splits`` (:class:`Splits`): ``valid_size`` > 0 holds out the **last** ``valid_size``
    training images as ``Loaders.valid`` (``10_000`` on MNIST is the classic 50k/10k split, the
    one in ``mnist.pkl.gz``), and ``train_limit`` then applies to what is left for training.
    ``bn_images`` > 0 adds ``Loaders.bn`` (either path): a :class:`TensorLoader` over the first
    ``bn_images`` images the model trains on (all of them if there are fewer), never augmented,
    in a fixed order, normalised like the others; it draws no random numbers, so using it
    leaves the training's shuffling and augmentation as they were.
    """
    info = datasets.get(dataset)
    if fast and isinstance(augment, dict):
        raise ValueError("a dict of textbook augmentation options is for fast=False; the fast loader takes a "
                         "batched augmentation from eva_utils.augment (e.g. RandomAffine(degrees=7))")
    if not fast and augment is not None and not isinstance(augment, dict):
        raise ValueError("a batched `augment` is for fast=True; the textbook pipeline (fast=False) takes its "
                         "options as a dict, e.g. {'rotation': 7}")
    if not fast:
        check_augment_options(**(augment or {}))
        if splits.valid_size:
            raise ValueError("valid_size is for the fast path (fast=True)")
    device = pick_device(device)
    tensors = sources.load(info, root)  # verified once for both splits
    tr_x, tr_y, va_x, va_y = hold_out(tensors["train_x"], tensors["train_y"], splits.valid_size)
    mean, std = channel_stats(tr_x) if info.stats_from_training else (info.mean, info.std)
    tr_x, tr_y = tr_x[:splits.train_limit], tr_y[:splits.train_limit]
    te_x, te_y = tensors["test_x"][:splits.test_limit], tensors["test_y"][:splits.test_limit]
    norm = Normalize(mean, std)
    n_bn = splits.bn_images
    bn = (TensorLoader(tr_x[:n_bn], tr_y[:n_bn], test_batch_size, shuffle=False, normalize=norm, device=device)
          if n_bn else None)
    if fast:
        train = TensorLoader(tr_x, tr_y, batch_size, shuffle=True, augment=augment, normalize=norm,
                             seed=seed, device=device)
        test = TensorLoader(te_x, te_y, test_batch_size, shuffle=False, normalize=norm, device=device)
        valid = (TensorLoader(va_x, va_y, test_batch_size, shuffle=False, normalize=norm, device=device)
                 if splits.valid_size else None)
        return Loaders(train, test, True, device, valid, bn, info.name, tuple(mean), tuple(std))

    from torch.utils.data import Subset

    train_set = sources.torchvision_dataset(info, True, root,
                                            classic_transforms(info, True, mean=mean, std=std, **(augment or {})))
    test_set = sources.torchvision_dataset(info, False, root, classic_transforms(info, False, mean=mean, std=std))
    if splits.train_limit is not None:
        train_set = Subset(train_set, range(min(splits.train_limit, len(train_set))))
    if splits.test_limit is not None:
        test_set = Subset(test_set, range(min(splits.test_limit, len(test_set))))
    result = classic_loaders(train_set, test_set, batch_size, test_batch_size, device, seed)
    result.dataset, result.mean, result.std, result.bn = info.name, tuple(mean), tuple(std), bn
    return result


def classic_loaders(train_set, test_set, batch_size: int, test_batch_size: int, device: torch.device,
                    seed: int = 1, num_workers: Optional[int] = None) -> Loaders:
    """``DataLoader``s with workers and ``pin_memory`` chosen for the device.

    Pinning only with CUDA: elsewhere torch warns on stderr (and nbval sees it). Workers
    only with CUDA too: on a CPU they compete with the training threads for the cores.
    """
    from torch.utils.data import DataLoader

    cuda = device.type == "cuda"
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if cuda else 0
    kw = dict(num_workers=num_workers, pin_memory=cuda, persistent_workers=num_workers > 0)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=gen, **kw)
    test = DataLoader(test_set, batch_size=test_batch_size, shuffle=False, **kw)
    return Loaders(train, test, False, device)

