"""What each dataset of the course is: image shape, classes, size and normalisation.

Descriptions only (no files, no tensors), so every other layer can import this one:
:mod:`eva_utils.sources` finds and verifies the files a description names,
:mod:`eva_utils.data` turns them into loaders, :mod:`eva_utils.models` checks its inputs
against ``shape`` and :mod:`eva_utils.recipes` names a dataset per recipe.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: what a model sees and how its pixels are normalised.

    ``stats_from_training``: normalise with the mean/std computed from the images the
    model trains on (Fashion-MNIST, CIFAR-10), or with the published ``mean``/``std``
    (MNIST's 0.1307/0.3081, the numbers every MNIST tutorial uses).
    """

    name: str                    # registry key, as recipes name it
    title: str                   # as the notebooks and messages write it
    shape: tuple                 # (channels, height, width) of one image
    classes: tuple               # class names in label order
    mean: tuple                  # published per-channel mean of the training pixels (/255)
    std: tuple                   # published per-channel std
    train_count: int
    test_count: int
    stats_from_training: bool = False
    what: str = "images"         # what a batch holds, for error messages ("MNIST digits")

    @property
    def per_class(self) -> dict:
        """Images per class in each split (all three datasets are balanced)."""
        return {"train": self.train_count // len(self.classes), "test": self.test_count // len(self.classes)}


MNIST = DatasetInfo("mnist", "MNIST", (1, 28, 28), tuple(str(d) for d in range(10)),
                    (0.1307,), (0.3081,), 60_000, 10_000, what="MNIST digits")
FASHION_MNIST = DatasetInfo(
    "fashion_mnist", "Fashion-MNIST", (1, 28, 28),
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    (0.2860,), (0.3530,), 60_000, 10_000, stats_from_training=True, what="Fashion-MNIST images")
CIFAR10 = DatasetInfo(
    "cifar10", "CIFAR-10", (3, 32, 32),
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    (0.49139968, 0.48215841, 0.44653091), (0.24703223, 0.24348513, 0.26158784), 50_000, 10_000,
    stats_from_training=True, what="CIFAR-10 images")

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (MNIST, FASHION_MNIST, CIFAR10)}


def get(name: str | DatasetInfo) -> DatasetInfo:
    """The description of dataset ``name``; an unknown name lists the known ones. A description
    is returned as it is, so a layer that was handed one never looks its name up again."""
    if isinstance(name, DatasetInfo):
        return name
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None
