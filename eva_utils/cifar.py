"""CIFAR-10 for the course: data (online or offline), loaders, the advanced-convolution model, its recipe.

Where the images come from, in order:

1. the uint8 cache ``<data_dir()>/CIFAR10/cifar10_uint8.pt`` (checked on every load:
   50,000/10,000 images, 5,000/1,000 per class; a wrong or unreadable cache is rebuilt);
2. a folder of PNG class folders (``train/<class>/*.png``, ``test/<class>/*.png``): the
   ``root`` argument, else ``$EVA_CIFAR10_DIR``, else ``<repo>/../shared/data/cifar10``
   (where the course's build machines keep it: they have no internet);
3. ``torchvision.datasets.CIFAR10(download=True)`` (students with internet).

PNGs are decoded once (about a minute or more on two CPU cores) into one uint8 tensor
``(N, 3, 32, 32)`` per split; after that every run starts in a second. The class order
is CIFAR's, which is also alphabetical, so ``ImageFolder`` gives the standard labels.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import (DataUnavailableError, Loaders, Normalize, TensorLoader, check_limits, check_valid_size,
                   classic_loaders, data_dir, spread_indices)
from .fsutil import atomic_open
from .models import check_input

#: CIFAR-10's classes in label order (= alphabetical order of the class folders).
class_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CLASS_NAMES = class_names

#: Per-channel statistics of the training set (pixels / 255), as published and as the
#: offline copy's README verifies them. :func:`channel_stats` recomputes them from the tensor.
CIFAR10_MEAN = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD = (0.24703223, 0.24348513, 0.26158784)

TRAIN_COUNT, TEST_COUNT = 50_000, 10_000
PER_CLASS = {"train": 5_000, "test": 1_000}
CACHE_NAME = "cifar10_uint8.pt"
ENV_DIR = "EVA_CIFAR10_DIR"
#: Where the course repository's build machines keep the PNG folders (relative to the repo).
REPO_FALLBACK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10"


# ----------------------------------------------------------------------------- locating the PNGs


def _is_png_tree(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def png_dir(root: Optional[str | os.PathLike] = None) -> Optional[Path]:
    """The PNG class-folder tree: ``root``, else ``$EVA_CIFAR10_DIR``, else ``<repo>/../shared/data/cifar10``.

    Returns None when none of them holds ``train/`` and ``test/``.
    """
    candidates = []
    if root is not None:
        candidates.append(Path(root).expanduser())
    if os.environ.get(ENV_DIR):
        candidates.append(Path(os.environ[ENV_DIR]).expanduser())
    candidates.append(REPO_FALLBACK)
    for folder in candidates:
        if _is_png_tree(folder):
            return folder
    return None


def cache_path(root: Optional[str | os.PathLike] = None) -> Path:
    """``<data_dir(root)>/CIFAR10/cifar10_uint8.pt``."""
    return data_dir(root) / "CIFAR10" / CACHE_NAME


# ----------------------------------------------------------------------------- decoding


def image_folder(split_dir: Path, transform=None):
    """``torchvision.datasets.ImageFolder`` over one split, checked to have CIFAR's class order."""
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(split_dir), transform=transform)
    if ds.classes != class_names:
        raise ValueError(f"{split_dir} has classes {ds.classes}, expected {class_names}")
    return ds


def decode_split(split_dir: Path, limit: Optional[int] = None, progress: bool = False):
    """Decode the PNGs of one split (in ImageFolder's order) to uint8 (N, 3, 32, 32) and labels."""
    from PIL import Image

    samples = image_folder(split_dir).samples
    if limit is not None:
        samples = samples[:limit]
    images = np.empty((len(samples), 32, 32, 3), dtype=np.uint8)
    labels = np.empty(len(samples), dtype=np.int64)
    for i, (path, label) in enumerate(samples):
        with Image.open(path) as im:
            images[i] = np.asarray(im.convert("RGB"))
        labels[i] = label
        if progress and (i + 1) % 10_000 == 0:
            print(f"  decoded {i + 1:,}/{len(samples):,} of {split_dir.name}", flush=True)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _from_torchvision(root: Path):
    """Download with torchvision (needs internet); returns the four tensors."""
    from torchvision.datasets import CIFAR10

    out = []
    for train in (True, False):
        ds = CIFAR10(str(root), train=train, download=True)
        out += [torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)]
    return out


def check_tensors(data: dict) -> list[str]:
    """Problems with a cache's contents (empty list: fine)."""
    problems = []
    for split, n in (("train", TRAIN_COUNT), ("test", TEST_COUNT)):
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
        if len(counts) != 10 or (counts != PER_CLASS[split]).any():
            problems.append(f"{split}: per-class counts {counts.tolist()}, expected {PER_CLASS[split]} each")
    return problems


def build_cache(root=None, png_root=None, download: bool = True, verbose: bool = True) -> Path:
    """Decode the PNG folders (or download) once and save the uint8 tensors; returns the cache path."""
    path = cache_path(root)
    errors = []
    tensors = None
    folder = png_dir(png_root)
    if folder is not None:
        start = time.perf_counter()
        if verbose:
            print(f"Decoding CIFAR-10 PNGs from {folder} (once; cached in {path}) ...", flush=True)
        tr_x, tr_y = decode_split(folder / "train", progress=verbose)
        te_x, te_y = decode_split(folder / "test", progress=verbose)
        tensors = (tr_x, tr_y, te_x, te_y)
        source, seconds = str(folder), time.perf_counter() - start
        if verbose:
            print(f"Decoded 60,000 PNGs in {seconds:.1f} s", flush=True)
    else:
        errors.append(f"no PNG folders (train/, test/) at the root argument, ${ENV_DIR} or {REPO_FALLBACK}")
        if download:
            start = time.perf_counter()
            try:
                tensors = _from_torchvision(data_dir(root) / "CIFAR10")
            except Exception as err:  # DNS failure, timeout, ... : report, don't hide
                errors.append(f"torchvision download failed: {err}".splitlines()[0])
            source, seconds = "torchvision", time.perf_counter() - start
    if tensors is None:
        raise DataUnavailableError(
            "CIFAR-10 is not available: " + "; ".join(errors) + ". Remedies: connect to the internet "
            "so torchvision.datasets.CIFAR10(download=True) can fetch it, or point "
            f"${ENV_DIR} (or the `root` argument) at a folder with train/<class>/*.png and "
            "test/<class>/*.png."
        )
    data = dict(zip(("train_x", "train_y", "test_x", "test_y"), tensors))
    if problems := check_tensors(data):
        raise DataUnavailableError(f"CIFAR-10 from {source} is incomplete: {problems}")
    data["meta"] = {"source": source, "decode_seconds": seconds, "classes": class_names}
    with atomic_open(path) as fh:  # a unique temporary name: two processes may build the cache at once
        torch.save(data, fh)
    return path


def load_tensors(root=None, png_root=None, download: bool = True, verbose: bool = True) -> dict:
    """{'train_x', 'train_y', 'test_x', 'test_y', 'meta'}: the verified uint8 cache (built if needed).

    A cache that cannot be read or whose counts are wrong is rebuilt from the source.
    """
    path = cache_path(root)
    if path.is_file():
        try:
            data = torch.load(path, weights_only=True)
            problems = check_tensors(data)
        except Exception as err:  # truncated/corrupted file
            problems = [f"unreadable ({type(err).__name__})"]
        if not problems:
            return data
        if verbose:
            print(f"CIFAR-10 cache {path} is bad ({'; '.join(problems)}): rebuilding", flush=True)
        path.unlink()
    build_cache(root, png_root, download, verbose)
    return torch.load(path, weights_only=True)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (population) of uint8 (N, 3, H, W) images on the [0, 1] scale."""
    x = images.double().div_(255.0) if images.numel() < 20_000_000 else None
    if x is not None:
        return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3), unbiased=False).tolist())
    # in float64 per channel to spare memory on the full training set
    means, stds = [], []
    for c in range(images.shape[1]):
        ch = images[:, c].double().div_(255.0)
        means.append(ch.mean().item())
        stds.append(ch.std(unbiased=False).item())
    return tuple(means), tuple(stds)


# ----------------------------------------------------------------------------- loaders


def default_augment(padding: int = 4, cutout: int = 8, flip: float = 0.5, cutout_p: float = 0.5):
    """Random crop with ``padding``, horizontal flip, and (with probability ``cutout_p``) one
    ``cutout`` x ``cutout`` hole, each drawn per image.

    Padding and cutout fill with the training mean so that after normalisation they are 0.
    """
    from . import augment as aug

    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    steps = [_MeanFill(aug.RandomCrop(padding), mean), aug.RandomHorizontalFlip(flip)]
    if cutout:
        steps.append(_MeanFill(aug.Cutout(cutout, p=cutout_p), mean))
    return aug.Compose(steps)


class _MeanFill:
    """Run a fill-with-constant augmentation so that the filled pixels equal the per-channel mean.

    ``augment.RandomCrop``/``Cutout`` fill with one scalar; shifting the image by the mean
    first (and back after) makes a fill of 0 equal the mean of each channel.
    """

    def __init__(self, step, mean: torch.Tensor):
        self.step, self.mean = step, mean

    def __call__(self, x, generator=None):
        m = self.mean.to(x.device, x.dtype)
        return self.step(x - m, generator) + m

    def __repr__(self):
        return f"MeanFill({self.step!r})"


def classic_transforms(train: bool, mean=CIFAR10_MEAN, std=CIFAR10_STD, padding: int = 4):
    """The textbook torchvision pipeline on PIL images (crop + flip for training), for comparison."""
    from torchvision import transforms

    steps = []
    if train:
        fill = tuple(int(round(255 * m)) for m in mean)
        steps += [transforms.RandomCrop(32, padding=padding, fill=fill), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def split_validation(x: torch.Tensor, y: torch.Tensor, n_val: int = 5000, seed: int = 0):
    """A stratified hold-out of the training set (for tuning; never tune on the test set)."""
    g = torch.Generator().manual_seed(seed)
    per = n_val // 10
    val_idx = torch.cat([torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:per]]
                         for c in range(10)])
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[val_idx] = False
    return (x[mask], y[mask]), (x[val_idx], y[val_idx])


def loaders(
    batch_size: int = 128,
    *,
    fast: bool = True,
    augment: Optional[Callable] | str = "default",
    device=None,
    root=None,
    png_root=None,
    seed: int = 1,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    test_batch_size: int = 1000,
    validation: int = 0,
    num_workers: Optional[int] = None,
) -> Loaders:
    """Train/test loaders for CIFAR-10, normalised with the training set's per-channel statistics.

    ``fast=True``: :class:`~eva_utils.data.TensorLoader` over the uint8 cache with batched
    augmentation (``"default"``: :func:`default_augment`; None: no augmentation).
    ``fast=False``: ``ImageFolder``/``CIFAR10`` + torchvision transforms + ``DataLoader``
    (crop + flip; cutout only on the fast path).
    ``validation=N`` holds out N training images (stratified) and returns them as ``test``
    (for tuning without touching the test set). ``*_limit`` take the first N images
    (of a shuffled-by-seed order for training, so a small subset still has every class).
    """
    from .engine import pick_device

    check_limits(train_limit=train_limit, test_limit=test_limit)
    check_valid_size(validation, "validation")
    device = pick_device(device)
    data = load_tensors(root, png_root)
    tr_x, tr_y, te_x, te_y = data["train_x"], data["train_y"], data["test_x"], data["test_y"]
    if validation:
        (tr_x, tr_y), (te_x, te_y) = split_validation(tr_x, tr_y, validation)
    mean, std = channel_stats(tr_x)
    g = torch.Generator().manual_seed(seed)
    train_index = torch.randperm(len(tr_x), generator=g)[:train_limit] if train_limit else None
    # test images are sorted by class in the cache: a limited test set takes a spread of them
    test_index = spread_indices(len(te_x), test_limit) if test_limit else None
    if fast:
        if augment == "default":
            augment = default_augment()
        if train_index is not None:
            tr_x, tr_y = tr_x[train_index], tr_y[train_index]
        if test_index is not None:
            te_x, te_y = te_x[test_index], te_y[test_index]
        norm = Normalize(mean, std)
        train = TensorLoader(tr_x, tr_y, batch_size, shuffle=True, augment=augment, normalize=norm,
                             seed=seed, device=device)
        test = TensorLoader(te_x, te_y, test_batch_size, shuffle=False, normalize=norm, device=device)
        return Loaders(train, test, True, device)

    from torch.utils.data import Subset

    if validation:
        raise ValueError("validation hold-out is implemented for fast=True")
    folder = png_dir(png_root)
    if folder is not None:
        train_set = image_folder(folder / "train", classic_transforms(True, mean, std))
        test_set = image_folder(folder / "test", classic_transforms(False, mean, std))
    else:
        from torchvision.datasets import CIFAR10

        cifar_root = str(data_dir(root) / "CIFAR10")
        train_set = CIFAR10(cifar_root, train=True, download=True, transform=classic_transforms(True, mean, std))
        test_set = CIFAR10(cifar_root, train=False, download=True, transform=classic_transforms(False, mean, std))
    if train_index is not None:
        train_set = Subset(train_set, train_index.tolist())
    if test_index is not None:
        test_set = Subset(test_set, test_index.tolist())
    return classic_loaders(train_set, test_set, batch_size, test_batch_size, device, seed, num_workers)


# ----------------------------------------------------------------------------- the model


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


class SeparableConv(nn.Sequential):
    """Depthwise-separable 3x3: a depthwise 3x3 (``groups = in_ch``: one 3x3 filter per channel,
    it only looks around) then a pointwise 1x1 (it only mixes channels), then BN + ReLU.

    Parameters: 9*C_in + C_in*C_out instead of 9*C_in*C_out for a plain 3x3 (BN aside); the
    RF grows exactly as for a plain 3x3 (by 2*d*jump with dilation d). As in Keras'
    ``SeparableConv2D`` (Xception) there is no BN/ReLU between the two: on a CPU the
    element-wise passes cost as much as the small convolutions themselves.
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=dilation, dilation=dilation,
                      groups=in_ch, bias=False),               # depthwise
            conv_bn(in_ch, out_ch, 1),                        # pointwise, BN, ReLU
        )


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


class _Features(nn.Module):
    """The model up to its last feature map (to measure the RF before GAP with ``rf_table``)."""

    def __init__(self, model: AdvancedConvNet):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.features(x)


def rf_before_gap(model: AdvancedConvNet, input_size=(3, 32, 32)) -> int:
    """Receptive field of the last feature map before GAP, from the real forward pass."""
    from .rf import rf_table

    return rf_table(_Features(model), input_size).final_rf


def build(**kwargs) -> AdvancedConvNet:
    """``models.build("cifar_advanced", ...)``: registered, so ``models.load`` reads its checkpoints."""
    from . import models

    return models.build("cifar_advanced", **kwargs)


# ----------------------------------------------------------------------------- recipe and speed


def _recipe():
    from .recipes import Recipe

    # SGD + Nesterov under OneCycle: warm up from 0.01 to 0.1 in the first 25% of the steps,
    # then anneal to 1e-4; weight decay 5e-4 (BN networks on CIFAR need it).
    return Recipe("09_cifar10_advanced_convs", "cifar_advanced", epochs=20, batch_size=128, lr=0.01,
                  momentum=0.9, nesterov=True, weight_decay=5e-4, scheduler="onecycle", max_lr=0.1,
                  pct_start=0.25)


RECIPE = _recipe()

#: The target of notebook 09, stated in its Results line.
TARGET_ACC = 85.0
TARGET_PARAMS = 200_000
TARGET_RF = 44


def speed(device) -> "object":
    """The engine's speed switches for this model.

    On a CPU: float32 in channels-last, measured faster here than the default bf16
    autocast, because PyTorch's CPU backward of a depthwise (and especially a strided
    depthwise) conv is slow in bf16 and in the default memory format. On a GPU: the defaults.
    """
    from .engine import Speed

    return Speed(channels_last=True, precision="fp32") if torch.device(device).type == "cpu" else Speed()


def target_line(history, rf_gap: int) -> str:
    """One line: the notebook's CIFAR target against a run (best test accuracy within 20 epochs)."""
    best, epoch = history.best_test
    params = history.meta["params"]
    met = best >= TARGET_ACC and params < TARGET_PARAMS and rf_gap > TARGET_RF and len(history) <= 20
    return (f"CIFAR-10 target {'MET' if met else 'NOT MET'}: best test accuracy {best:.2f}% (epoch {epoch}) "
            f"{'>=' if best >= TARGET_ACC else '<'} {TARGET_ACC:.0f}% within {len(history)} epochs; "
            f"{params:,} parameters {'<' if params < TARGET_PARAMS else 'not <'} {TARGET_PARAMS:,}; "
            f"RF before GAP {rf_gap} {'>' if rf_gap > TARGET_RF else 'not >'} {TARGET_RF}")


# ----------------------------------------------------------------------------- what the convs buy


def _forward_once(model: nn.Module, input_size, hooks) -> None:
    """One eval-mode forward pass of a zero image so ``hooks`` see every layer, then remove them."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()


def separable_costs(model: nn.Module, input_size=(3, 32, 32)) -> list[dict]:
    """For every depthwise-separable conv: params and MACs against the plain 3x3 it replaces.

    MACs are computed from the layer shapes (per image): a k x k conv producing an
    H x W x C_out map costs k*k*C_in/groups * C_out * H * W multiply-accumulates.
    """
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: shapes.__setitem__(mod, tuple(out.shape[-2:])))
             for m in model.modules() if isinstance(m, SeparableConv)]
    _forward_once(model, input_size, hooks)
    rows = []
    names = {m: n for n, m in model.named_modules()}
    for m, (h, w) in shapes.items():
        dw, pw = m[0], m[1][0]
        cin, cout = dw.in_channels, pw.out_channels
        plain_p = 9 * cin * cout
        sep_p = dw.weight.numel() + pw.weight.numel()
        rows.append({"layer": names[m], "in": cin, "out": cout, "out_hw": f"{h}x{w}",
                     "stride": dw.stride[0], "dilation": dw.dilation[0],
                     "plain_params": plain_p, "sep_params": sep_p,
                     "plain_macs": plain_p * h * w, "sep_macs": sep_p * h * w})
    return rows


def separable_markdown(rows: list[dict]) -> str:
    out = ["| layer | C_in -> C_out | output | plain 3x3 params | separable params | plain MACs | separable MACs | saving |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{r['layer']}` | {r['in']} -> {r['out']} | {r['out_hw']} | {r['plain_params']:,} | "
                   f"{r['sep_params']:,} | {r['plain_macs']:,} | {r['sep_macs']:,} | "
                   f"{r['plain_params'] / r['sep_params']:.1f}x |")
    tp, sp = sum(r["plain_params"] for r in rows), sum(r["sep_params"] for r in rows)
    tm, sm = sum(r["plain_macs"] for r in rows), sum(r["sep_macs"] for r in rows)
    out.append(f"| **all {len(rows)}** | | | **{tp:,}** | **{sp:,}** | **{tm:,}** | **{sm:,}** | **{tp / sp:.1f}x** |")
    return "\n".join(out)


def total_macs(model: nn.Module, input_size=(3, 32, 32)) -> int:
    """Multiply-accumulates of all convs and linear layers for one image, from the layer shapes."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += k * out.shape[1] * out.shape[2] * out.shape[3]
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    _forward_once(model, input_size, hooks)
    return total[0]


def without_dilation(model: nn.Module) -> nn.Module:
    """A copy with every dilated conv set back to dilation 1 (same weights, params and MACs)."""
    import copy

    clone = copy.deepcopy(model)
    for m in clone.modules():
        if isinstance(m, nn.Conv2d) and m.dilation[0] > 1:
            m.dilation, m.padding = (1, 1), ((m.kernel_size[0] - 1) // 2,) * 2
    return clone


def rf_rows(model: nn.Module, input_size=(3, 32, 32)) -> list[tuple[str, str, int, int]]:
    """(layer, output size, jump, RF) for each conv and the GAP, from :func:`eva_utils.rf.rf_table`."""
    from .rf import rf_table

    rows = []
    for r in rf_table(model, input_size):
        if r.type in ("Conv2d", "AdaptiveAvgPool2d", "Linear"):
            kind = r.type
            if r.type == "Conv2d":
                mod = dict(model.named_modules())[r.module]
                kind = ("depthwise 3x3" if mod.groups == mod.in_channels and mod.groups > 1 else
                        "pointwise 1x1" if mod.kernel_size == (1, 1) else "3x3")
                if mod.dilation[0] > 1:
                    kind += f", dilation {mod.dilation[0]}"
                if mod.stride[0] > 1:
                    kind += f", stride {mod.stride[0]}"
            rows.append((r.module, kind, "x".join(map(str, r.output_shape[2:])) or "-", r.jump, r.rf))
    return rows


# ----------------------------------------------------------------------------- figures


def per_class_accuracy(model, loader, device=None) -> dict:
    """{class name: accuracy %} on ``loader``."""
    from . import plots

    _, y, p, _ = plots.predictions(model, loader, device)
    return {name: 100.0 * float((p[y == c] == c).float().mean()) if (y == c).any() else float("nan")
            for c, name in enumerate(class_names)}
