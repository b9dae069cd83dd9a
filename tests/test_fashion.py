"""Fashion-MNIST: verified raw files from each source (eva_utils.sources), corruption, no source,
loaders (eva_utils.data), the adapted model (eva_utils.models) and its recipe.

Source mechanics run in temporary folders with the network replaced by a stub (no test
touches the internet). Tests whose point is the real data use Debian's copy
(``/usr/share/datasets/fashion-mnist``, ``$EVA_FASHION_MNIST_DIR``) or files already in the
data folder (or the internet), and are skipped outside CI, naming the remedy, only where
there is none (``needs_data``, in the repository's conftest.py).
"""
from __future__ import annotations

import gzip
import shutil

import pytest
import torch

from eva_utils import data, datasets, engine, models, recipes, report, sources
from eva_utils.sources import DataUnavailableError


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# skipped, naming the remedy, where Fashion-MNIST cannot be had (never under CI=true): ../conftest.py
needs_data = pytest.mark.needs_data("fashion_mnist")


def _offline(monkeypatch, calls=None):
    """torchvision's download fails as on a machine without internet (and is counted)."""
    def no_network(root):
        if calls is not None:
            calls.append(root)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error [Errno -2] "
                           "Name or service not known>")
    monkeypatch.setattr(sources, "_fashion_download", no_network)


@pytest.fixture(scope="module")
def real_root():
    """The default data folder with verified files (built from Debian's copy offline).

    Only tests marked ``needs_data`` use it, so they are skipped before it runs where
    there is no source."""
    return sources.ensure_fashion_mnist()


@pytest.fixture
def gz_folder(tmp_path, real_root):
    """A copy of the four original files, gzip-compressed, in a folder of its own."""
    folder = tmp_path / "gz"
    folder.mkdir()
    for name in sources.FASHION_RAW_MD5:
        with open(sources.fashion_raw_dir(real_root) / name, "rb") as src, gzip.open(folder / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder


# ----------------------------------------------------------------------------- checksums and sources


@needs_data
def test_real_files_have_the_original_md5s_and_class_counts(real_root):
    assert sources.verify_fashion_raw(real_root) == {}
    rows = sources.fashion_checksum_rows(real_root)
    assert [r["file"] for r in rows] == list(sources.FASHION_RAW_MD5) and all(r["ok"] for r in rows)
    table = report.checksum_markdown(rows)
    assert table.count("| yes |") == 4 and "**NO**" not in table
    train, test = sources.fashion_dataset(True, real_root), sources.fashion_dataset(False, real_root)
    assert train.data.shape == (60_000, 28, 28) and train.data.dtype == torch.uint8
    assert test.data.shape == (10_000, 28, 28)
    assert torch.bincount(train.targets).tolist() == [6_000] * 10
    assert torch.bincount(test.targets).tolist() == [1_000] * 10
    assert train.classes == list(datasets.FASHION_MNIST.classes)


def test_gz_checksums_are_torchvisions():
    from torchvision.datasets import FashionMNIST

    assert dict(FashionMNIST.resources) == sources.FASHION_GZ_MD5


@needs_data
def test_debian_copy_is_used_offline_and_verified(tmp_path, monkeypatch, gz_folder):
    calls = []
    _offline(monkeypatch, calls)
    monkeypatch.setenv(sources.FASHION_ENV_DIR, str(gz_folder))
    root = sources.ensure_fashion_mnist(tmp_path / "data")
    assert calls, "torchvision's download is tried first"
    assert sources.verify_fashion_raw(root) == {}
    assert str(gz_folder) in sources.fashion_source(root)
    calls.clear()
    sources.ensure_fashion_mnist(tmp_path / "data")
    assert not calls, "verified files are used as they are, without a download"


@needs_data
def test_corrupt_file_is_deleted_and_rebuilt(tmp_path, monkeypatch, gz_folder):
    _offline(monkeypatch)
    monkeypatch.setenv(sources.FASHION_ENV_DIR, str(gz_folder))
    root = tmp_path / "data"
    sources.ensure_fashion_mnist(root)
    raw = sources.fashion_raw_dir(root)
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-100])  # truncated
    images = raw / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[5000] ^= 0xFF  # one altered pixel
    images.write_bytes(bytes(data))
    assert set(sources.verify_fashion_raw(root)) == {"train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"}
    sources.ensure_fashion_mnist(root)
    assert sources.verify_fashion_raw(root) == {}


@needs_data
def test_a_bad_offline_copy_is_never_kept(tmp_path, monkeypatch, gz_folder):
    _offline(monkeypatch)
    bad = gz_folder / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(bad, "rb") as fh:
        content = bytearray(fh.read())
    content[-1] ^= 0x01  # one wrong label
    with gzip.open(bad, "wb") as fh:
        fh.write(bytes(content))
    monkeypatch.setenv(sources.FASHION_ENV_DIR, str(gz_folder))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(DataUnavailableError, match="did not verify"):
        sources.ensure_fashion_mnist(tmp_path / "data")
    assert not (sources.fashion_raw_dir(tmp_path / "data") / "t10k-labels-idx1-ubyte").exists()


def test_no_source_gives_one_error_naming_the_remedies(tmp_path, monkeypatch):
    _offline(monkeypatch)
    monkeypatch.delenv(sources.FASHION_ENV_DIR, raising=False)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(DataUnavailableError) as info:
        sources.ensure_fashion_mnist(tmp_path / "data")
    message = str(info.value)
    assert "internet" in message and "FashionMNIST(download=True)" in message
    assert "apt-get install dataset-fashion-mnist" in message and sources.FASHION_ENV_DIR in message
    assert "Name or service not known" in message  # the real cause is kept


def test_offline_dir_prefers_the_environment_variable(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in sources.FASHION_RAW_MD5:
        (folder / f"{name}.gz").write_bytes(b"")
    monkeypatch.setenv(sources.FASHION_ENV_DIR, str(folder))
    assert sources.fashion_offline_dir() == folder
    monkeypatch.setenv(sources.FASHION_ENV_DIR, str(tmp_path / "empty"))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    assert sources.fashion_offline_dir() is None


# ----------------------------------------------------------------------------- loaders


def test_channel_stats_are_exact():
    x = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)  # one grey 2x2 image (N, H, W)
    values = x.double() / 255
    means, stds = data.channel_stats(x)
    assert len(means) == len(stds) == 1  # (N, H, W) is one channel, as (N, 1, H, W)
    assert means[0] == pytest.approx(float(values.mean()), abs=1e-12)
    assert stds[0] == pytest.approx(float(values.std(unbiased=False)), abs=1e-12)
    assert data.channel_stats(x.unsqueeze(1)) == (means, stds)
    with pytest.raises(TypeError):
        data.channel_stats(values)


@needs_data
def test_loaders_shapes_and_own_normalisation(real_root):
    loaders = data.loaders(128, dataset="fashion_mnist", device="cpu", root=real_root)
    assert len(loaders.train) == 469 and len(loaders.test.images) == 10_000
    mean, std = loaders.train.normalize.mean[0], loaders.train.normalize.std[0]
    assert mean == pytest.approx(datasets.FASHION_MNIST.mean[0], abs=5e-4)  # the published 0.2860
    assert std == pytest.approx(datasets.FASHION_MNIST.std[0], abs=5e-4)    # and 0.3530
    assert loaders.mean == data.channel_stats(loaders.train.images)[0]  # computed from the training images
    assert loaders.dataset == "fashion_mnist" and loaders.mean == (mean,) and loaders.std == (std,)
    x, y = next(iter(loaders.train))
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (128,)
    xt, _ = next(iter(loaders.test))
    raw = sources.fashion_dataset(False, real_root).data[:1000].float().div(255).unsqueeze(1)
    torch.testing.assert_close(xt, (raw - mean) / std)
    full = (loaders.train.images.float() / 255 - mean) / std
    assert abs(float(full.mean())) < 1e-3 and abs(float(full.std()) - 1) < 1e-3


@needs_data
def test_classic_path_gives_the_same_test_tensors(real_root):
    fast = data.loaders(64, dataset="fashion_mnist", device="cpu", root=real_root, test_batch_size=500,
                        splits=data.Splits(train_limit=256, test_limit=500))
    classic = data.loaders(64, dataset="fashion_mnist", fast=False, device="cpu", root=real_root, test_batch_size=500,
                           splits=data.Splits(train_limit=256, test_limit=500))
    (xf, yf), (xc, yc) = next(iter(fast.test)), next(iter(classic.test))
    torch.testing.assert_close(xf, xc, atol=1e-6, rtol=0)
    assert torch.equal(yf, yc)
    assert classic.mean == fast.mean and classic.dataset == "fashion_mnist"
    with pytest.raises(ValueError, match="fast=True"):
        data.loaders(64, dataset="fashion_mnist", fast=False, device="cpu", root=real_root,
                     augment=recipes.RECIPES["fashion_adapted"].make_augment())


@needs_data
def test_validation_split_is_the_last_training_images(real_root):
    loaders = data.loaders(128, dataset="fashion_mnist", device="cpu", root=real_root, splits=data.Splits(valid_size=10_000))
    train = sources.fashion_dataset(True, real_root)
    assert len(loaders.train.images) == 50_000 and len(loaders.valid.images) == 10_000
    assert torch.equal(loaders.valid.images[:, 0], train.data[-10_000:])
    assert torch.equal(loaders.train.images[:, 0], train.data[:50_000])
    assert loaders.valid.augment is None and len(loaders.test.images) == 10_000
    # normalised with the statistics of the 50k images it trains on
    assert loaders.mean == data.channel_stats(train.data[:50_000])[0]
    assert data.loaders(128, dataset="fashion_mnist", device="cpu", root=real_root).valid is None
    with pytest.raises(ValueError, match="valid_size"):
        data.loaders(128, dataset="fashion_mnist", device="cpu", root=real_root, splits=data.Splits(valid_size=60_000))


def test_adapted_augment_flips_about_half_exactly_and_can_shift():
    from eva_utils import augment as aug

    g = torch.Generator().manual_seed(0)
    one = torch.rand(1, 1, 28, 28, generator=g)
    x = one.expand(200, -1, -1, -1).clone()
    recipe = recipes.RECIPES["fashion_adapted"]
    flip = recipe.make_augment()
    assert isinstance(flip, aug.RandomHorizontalFlip) and flip.p == 0.5  # the flip alone
    out = flip(x, torch.Generator().manual_seed(1))
    flipped = torch.tensor([torch.equal(o, one[0].flip(-1)) for o in out])
    kept = torch.tensor([torch.equal(o, one[0]) for o in out])
    assert out.shape == x.shape and (flipped | kept).all() and 60 < int(flipped.sum()) < 140
    shifted = recipe.with_(crop_padding=2).make_augment()(x[:64], torch.Generator().manual_seed(2))
    assert len({tuple(img.flatten().tolist()[::5]) for img in shifted}) > 20
    # a shift and a flip only move pixels: every output pixel is an input pixel or the black fill
    assert torch.isin(shifted, torch.cat([one.flatten(), torch.zeros(1)])).all()


# ----------------------------------------------------------------------------- the adapted model


def test_adapted_model_budget_forward_and_registration(tmp_path):
    model = models.build("fashion_adapted")
    assert isinstance(model, models.FashionNet)
    assert engine.count_parameters(model) < 8_000
    model.eval()
    out = model(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))
    engine.save_checkpoint(tmp_path / "fashion.pt", model)
    loaded = models.load(tmp_path / "fashion.pt")
    assert isinstance(loaded, models.FashionNet)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_adapted_model_rejects_wrong_input_shape():
    model = models.build("fashion_adapted").eval()
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\) \(Fashion-MNIST images\), got \(2, 3, 32, 32\)"):
        model(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="Fashion-MNIST"):
        model(torch.zeros(1, 28, 28))


def test_adapted_receptive_field_covers_the_image():
    from eva_utils.rf import rf_table

    assert rf_table(models.build("fashion_adapted"), (1, 28, 28)).final_rf >= 28


def test_adapted_recipe_is_nesterov_sgd_under_onecycle():
    recipe = recipes.RECIPES["fashion_adapted"]
    optimizer, scheduler = recipe.make_optimizer(models.build("fashion_adapted"), steps_per_epoch=469)
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert optimizer.param_groups[0]["nesterov"] and recipe.epochs == 15
    assert recipe.model == "fashion_adapted" and recipe.dataset == "fashion_mnist"
    assert recipes.target_for("fashion_adapted") is recipes.FASHION_TARGET
