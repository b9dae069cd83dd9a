"""Fashion-MNIST for the course: verified data (online or offline), loaders, an adapted model, its recipe.

Fashion-MNIST (Zalando, 2017) has MNIST's format exactly: 60,000 + 10,000 grey 28x28 images in
ten classes, stored in the same four IDX files. So the course's method and code carry over
unchanged, and notebook 08 can ask which of the *design decisions* made for digits still hold
for clothes.

Where the four raw files come from, in order (:func:`ensure_fashion_mnist`):

1. ``<data_dir()>/FashionMNIST/raw`` (torchvision's layout), when every file is there and its
   MD5 is right;
2. ``torchvision.datasets.FashionMNIST(download=True)`` (students with internet);
3. a folder holding the four original ``.gz`` files: ``$EVA_FASHION_MNIST_DIR``, else
   ``/usr/share/datasets/fashion-mnist`` (what Debian's ``dataset-fashion-mnist`` package
   installs; the course's build machines have no internet but can ``apt-get install`` it).

Why the checksums are those of the *uncompressed* files: torchvision lists the MD5s of the
upstream ``.gz`` downloads, but Debian re-compressed the files when it packaged them (the gzip
header carries the packaging date), so the ``.gz`` bytes differ while the decompressed IDX
files are byte-for-byte the original ones. The IDX files are what torchvision reads and what
the model trains on, so those are what is verified, before every use, whatever the source.
A file with a wrong MD5 is deleted, never trained on.
"""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import (DataUnavailableError, Loaders, Normalize, TensorLoader, _tensors, check_limits,
                   check_valid_size, classic_loaders, data_dir, hold_out, md5, verify_files)
from .fsutil import atomic_open
from .models import check_input, conv_block

#: Label order of the dataset (= ``torchvision.datasets.FashionMNIST.classes``).
class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CLASS_NAMES = class_names

#: Mean and std of the training pixels (/255) as commonly published; :func:`pixel_stats`
#: recomputes them from the training tensor and the loaders use the computed values.
FASHION_MEAN = 0.2860
FASHION_STD = 0.3530

#: MD5 of each uncompressed raw file of the original distribution (what torchvision reads).
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

#: MD5 of the upstream ``.gz`` downloads (as in torchvision's ``FashionMNIST.resources``).
#: Debian's re-compressed ``.gz`` files have other MD5s but decompress to the same bytes.
FASHION_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

TRAIN_COUNT, TEST_COUNT = 60_000, 10_000
PER_CLASS = {"train": 6_000, "test": 1_000}
ENV_DIR = "EVA_FASHION_MNIST_DIR"
#: Where Debian's ``dataset-fashion-mnist`` package puts the four ``.gz`` files.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Written next to the raw files: where they came from (shown by notebook 08).
SOURCE_FILE = "SOURCE.txt"


# ----------------------------------------------------------------------------- verified raw files


def raw_dir(root: Optional[str | os.PathLike] = None) -> Path:
    """``<data_dir(root)>/FashionMNIST/raw``: the folder ``torchvision.datasets.FashionMNIST`` reads."""
    return data_dir(root) / "FashionMNIST" / "raw"


def verify_raw(root: Optional[str | os.PathLike] = None) -> dict[str, str]:
    """Check the four raw files; returns {file name: problem} for every bad or missing one."""
    return verify_files(raw_dir(root), FASHION_RAW_MD5)


def checksum_rows(root: Optional[str | os.PathLike] = None) -> list[dict]:
    """One row per raw file: name, size, expected and measured MD5, and whether they agree."""
    raw = raw_dir(root)
    rows = []
    for name, expected in FASHION_RAW_MD5.items():
        path = raw / name
        got = md5(path) if path.is_file() else "missing"
        rows.append({"file": name, "bytes": path.stat().st_size if path.is_file() else 0,
                     "expected": expected, "md5": got, "ok": got == expected})
    return rows


def source(root: Optional[str | os.PathLike] = None) -> str:
    """Where the raw files in ``root`` came from (recorded when they were fetched)."""
    path = raw_dir(root) / SOURCE_FILE
    if not path.is_file():
        return "unknown (files were already there)"
    # shown in notebook 08: name Debian's package rather than the build machine's folder
    return path.read_text().strip().replace(str(DEBIAN_DIR), "Debian's dataset-fashion-mnist package")


def offline_dir() -> Optional[Path]:
    """The folder with the four ``.gz`` files: ``$EVA_FASHION_MNIST_DIR``, else Debian's; None if neither."""
    candidates = []
    if os.environ.get(ENV_DIR):
        candidates.append(Path(os.environ[ENV_DIR]).expanduser())
    candidates.append(DEBIAN_DIR)
    for folder in candidates:
        if all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in FASHION_RAW_MD5):
            return folder
    return None


def _torchvision_download(root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(root), train=True, download=True)
    FashionMNIST(str(root), train=False, download=True)


def copy_from_folder(folder: Path, root: Optional[str | os.PathLike] = None) -> Path:
    """Decompress (or copy) the four files from ``folder`` into torchvision's layout, atomically.

    Accepts ``name.gz`` (as Debian installs them and as upstream distributes them) or the
    uncompressed ``name``. The caller verifies the result.
    """
    raw = raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_RAW_MD5:
        gz, plain = folder / f"{name}.gz", folder / name
        if not (gz.is_file() or plain.is_file()):
            raise FileNotFoundError(f"{folder} has neither {gz.name} nor {plain.name}")
        # a unique temporary name in raw/, renamed when complete: two processes may copy at once
        with atomic_open(raw / name) as dst, (gzip.open(gz, "rb") if gz.is_file() else open(plain, "rb")) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
    return raw


def _remove_bad(raw: Path, problems: dict[str, str]) -> None:
    """Delete every present file with a wrong MD5: torchvision would read a present file as it is."""
    for name, problem in problems.items():
        if problem != "missing":
            (raw / name).unlink(missing_ok=True)
    # a download cut short leaves a partial .gz that torchvision would try to extract next time
    for name, expected in FASHION_GZ_MD5.items():
        gz = raw / name
        if gz.is_file() and md5(gz) != expected:
            gz.unlink()


def ensure_fashion_mnist(root: Optional[str | os.PathLike] = None, download: bool = True) -> Path:
    """Make sure verified raw Fashion-MNIST files are in ``<root>/FashionMNIST/raw``; returns root.

    Order: files already there and verified; else torchvision's download; else the ``.gz``
    files of ``$EVA_FASHION_MNIST_DIR`` or Debian's ``/usr/share/datasets/fashion-mnist``.
    Every source is verified by MD5 before it is used; with no source, one
    :class:`~eva_utils.data.DataUnavailableError` names the remedies.
    """
    root = data_dir(root)
    raw = raw_dir(root)
    problems = verify_raw(root)
    if not problems:
        return root
    _remove_bad(raw, problems)
    errors = []
    if download:
        try:
            _torchvision_download(root)
        except Exception as err:  # any network failure: fall through to the offline copy
            errors.append("torchvision download failed: " + " ".join(str(err).split()))  # cause kept
        else:
            if not (problems := verify_raw(root)):
                (raw / SOURCE_FILE).write_text("torchvision download (FashionMNIST(download=True))\n")
                return root
            errors.append(f"torchvision's download did not verify: {problems}")
        _remove_bad(raw, verify_raw(root))
    folder = offline_dir()
    if folder is None:
        errors.append(f"no offline copy (four .gz files) in ${ENV_DIR} or {DEBIAN_DIR}")
    else:
        try:
            copy_from_folder(folder, root)
        except (OSError, EOFError) as err:  # unreadable or truncated .gz
            errors.append(f"offline copy in {folder} unreadable: {err}")
        if not (problems := verify_raw(root)):
            (raw / SOURCE_FILE).write_text(f"decompressed from {folder}\n")
            return root
        errors.append(f"offline copy in {folder} did not verify: {problems}")
        _remove_bad(raw, problems)
    raise DataUnavailableError(
        f"Fashion-MNIST is not available in {raw}. " + "; ".join(errors) + ". Remedies: connect to "
        "the internet so torchvision.datasets.FashionMNIST(download=True) can fetch it; or install "
        "Debian's copy with `apt-get install dataset-fashion-mnist` (files in "
        f"{DEBIAN_DIR}); or point ${ENV_DIR} at a folder holding the four original .gz files."
    )


def dataset(train: bool, root=None, transform=None, download: bool = True):
    """``torchvision.datasets.FashionMNIST`` over verified raw files (see :func:`ensure_fashion_mnist`)."""
    return _read(ensure_fashion_mnist(root, download=download), train, transform)


def _read(verified_root: Path, train: bool, transform=None):
    from torchvision.datasets import FashionMNIST

    return FashionMNIST(str(verified_root), train=train, transform=transform, download=False)


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Exact mean and (population) std of uint8 images on the [0, 1] scale.

    From a 256-bin histogram: no float copy of the 47M training pixels is needed.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"pixel_stats expects uint8 images, got {images.dtype}")
    counts = torch.bincount(images.reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n = counts.sum()
    mean = float((counts * values).sum() / n)
    var = float((counts * values.pow(2)).sum() / n) - mean ** 2
    return mean, max(var, 0.0) ** 0.5


# ----------------------------------------------------------------------------- loaders


def adapted_augment(flip: float = 0.5, padding: int = 0):
    """The adapted model's augmentation: a horizontal flip with probability ``flip``, drawn per
    image (and, with ``padding`` > 0, first a random shift of up to ``padding`` pixels).

    Why a flip and not MNIST's rotation: a mirrored shirt is still a shirt (a mirrored 2 is not
    a 2), and Fashion-MNIST's items are photographed upright and centred, so turning or shifting
    them mostly makes the task harder for a model that is already short of capacity. The
    validation runs of notebook 08 compare these choices; shifts fill with 0, the black
    background of every image.
    """
    from . import augment as aug

    steps = [aug.RandomCrop(padding, fill=0.0)] if padding else []
    return aug.Compose(steps + [aug.RandomHorizontalFlip(flip)])


def loaders(
    batch_size: int = 128,
    *,
    fast: bool = True,
    augment: Optional[Callable] = None,
    device=None,
    root=None,
    seed: int = 1,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    test_batch_size: int = 1000,
    valid_size: int = 0,
    num_workers: Optional[int] = None,
) -> Loaders:
    """Train/test loaders for Fashion-MNIST, normalised with its own training statistics.

    ``fast=True``: :class:`~eva_utils.data.TensorLoader` with batched ``augment`` (a callable
    from :mod:`eva_utils.augment`, e.g. :func:`adapted_augment`, or
    ``augment.RandomAffine(degrees=7)`` for MNIST's rotation). ``fast=False``: torchvision's
    ``FashionMNIST`` + ``ToTensor``/``Normalize`` + ``DataLoader`` (no augmentation).
    ``valid_size=N`` holds out the **last** N training images as ``Loaders.valid`` (never
    augmented, never trained on), as :func:`eva_utils.data.loaders` does for MNIST: design
    choices are compared there, never on the test set. The mean/std are computed from the
    images the model trains on (:func:`pixel_stats`). ``*_limit`` take the first N images
    (quick mode, tests); Fashion-MNIST's files are not sorted by class.
    """
    from .engine import pick_device

    check_limits(train_limit=train_limit, test_limit=test_limit)
    check_valid_size(valid_size)
    device = pick_device(device)
    root = ensure_fashion_mnist(root)  # verified once for both splits
    train_set, test_set = _read(root, True), _read(root, False)
    tr_x, tr_y, va_x, va_y = hold_out(*_tensors(train_set, None), valid_size)
    mean, std = pixel_stats(tr_x)
    norm = Normalize((mean,), (std,))
    if train_limit is not None:
        tr_x, tr_y = tr_x[:train_limit], tr_y[:train_limit]
    te_x, te_y = _tensors(test_set, test_limit)
    if fast:
        train = TensorLoader(tr_x, tr_y, batch_size, shuffle=True, augment=augment, normalize=norm,
                             seed=seed, device=device)
        test = TensorLoader(te_x, te_y, test_batch_size, shuffle=False, normalize=norm, device=device)
        valid = None
        if valid_size:
            valid = TensorLoader(va_x, va_y, test_batch_size, shuffle=False, normalize=norm, device=device)
        return Loaders(train, test, True, device, valid)

    from torch.utils.data import Subset
    from torchvision import transforms

    if augment is not None:
        raise ValueError("batched `augment` is for fast=True; the classic path has no augmentation")
    if valid_size:
        raise ValueError("valid_size is for the fast path (fast=True)")
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    train_set.transform, test_set.transform = tf, tf
    if train_limit is not None:
        train_set = Subset(train_set, range(min(train_limit, len(train_set))))
    if test_limit is not None:
        test_set = Subset(test_set, range(min(test_limit, len(test_set))))
    return classic_loaders(train_set, test_set, batch_size, test_batch_size, device, seed, num_workers)


# ----------------------------------------------------------------------------- the adapted model


class FashionNet(nn.Module):
    """The course's first GAP architecture (three 3x3s in block 2, 7,756 parameters) adapted to
    clothes: the first block padded.

    Why padded: MNIST's digits sit in a 20x20 box with a 4-pixel empty margin, so the final
    model's unpadded 3x3s lose nothing when they shrink 28 -> 24. Trousers, dresses, bags and
    coats fill the 28x28 frame: unpadded, the first block sees the border pixels only through
    a corner of its windows. Padding the first two convs keeps every border pixel at full
    weight and leaves a larger 8x8 map for the second block (more positions for GAP to average),
    at about 1.3x the compute. Why no second max-pool and no dropout: on the validation split
    a candidate with a second pool (7x7 maps) did worse, and every 8k model there was
    under-fitting (train accuracy no higher than validation), so capacity, not regularisation,
    is what they lack.
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


def build(**kwargs) -> FashionNet:
    """``models.build("fashion_adapted", ...)``: registered, so ``models.load`` reads its checkpoints."""
    from . import models

    return models.build("fashion_adapted", **kwargs)


def _recipe():
    from .recipes import Recipe

    return Recipe("08_fashion_adapted", "fashion_adapted", epochs=15, lr=0.005, nesterov=True,
                  scheduler="onecycle", max_lr=0.05)


ADAPTED_RECIPE = _recipe()


# ----------------------------------------------------------------------------- what the notebook shows


def checksum_markdown(root: Optional[str | os.PathLike] = None) -> str:
    """The four raw files with their expected and measured MD5s, as a Markdown table."""
    rows = ["| file | bytes | expected MD5 (original files) | measured MD5 | verified |", "|---|---|---|---|---|"]
    for r in checksum_rows(root):
        rows.append(f"| `{r['file']}` | {r['bytes']:,} | `{r['expected']}` | `{r['md5']}` | "
                    f"{'yes' if r['ok'] else '**NO**'} |")
    return "\n".join(rows)


def per_class_accuracy(model, loader, device=None) -> list[float]:
    """Accuracy (%) of ``model`` on each class of ``loader``, in label order."""
    from . import plots

    _, y, p, _ = plots.predictions(model, loader, device)
    return [100.0 * float((p[y == c] == c).float().mean()) if (y == c).any() else float("nan")
            for c in range(len(class_names))]


def per_class_markdown(accuracies: dict) -> str:
    """{model label: per-class accuracies} side by side, one row per class."""
    labels = list(accuracies)
    rows = ["| class | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for c, name in enumerate(class_names):
        rows.append(f"| {name} | " + " | ".join(f"{accuracies[k][c]:.1f}%" for k in labels) + " |")
    return "\n".join(rows)


def comparison_markdown(histories: dict, split: str = "test") -> str:
    """One row per run (label -> History): params, best and last accuracy, train accuracy, gap, time."""
    rows = [f"| run | params | best {split} (epoch) | last {split} | last train | gap (train - {split}) | s/epoch |",
            "|---|---|---|---|---|---|---|"]
    for label, h in histories.items():
        best, ep = h.best_test
        rows.append(f"| {label} | {h.meta['params']:,} | {best:.2f}% ({ep}) | {h.test_acc[-1]:.2f}% | "
                    f"{h.train_acc[-1]:.2f}% | {h.train_acc[-1] - h.test_acc[-1]:+.2f} | "
                    f"{sum(h.seconds) / max(len(h), 1):.1f} |")
    return "\n".join(rows)


#: The adapted model's parameter budget (the course's).
TARGET_PARAMS = 8_000


def target_line(adapted, final) -> str:
    """One line: the adapted run against its budget and against the final model as is."""
    best_a, ep_a = adapted.best_test
    best_f, ep_f = final.best_test
    params = adapted.meta["params"]
    diff = best_a - best_f
    return (f"Adapted model: {params:,} parameters {'<' if params < TARGET_PARAMS else 'NOT <'} "
            f"{TARGET_PARAMS:,}; best test accuracy {best_a:.2f}% (epoch {ep_a}) against {best_f:.2f}% "
            f"(epoch {ep_f}) for the course's final model as is ({final.meta['params']:,} parameters): "
            f"{diff:+.2f} points")
