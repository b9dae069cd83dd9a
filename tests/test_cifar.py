"""CIFAR-10: data (eva_utils.sources: cache, checks, offline/online sources; eva_utils.data: loaders),
batched augmentation (the recipe's), the model (eva_utils.models, eva_utils.convs).

Tests that need the real images use the PNG folders at ``$EVA_CIFAR10_DIR`` or
``<repo>/../shared/data/cifar10`` (or an already built cache, or the internet) and are skipped outside CI,
naming the remedy, where none exists (``needs_data``, in the repository's conftest.py). Cache mechanics are tested on a tiny PNG tree in a temporary
folder, with the expected counts patched down, so they take well under a second.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from eva_utils import augment as aug
from eva_utils import cli, convs, data, datasets, engine, models, recipes, sources
from eva_utils.rf import rf_table
from eva_utils.sources import DataUnavailableError

# The README of the offline copy: per-channel statistics of the training set (pixels / 255).
README_MEAN = (0.49139968, 0.48215841, 0.44653091)
README_STD = (0.24703223, 0.24348513, 0.26158784)
README_TEST_MEAN = (0.49421428, 0.48513139, 0.45040909)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# skipped, naming the remedy, where CIFAR-10 cannot be had (never under CI=true): ../conftest.py
needs_data = pytest.mark.needs_data("cifar10")


@pytest.fixture(scope="module")
def tensors():
    return sources.load_cifar10(verbose=False)


def _cifar_loaders(batch_size=64, **kwargs):
    return data.loaders(batch_size, dataset="cifar10", device="cpu", **kwargs)


# ----------------------------------------------------------------------------- the real data


@needs_data
def test_cached_tensors_have_the_full_counts(tensors):
    assert tensors["train_x"].shape == (50_000, 3, 32, 32) and tensors["train_x"].dtype == torch.uint8
    assert tensors["test_x"].shape == (10_000, 3, 32, 32) and tensors["test_x"].dtype == torch.uint8
    assert torch.bincount(tensors["train_y"]).tolist() == [5_000] * 10
    assert torch.bincount(tensors["test_y"]).tolist() == [1_000] * 10
    assert sources.check_cifar_tensors(tensors) == []
    assert tensors["meta"]["classes"] == list(datasets.CIFAR10.classes)
    if tensors["meta"]["source"] != "torchvision":  # decoded from the PNG class folders: stored shuffled
        assert tensors["meta"]["order"] == sources.CIFAR_CACHE_ORDER
    # sources.load gives the same tensors
    loaded = sources.load("cifar10")
    assert torch.equal(loaded["train_x"], tensors["train_x"]) and torch.equal(loaded["test_y"], tensors["test_y"])
    assert loaded["source"] == tensors["meta"]["source"]


@needs_data
def test_channel_statistics_match_the_readme(tensors):
    mean, std = data.channel_stats(tensors["train_x"])
    np.testing.assert_allclose(mean, README_MEAN, atol=1e-7)
    np.testing.assert_allclose(std, README_STD, atol=1e-7)
    np.testing.assert_allclose(datasets.CIFAR10.mean, README_MEAN, atol=1e-8)
    np.testing.assert_allclose(datasets.CIFAR10.std, README_STD, atol=1e-8)
    test_mean, _ = data.channel_stats(tensors["test_x"])
    np.testing.assert_allclose(test_mean, README_TEST_MEAN, atol=1e-7)


@needs_data
def test_first_n_images_of_either_split_hold_every_class(tensors):
    """Limits take the FIRST N images: the cache's fixed shuffle puts every class among them."""
    assert len(set(tensors["train_y"][:64].tolist())) == 10
    assert len(set(tensors["test_y"][:100].tolist())) == 10
    loaders = _cifar_loaders(test_batch_size=100, seed=1, splits=data.Splits(train_limit=64, test_limit=100))
    assert torch.equal(loaders.train.images, tensors["train_x"][:64])  # the first 64, not a random draw
    assert torch.equal(loaders.test.images, tensors["test_x"][:100])   # the first 100, not a spread
    other_seed = _cifar_loaders(seed=2, splits=data.Splits(train_limit=64, test_limit=100))
    assert torch.equal(other_seed.train.images, loaders.train.images)  # the seed only shuffles batches


@pytest.mark.skipif(sources.cifar_png_dir() is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
                    reason="no CIFAR-10 PNG folders for the classic path: set $EVA_CIFAR10_DIR")
def test_classic_and_fast_paths_give_the_same_test_tensors():
    fast = _cifar_loaders(fast=True, test_batch_size=120, splits=data.Splits(train_limit=64, test_limit=120))
    classic = _cifar_loaders(fast=False, test_batch_size=120, splits=data.Splits(train_limit=64, test_limit=120))
    x_fast, y_fast = next(iter(fast.test))
    x_classic, y_classic = next(iter(classic.test))
    assert x_fast.shape == (120, 3, 32, 32)
    assert torch.equal(y_fast, y_classic)
    assert len(set(y_fast.tolist())) == 10  # the limited test set spans every class
    torch.testing.assert_close(x_fast, x_classic, atol=1e-5, rtol=0)
    # normalised with the training statistics: the full test set is close to mean 0, std 1
    assert abs(float(x_fast.mean())) < 0.2
    assert classic.mean == fast.mean and classic.dataset == fast.dataset == "cifar10"
    # the limited training set is the same first 64 images on both paths (every class among them)
    y_train = torch.cat([y for _, y in classic.train])
    assert y_train.sort().values.tolist() == fast.train.targets.sort().values.tolist()
    assert len(set(y_train.tolist())) == 10


@needs_data
def test_valid_size_holds_out_the_last_training_images(tensors):
    loaders = _cifar_loaders(128, augment=recipes.RECIPES["cifar_advanced"].make_augment(),
                             splits=data.Splits(valid_size=5_000))
    assert len(loaders.train.images) == 45_000 and len(loaders.valid.images) == 5_000
    assert len(loaders.train) == 352  # ceil(45,000 / 128): 5,000 fewer training images
    assert torch.equal(loaders.valid.images, tensors["train_x"][-5_000:])
    assert torch.equal(loaders.train.images, tensors["train_x"][:45_000])
    assert len(set(loaders.valid.targets.tolist())) == 10
    assert loaders.valid.augment is None and loaders.train.augment is not None  # never augmented
    assert len(loaders.test.images) == 10_000  # the test set stays the test set
    # normalised with the statistics of the 45,000 images it trains on
    assert loaders.mean == data.channel_stats(tensors["train_x"][:45_000])[0]
    assert _cifar_loaders(splits=data.Splits(test_limit=10)).valid is None
    with pytest.raises(ValueError, match="valid_size"):
        _cifar_loaders(splits=data.Splits(valid_size=50_000))


# ----------------------------------------------------------------------------- cache mechanics


@pytest.fixture
def tiny_tree(tmp_path, monkeypatch):
    """A PNG tree with 2 training / 1 test image per class, and the expected counts patched to match."""
    import dataclasses

    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "pngs"
    for split, n in (("train", 2), ("test", 1)):
        for c, name in enumerate(datasets.CIFAR10.classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{name}_{i}.png")
    tiny = dataclasses.replace(datasets.CIFAR10, train_count=20, test_count=10)
    assert tiny.per_class == {"train": 2, "test": 1}
    monkeypatch.setattr(datasets, "CIFAR10", tiny)
    monkeypatch.setitem(datasets.DATASETS, "cifar10", tiny)
    return root


def _decoded_in_folder_order(split_dir):
    """Every PNG of a split in ImageFolder's order (class by class, file by file), decoded by PIL."""
    from PIL import Image

    samples = sources.cifar_image_folder(split_dir).samples
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1)
                     for p, _ in samples])
    return x, torch.tensor([label for _, label in samples])


def test_cache_is_built_decoded_exactly_in_a_fixed_shuffle_and_reused(tiny_tree, tmp_path):
    data_ = sources.load_cifar10(root=tmp_path / "data", png_root=tiny_tree, verbose=False)
    path = sources.cifar_cache_path(tmp_path / "data")
    assert path.is_file() and path.parent.name == "CIFAR10"
    assert data_["train_x"].shape == (20, 3, 32, 32) and torch.bincount(data_["train_y"]).tolist() == [2] * 10
    assert data_["meta"]["order"] == sources.CIFAR_CACHE_ORDER and data_["meta"]["source"] == str(tiny_tree)
    # ImageFolder order (index 3 is automobile_1.png), then one fixed permutation per split from
    # torch.randperm with seed 0 (train first, then test), every image decoded exactly
    x, y = _decoded_in_folder_order(tiny_tree / "train")
    assert int(y[3]) == 1 and sources.cifar_image_folder(tiny_tree / "train").samples[3][0].endswith("automobile_1.png")
    g = torch.Generator().manual_seed(0)
    train_order, test_order = torch.randperm(20, generator=g), torch.randperm(10, generator=g)
    assert torch.equal(data_["train_x"], x[train_order]) and torch.equal(data_["train_y"], y[train_order])
    xt, yt = _decoded_in_folder_order(tiny_tree / "test")
    assert torch.equal(data_["test_x"], xt[test_order]) and torch.equal(data_["test_y"], yt[test_order])
    assert not torch.equal(data_["train_y"], y)  # not stored sorted by class
    mtime = path.stat().st_mtime_ns
    sources.load_cifar10(root=tmp_path / "data", png_root=tiny_tree, verbose=False)
    assert path.stat().st_mtime_ns == mtime  # a good cache is not rebuilt


def test_torchvision_dataset_over_the_pngs_is_in_the_cache_order(tiny_tree, tmp_path):
    """The classic path's ImageFolder lists the PNGs in the cache's order, so first-N limits agree."""
    cache = sources.load_cifar10(root=tmp_path / "data", png_root=tiny_tree, verbose=False)
    for train, split in ((True, "train"), (False, "test")):
        ds = sources.torchvision_dataset("cifar10", train, tmp_path / "data", png_root=tiny_tree)
        assert ds.targets == cache[f"{split}_y"].tolist()
        assert [label for _, label in ds.samples] == ds.targets and ds.imgs == ds.samples
        assert torch.equal(torch.from_numpy(np.asarray(ds[0][0]).copy()).permute(2, 0, 1), cache[f"{split}_x"][0])


def test_loaders_on_a_png_tree_follow_the_one_contract(tiny_tree, tmp_path, monkeypatch):
    """valid_size, first-N limits, own normalisation and both paths, on the tiny tree."""
    monkeypatch.setenv(sources.CIFAR_ENV_DIR, str(tiny_tree))
    root = tmp_path / "data"
    cache = sources.load_cifar10(root=root, verbose=False)
    loaders = _cifar_loaders(4, root=root, splits=data.Splits(valid_size=5, train_limit=8, test_limit=6))
    assert torch.equal(loaders.valid.images, cache["train_x"][-5:])
    assert torch.equal(loaders.train.images, cache["train_x"][:8]) and len(loaders.train) == 2
    assert torch.equal(loaders.test.images, cache["test_x"][:6])
    assert loaders.train.augment is None  # no augmentation unless one is given
    assert loaders.mean == data.channel_stats(cache["train_x"][:15])[0]  # the 15 it may train on
    fast = _cifar_loaders(4, root=root, test_batch_size=6, splits=data.Splits(train_limit=8, test_limit=6))
    classic = _cifar_loaders(4, root=root, fast=False, test_batch_size=6,
                             splits=data.Splits(train_limit=8, test_limit=6))
    (xf, yf), (xc, yc) = next(iter(fast.test)), next(iter(classic.test))
    assert torch.equal(yf, yc)
    torch.testing.assert_close(xf, xc, atol=1e-5, rtol=0)
    assert sorted(torch.cat([y for _, y in classic.train]).tolist()) == sorted(fast.train.targets.tolist())


def test_corrupted_or_wrong_cache_is_rebuilt(tiny_tree, tmp_path):
    root = tmp_path / "data"
    good = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=False)
    path = sources.cifar_cache_path(root)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    again = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=False)
    assert torch.equal(again["train_x"], good["train_x"])
    # readable but wrong: one class missing from the test split
    bad = dict(good)
    bad["test_y"] = torch.zeros_like(good["test_y"])
    torch.save(bad, path)
    assert sources.check_cifar_tensors(bad)
    again = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=False)
    assert torch.equal(again["test_y"], good["test_y"])


def test_cache_without_an_order_is_rebuilt(tiny_tree, tmp_path, capsys):
    """An older cache, stored sorted by class (its meta has no "order"), is rebuilt shuffled."""
    root = tmp_path / "data"
    good = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=False)
    path = sources.cifar_cache_path(root)
    old = {k: good[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    x, y = _decoded_in_folder_order(tiny_tree / "train")
    old["train_x"], old["train_y"] = x, y  # class by class, as the old cache stored it
    old["meta"] = {k: v for k, v in good["meta"].items() if k != "order"}
    torch.save(old, path)
    assert sources.check_cifar_tensors(old) == []  # the counts alone are fine
    again = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=True)
    assert "sorted by class" in capsys.readouterr().out
    assert again["meta"]["order"] == sources.CIFAR_CACHE_ORDER
    assert torch.equal(again["train_x"], good["train_x"]) and torch.equal(again["train_y"], good["train_y"])
    assert torch.load(path, weights_only=True)["meta"]["order"] == sources.CIFAR_CACHE_ORDER


def test_missing_data_error_names_both_remedies(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.CIFAR_ENV_DIR, raising=False)
    monkeypatch.setattr(sources, "CIFAR_REPO_FALLBACK", tmp_path / "nowhere")

    def no_network(root):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(sources, "_cifar_download", no_network)
    with pytest.raises(DataUnavailableError) as info:
        sources.load_cifar10(root=tmp_path / "data", verbose=False)
    message = str(info.value)
    assert "internet" in message and "CIFAR10(download=True)" in message
    assert sources.CIFAR_ENV_DIR in message and "train/<class>/*.png" in message
    assert "name resolution" in message  # the real cause is kept


def test_env_var_locates_the_png_folders(tiny_tree, monkeypatch, tmp_path):
    monkeypatch.setenv(sources.CIFAR_ENV_DIR, str(tiny_tree))
    monkeypatch.setattr(sources, "CIFAR_REPO_FALLBACK", tmp_path / "nowhere")
    assert sources.cifar_png_dir() == tiny_tree


# ----------------------------------------------------------------------------- the cache's checksum, two processes


def test_cache_with_four_changed_bytes_is_rebuilt(tiny_tree, tmp_path, capsys):
    """A few changed bytes inside a tensor load silently (torch checks no checksum): the recorded SHA-256 tells."""
    root = tmp_path / "data"
    good = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=False)
    assert good["meta"]["sha256"] == sources.cifar_digest(good)
    path = sources.cifar_cache_path(root)
    raw = bytearray(path.read_bytes())
    at = raw.find(good["train_x"].numpy().tobytes()[:256]) + 5000
    assert at > 5000
    raw[at:at + 4] = bytes(b ^ 0xFF for b in raw[at:at + 4])
    path.write_bytes(bytes(raw))
    altered = torch.load(path, weights_only=True)
    assert sources.check_cifar_tensors(altered) == [] and not torch.equal(altered["train_x"], good["train_x"])
    again = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=True)
    assert "altered on disk): rebuilding" in capsys.readouterr().out
    assert torch.equal(again["train_x"], good["train_x"])
    assert torch.equal(torch.load(path, weights_only=True)["train_x"], good["train_x"])  # rebuilt on disk
    # a cache from before the checksum (its meta has none) is rebuilt with one
    old = dict(good, meta={k: v for k, v in good["meta"].items() if k != "sha256"})
    torch.save(old, path)
    sources.load_cifar10(root=root, png_root=tiny_tree, verbose=True)
    assert "no checksum recorded" in capsys.readouterr().out
    assert torch.load(path, weights_only=True)["meta"]["sha256"] == good["meta"]["sha256"]


RACER = """
import dataclasses, sys, time
from pathlib import Path
from eva_utils import datasets, sources
tiny = dataclasses.replace(datasets.CIFAR10, train_count=20, test_count=10)  # the tiny tree's counts
datasets.CIFAR10 = datasets.DATASETS["cifar10"] = tiny
for go in sys.argv[3:]:
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.001)
    try:
        print(sources.cifar_digest(sources.load_cifar10(root=sys.argv[1], png_root=sys.argv[2], verbose=False)), flush=True)
    except Exception as err:
        print(type(err).__name__, flush=True)
"""


def test_processes_finding_one_corrupt_cache_all_rebuild_it(tiny_tree, tmp_path):
    """Four processes find the same bad cache at once (four rounds): each rebuilds it, none fails
    (the bad cache used to be unlink()ed by each: FileNotFoundError in most rounds)."""
    root = tmp_path / "data"
    good = sources.load_cifar10(root=root, png_root=tiny_tree, verbose=False)
    path = sources.cifar_cache_path(root)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    rounds = [tmp_path / f"go{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(root), str(tiny_tree), *map(str, rounds)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for go in rounds:
            assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 4
            # a bad cache that takes a while to read (the real one is 184 MB): 30 MB of wrong tensors,
            # then a truncated one, as all four are about to look
            if go in rounds[::2]:
                torch.save({"train_x": torch.zeros(30_000_000, dtype=torch.uint8)}, path)
            else:
                path.write_bytes(path.read_bytes()[:1000])
            go.touch()  # all four start at once
            assert [p.stdout.readline().strip() for p in procs] == [good["meta"]["sha256"]] * 4
    finally:
        for go in rounds:
            go.touch()  # lets any process still waiting finish, should an assertion have failed
        for p in procs:
            p.wait(timeout=300)
    assert [p.returncode for p in procs] == [0] * 4, [p.stderr.read() for p in procs]
    assert sources.cifar_digest(torch.load(path, weights_only=True)) == good["meta"]["sha256"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


# ----------------------------------------------------------------------------- the PNG tree, checked before decoding


def _png(path, size=(32, 32), mode="RGB"):
    from PIL import Image

    Image.new(mode, size, "red").save(path)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _remove_files(folder):
    for p in folder.iterdir():
        p.unlink()


def _outside_png(tree):
    _png(tree.parent / "elsewhere.png")
    return tree.parent / "elsewhere.png"


#: fault name -> (how to make it in the tiny tree, split named, path named, problem named)
TREE_FAULTS = {
    "truncated": (lambda t: _truncate(t / "train/cat/cat_1.png"), "train", "train/cat/cat_1.png", "truncated"),
    "wrong size": (lambda t: _png(t / "test/dog/dog_0.png", (16, 16)), "test", "test/dog/dog_0.png", "16x16"),
    "RGBA": (lambda t: _png(t / "test/dog/dog_0.png", mode="RGBA"), "test", "test/dog/dog_0.png", "not 8-bit RGB"),
    "grey": (lambda t: _png(t / "train/dog/dog_1.png", mode="L"), "train", "train/dog/dog_1.png", "not 8-bit RGB"),
    "not a PNG": (lambda t: (t / "test/ship/ship_0.png").write_text("hello"), "test", "test/ship/ship_0.png",
                  "not a PNG"),
    "empty file": (lambda t: (t / "test/ship/ship_0.png").write_bytes(b""), "test", "test/ship/ship_0.png", "empty"),
    "a JPEG": (lambda t: (t / "train/frog/frog_9.jpg").write_bytes(b"\xff\xd8\xff"), "train", "train/frog/frog_9.jpg",
               "not a PNG"),
    "empty class": (lambda t: _remove_files(t / "test/cat"), "test", "test/cat", "holds no PNG images"),
    "missing class": (lambda t: shutil.rmtree(t / "train/horse"), "train", "train", "no folder for the class(es) horse"),
    "extra folder": (lambda t: (t / "test/.ipynb_checkpoints").mkdir(), "test", "test", "not CIFAR-10 classes"),
    "symlink loop": (lambda t: (t / "train/cat/loop").symlink_to(t / "train/cat"), "train", "train/cat/loop", "a link"),
    "link out of the tree": (lambda t: (t / "test/cat/cat_9.png").symlink_to(_outside_png(t)), "test",
                             "test/cat/cat_9.png", "a link"),
    "linked class folder": (lambda t: (shutil.rmtree(t / "train/dog"), (t / "train/dog").symlink_to(t / "test/dog")),
                            "train", "train/dog", "a link"),
    "subfolder": (lambda t: (t / "train/cat/more").mkdir(), "train", "train/cat/more", "a folder inside a class folder"),
    "one image too many": (lambda t: _png(t / "train/cat/cat_7.png"), "train", "train/cat", "holds 3 PNG images, CIFAR-10 has 2"),
}


@pytest.mark.parametrize("fault", TREE_FAULTS)
def test_a_bad_png_tree_is_named_before_anything_is_decoded(fault, tiny_tree, tmp_path, monkeypatch):
    import PIL.Image

    make, split, named, problem = TREE_FAULTS[fault]
    make(tiny_tree)

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded before the tree was checked")
    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    for attempt in (lambda: sources.load_cifar10(root=tmp_path / "data", png_root=tiny_tree, verbose=False),
                    lambda: sources.torchvision_dataset("cifar10", False, tmp_path / "data", png_root=tiny_tree)):
        with pytest.raises(ValueError) as err:
            attempt()
        message = str(err.value)
        assert message.startswith(f"CIFAR-10 {split} split: {tiny_tree / named}") and problem in message, message
        assert "\n" not in message and f"${sources.CIFAR_ENV_DIR}" in message
    assert not sources.cifar_cache_path(tmp_path / "data").exists()


def test_damaged_image_data_behind_a_good_header_names_the_file(tiny_tree, tmp_path):
    bad = tiny_tree / "test" / "truck" / "truck_0.png"
    raw = bytearray(bad.read_bytes())
    raw[60:200] = bytes(140)  # inside the image data; the header and the end marker intact
    bad.write_bytes(bytes(raw))
    assert sources.png_problem(bad) is None
    with pytest.raises(ValueError, match=rf"^CIFAR-10 test split: cannot decode {bad} \("):
        sources.load_cifar10(root=tmp_path / "data", png_root=tiny_tree, verbose=False)


def test_the_real_trees_pngs_pass_the_header_check(tiny_tree):
    samples = sources.check_cifar_tree(tiny_tree)
    assert [len(samples["train"]), len(samples["test"])] == [20, 10]
    assert samples["test"] == sources.cifar_image_folder(tiny_tree / "test").samples  # ImageFolder's order


@pytest.mark.parametrize("make, what", [
    (lambda tmp: tmp / "nowhere", "does not exist"),
    (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "is not a folder"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "has no train/ and test/ folders"),
])
def test_a_wrong_eva_cifar10_dir_is_an_error_naming_it(make, what, tiny_tree, tmp_path, monkeypatch):
    root = tmp_path / "data"
    sources.load_cifar10(root=root, png_root=tiny_tree, verbose=False)  # a good cache does not hide it
    bad = make(tmp_path)
    monkeypatch.setenv(sources.CIFAR_ENV_DIR, str(bad))
    expected = rf"^\${sources.CIFAR_ENV_DIR}={bad} {what}; point it at .*, or unset it$"
    with pytest.raises(ValueError, match=expected):
        sources.load_cifar10(root=root, verbose=False)
    with pytest.raises(ValueError, match=expected):
        sources.torchvision_dataset("cifar10", True, root)
    with pytest.raises(ValueError, match=f"the CIFAR-10 PNG folder {tmp_path / 'nowhere'} does not exist"):
        sources.load_cifar10(root=root, png_root=tmp_path / "nowhere", verbose=False)


def test_the_command_line_names_a_wrong_eva_cifar10_dir_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(sources.CIFAR_ENV_DIR, str(tmp_path / "nowhere"))
    monkeypatch.setenv("EVA_DATA", str(tmp_path / "data"))
    assert cli.main(["train", "--model", "cifar_advanced", "--epochs", "1", "--train-limit", "64", "--test-limit",
                     "20", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"error: ${sources.CIFAR_ENV_DIR}={tmp_path / 'nowhere'} does not exist; point it at the " \
                          "folder holding train/<class>/*.png and test/<class>/*.png, or unset it"
    assert "EPOCH" not in out


# ----------------------------------------------------------------------------- batched augmentation


def _same_image_batch(n=64):
    g = torch.Generator().manual_seed(0)
    one = torch.rand(1, 3, 32, 32, generator=g)
    return one.expand(n, -1, -1, -1).clone()


def _distinct(x):
    return len({tuple(img.flatten().tolist()[::7]) for img in x})


def test_random_crop_differs_per_image_and_keeps_shape():
    x = _same_image_batch()
    out = aug.RandomCrop(4)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert _distinct(out) > 20  # 81 possible shifts, 64 draws
    # a crop is a shift: every output pixel is an input pixel or the fill
    assert torch.isin(out, torch.cat([x[0].flatten(), torch.zeros(1)])).all()


def test_horizontal_flip_flips_about_half_exactly():
    x = _same_image_batch(200)
    out = aug.RandomHorizontalFlip()(x, torch.Generator().manual_seed(2))
    flipped = torch.tensor([torch.equal(o, x[0].flip(-1)) for o in out])
    kept = torch.tensor([torch.equal(o, x[0]) for o in out])
    assert (flipped | kept).all() and 60 < int(flipped.sum()) < 140


def test_cutout_holes_differ_per_image():
    x = torch.ones(64, 3, 32, 32)
    out = aug.Cutout(8)(x, torch.Generator().manual_seed(3))
    holes = out[:, 0] == 0
    assert out.shape == x.shape
    assert (holes.flatten(1).sum(1) > 0).all() and (holes.flatten(1).sum(1) <= 64).all()
    assert len({tuple(h.nonzero()[0].tolist()) for h in holes}) > 20
    assert torch.equal(holes, out[:, 2] == 0)  # same hole in every channel


def test_recipe_augment_is_mean_filled_crop_flip_and_cutout():
    augment = recipes.RECIPES["cifar_advanced"].make_augment()
    assert isinstance(augment, aug.Compose) and len(augment.steps) == 3
    crop, flip, cutout = augment.steps
    assert isinstance(crop, aug.MeanFill) and crop.step == aug.RandomCrop(4, fill=0.0)
    assert flip == aug.RandomHorizontalFlip(0.5)
    assert isinstance(cutout, aug.MeanFill) and cutout.step == aug.Cutout(8, p=0.5)
    torch.testing.assert_close(crop.mean.flatten(), torch.tensor(datasets.CIFAR10.mean))


def test_recipe_augment_fills_with_the_mean_and_keeps_shape():
    x = _same_image_batch()
    augment = recipes.RECIPES["cifar_advanced"].with_(cutout_p=1.0).make_augment()
    out = augment(x, torch.Generator().manual_seed(4))
    assert out.shape == x.shape and _distinct(out) > 20
    mean = torch.tensor(datasets.CIFAR10.mean).view(1, 3, 1, 1)
    # the cutout hole holds the per-channel mean (0 after normalisation)
    filled = (out - mean).abs().amax(1) < 1e-6
    assert (filled.flatten(1).sum(1) > 0).all()


def test_mean_fill_makes_a_crop_border_the_mean():
    x = torch.ones(16, 3, 32, 32)
    mean = datasets.CIFAR10.mean
    out = aug.MeanFill(aug.RandomCrop(4), mean)(x, torch.Generator().manual_seed(5))
    border = ((out - 1).abs() > 0.01).any(1)  # pixels that came from the padding
    assert border.any()
    torch.testing.assert_close(out.permute(0, 2, 3, 1)[border], torch.tensor(mean).expand(int(border.sum()), 3))


@needs_data
def test_fast_training_loader_augments_differently_each_epoch():
    augment = recipes.RECIPES["cifar_advanced"].make_augment()
    loaders = _cifar_loaders(32, seed=1, augment=augment, splits=data.Splits(train_limit=64, test_limit=50))
    index = torch.arange(8)
    a, _ = loaders.train.batch(index)
    b, _ = loaders.train.batch(index)
    assert a.shape == (8, 3, 32, 32) and not torch.equal(a, b)
    assert len(loaders.train) == 2 and len(loaders.test.images) == 50
    # no augmentation unless one is given (the recipe's is passed explicitly)
    plain = _cifar_loaders(32, seed=1, splits=data.Splits(train_limit=64, test_limit=50))
    assert plain.train.augment is None
    assert torch.equal(plain.train.batch(index)[0], plain.train.batch(index)[0])


# ----------------------------------------------------------------------------- the model


def test_model_budget_receptive_field_and_layer_kinds():
    model = models.build("cifar_advanced")
    assert isinstance(model, models.AdvancedConvNet)
    assert engine.count_parameters(model) < recipes.CIFAR_TARGET.params == 200_000
    rf_gap = convs.rf_before_gap(model)
    assert rf_gap > recipes.CIFAR_TARGET.rf_above == 44

    class Features(nn.Module):  # the model up to its last feature map
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.features(x)

    assert rf_gap == rf_table(Features(), (3, 32, 32)).final_rf  # the RF of the map GAP averages
    table = rf_table(model, (3, 32, 32))
    assert table.final_rf >= 32 and table.final_rf > rf_gap  # GAP: the output sees everything
    conv_layers = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert any(m.groups == m.in_channels and m.groups > 1 for m in conv_layers), "no depthwise conv"
    assert any(m.dilation[0] > 1 for m in conv_layers), "no dilated conv"
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert isinstance(model.gap, nn.AdaptiveAvgPool2d)
    # dilation buys RF at no cost in parameters
    plain = convs.without_dilation(model)
    assert convs.rf_before_gap(plain) < rf_gap
    assert engine.count_parameters(plain) == engine.count_parameters(model)
    assert convs.total_macs(plain) == convs.total_macs(model)


def test_rf_before_gap_needs_a_global_pool():
    with pytest.raises(ValueError, match="no global pooling"):
        convs.rf_before_gap(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_separable_costs_come_from_the_layer_shapes():
    model = models.build("cifar_advanced")
    rows = convs.separable_costs(model)
    assert rows
    for r in rows:
        h, w = map(int, r["out_hw"].split("x"))
        assert r["sep_params"] == 9 * r["in"] + r["in"] * r["out"]
        assert r["plain_macs"] == 9 * r["in"] * r["out"] * h * w
        assert r["sep_macs"] < r["plain_macs"] / 5
    assert "| **all" in convs.separable_markdown(rows)


def test_model_rejects_wrong_input_and_outputs_log_probabilities():
    model = models.build("cifar_advanced").eval()
    with pytest.raises(ValueError, match="CIFAR-10"):
        model(torch.zeros(2, 1, 28, 28))
    out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))


def test_a_tiny_training_step_runs_and_learns():
    engine.seed_everything(0)
    model = models.build("cifar_advanced")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    y = torch.arange(64) % 10
    from eva_utils.data import Normalize, TensorLoader

    recipe = recipes.RECIPES["cifar_advanced"]
    loader = TensorLoader(x, y, 32, shuffle=True, augment=recipe.make_augment(),
                          normalize=Normalize(datasets.CIFAR10.mean, datasets.CIFAR10.std))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    before = [p.detach().clone() for p in model.parameters()]
    losses = [engine.train(model, "cpu", loader, optimizer, speed=recipe.speed("cpu"), progress=False)["loss"]
              for _ in range(3)]
    assert all(np.isfinite(losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert losses[-1] < losses[0]  # 64 images, seen three times: it starts to fit them


def test_recipe_speed_is_fp32_channels_last_on_a_cpu_only():
    recipe = recipes.RECIPES["cifar_advanced"]
    assert recipe.speed("cpu") == engine.Speed(channels_last=True, precision="fp32")
    assert recipe.speed("cuda") == engine.Speed()  # the defaults on a GPU
    assert recipe.speed("cpu", precision="bf16", channels_last=None).precision == "bf16"  # overrides win


def test_recipe_builds_nesterov_sgd_under_onecycle():
    model = models.build("cifar_advanced")
    recipe = recipes.RECIPES["cifar_advanced"]
    optimizer, scheduler = recipe.make_optimizer(model, steps_per_epoch=391)
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert optimizer.param_groups[0]["nesterov"] and recipe.epochs == 20
    assert recipe.model == "cifar_advanced" and recipe.dataset == "cifar10"
    assert recipes.target_for("cifar_advanced") is recipes.CIFAR_TARGET
    assert (recipes.CIFAR_TARGET.acc, recipes.CIFAR_TARGET.epochs) == (85.0, 20)


def test_cifar_checkpoint_loads_back_with_models_load(tmp_path):
    model = models.build("cifar_advanced", widths=(8, 16, 32, 48))
    engine.save_checkpoint(tmp_path / "cifar.pt", model)
    loaded = models.load(tmp_path / "cifar.pt")
    assert isinstance(loaded, models.AdvancedConvNet) and not loaded.training
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\) \(CIFAR-10\), got \(2, 1, 28, 28\)"):
        loaded(torch.zeros(2, 1, 28, 28))
