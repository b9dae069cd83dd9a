"""Augmentation on whole batches of image tensors, a different random draw per image.

Why not torchvision's transforms: those run on one PIL image at a time on the CPU,
which for 28x28 digits costs as much as the network. Here one ``affine_grid`` +
``grid_sample`` call warps the whole batch on the training device.

Conventions match ``torchvision.transforms.RandomAffine``/``RandomRotation``: a
positive angle turns the image counter-clockwise about its centre, translation is
a fraction of the image size, interpolation is nearest by default, and ``fill`` is
the value given to pixels that come from outside the image, *on the scale of the
tensor* (images in [0, 1] here). The course's ``RandomRotation(..., fill=(1,))``
fills the uint8 PIL image with 1, i.e. 1/255 on this scale (black, not white),
which is this module's default.

Each callable takes ``(x, generator)`` with ``x`` of shape (N, C, H, W) and returns
a tensor of the same shape; random parameters are drawn on the CPU from
``generator`` (so runs repeat with a seed) and moved to ``x``'s device.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .checks import check_number, check_optional, check_pair

#: The course's rotation fill: 1 on the uint8 scale, as a [0, 1] tensor value.
COURSE_FILL = 1.0 / 255.0
#: Smoothing of the elastic distortion's displacement field, in pixels (Simard et al.'s 4).
ELASTIC_SIGMA = 4.0


def _uniform(n: int, low: float, high: float, generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def affine_theta(
    angle_deg: torch.Tensor,
    translate_px: Optional[torch.Tensor] = None,
    scale: Optional[torch.Tensor] = None,
    size: tuple[int, int] = (28, 28),
    shear_deg: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """(N, 2, 3) matrices for ``affine_grid``: output pixel -> input pixel, normalised.

    The forward map slants an image by ``shear_deg`` about its centre (x' = x - tan(s) * y,
    with y pointing down in images: a positive angle leans it to the right, as torchvision's
    ``affine(shear=[s, 0])`` does), turns
    it by ``angle_deg`` counter-clockwise, scales it by ``scale`` and shifts it by
    ``translate_px`` (dx, dy in pixels); ``affine_grid`` needs its inverse.
    """
    n = len(angle_deg)
    h, w = size
    a = torch.deg2rad(angle_deg.double())
    s = torch.ones(n, dtype=torch.float64) if scale is None else scale.double()
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # inverse rotation in pixel units, then rescaled for non-square normalised coordinates
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    if translate_px is not None:
        t = translate_px.double()
        tx, ty = 2 * t[:, 0] / w, 2 * t[:, 1] / h  # pixels -> normalised units
        theta[:, 0, 2] = -(theta[:, 0, 0] * tx + theta[:, 0, 1] * ty)
        theta[:, 1, 2] = -(theta[:, 1, 0] * tx + theta[:, 1, 1] * ty)
    if shear_deg is not None:
        # input = S^-1 (R^-1 output + t): the inverse shear, in normalised units, applied last
        unshear = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
        unshear[:, 0, 1] = torch.tan(torch.deg2rad(shear_deg.double())) * h / w
        theta = unshear @ theta
    return theta


def affine_sampling_grid(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s sampling points for per-image affine matrices, on ``x``'s device and dtype."""
    theta = theta.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
    return F.affine_grid(theta, list(x.shape), align_corners=False)


def warp(x: torch.Tensor, theta: torch.Tensor, fill: float = COURSE_FILL, mode: str = "nearest") -> torch.Tensor:
    """Apply per-image affine matrices; pixels from outside the image get ``fill``."""
    return resample(x, affine_sampling_grid(x, theta), fill, mode)


def resample(x: torch.Tensor, grid: torch.Tensor, fill: float = COURSE_FILL, mode: str = "nearest") -> torch.Tensor:
    """Read ``x`` at ``grid`` (``grid_sample``'s normalised sampling points, any warp, not only an
    affine one); pixels from outside the image get ``fill``."""
    # grid_sample pads with zeros; shifting by `fill` makes the padding equal `fill`
    return F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill


@functools.lru_cache(maxsize=8)  # built once per (size, sigma), not twice per training batch; read-only
def gaussian_blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """(size, size) matrix ``G`` with ``G @ v`` = ``v`` blurred by a Gaussian of ``sigma`` pixels
    (taps out to 2 sigma, zero padding at the edges): the same numbers as a ``conv2d`` with the
    Gaussian kernel, at a fraction of its cost. A 17x17 depthwise ``conv2d`` over a batch's
    displacement fields costs about as much on a CPU as the network's own training step; two
    28x28 matrix products (``G @ f @ G.T``) cost almost nothing."""
    radius = int(2 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    taps /= taps.sum()
    i = torch.arange(size)
    offset = i[None, :] - i[:, None]
    return torch.where(offset.abs() <= radius, taps[(offset + radius).clamp(0, 2 * radius)],
                       torch.zeros((), dtype=torch.float64)).float()


def elastic_field(n: int, size: tuple[int, int], alpha: float, sigma: float = ELASTIC_SIGMA, generator=None) -> torch.Tensor:
    """(n, 2, H, W) random displacements in pixels (Simard et al., 2003): per pixel and axis a
    uniform draw in [-1, 1], smoothed by a Gaussian of ``sigma`` pixels and scaled by ``alpha``
    (a root-mean-square move of about ``alpha * 0.04`` pixels per axis at sigma 4, less near the
    edges, where the smoothing sees zeros: about half a pixel at alpha 16). Drawn on the CPU."""
    h, w = size
    noise = torch.rand(n, 2, h, w, generator=generator) * 2 - 1
    return gaussian_blur_matrix(h, sigma) @ noise @ gaussian_blur_matrix(w, sigma).T * alpha


@dataclass
class RandomAffine:
    """Random rotation (+-``degrees``), optional translation and scale, per image.

    ``RandomAffine(degrees=7)`` is the batched twin of the course's
    ``transforms.RandomRotation((-7.0, 7.0), fill=(1,))``.
    ``translate=(a, b)``: shift by up to a*W, b*H pixels; ``scale=(lo, hi)``;
    ``shear=s``: slant by up to +-s degrees along x (torchvision's single-value ``shear``).
    ``elastic=alpha``: add a smooth random displacement (:func:`elastic_field`, ``elastic_sigma``
    pixels of smoothing) to the same warp, so the image is read once; handwriting varies
    locally, in strokes' curvature and thickness, which no affine map draws. It is drawn after
    the affine parameters, so ``elastic=0`` leaves every other draw as it was.
    Note that with nearest interpolation (the course's, and PIL's default) a 28x28
    image turned by less than about 2 degrees comes out unchanged: no pixel moves
    by half a pixel. ``mode="bilinear"`` changes every draw a little.
    """

    degrees: float | Sequence[float] = 7.0
    translate: Optional[Sequence[float]] = None
    scale: Optional[Sequence[float]] = None
    fill: float = COURSE_FILL
    mode: str = "nearest"
    shear: Optional[float] = None
    elastic: float = 0.0
    elastic_sigma: float = ELASTIC_SIGMA

    def __post_init__(self):
        # every value checked, NaN and infinity included: a NaN angle warps every image to blank
        if isinstance(self.degrees, (int, float)):
            check_number("RandomAffine degrees", self.degrees, at_least=0, at_most=180, unit="degrees")
            self.degrees = (-float(self.degrees), float(self.degrees))
        else:
            check_pair("RandomAffine degrees", self.degrees, at_least=-180, at_most=180, unit="degrees")
        if self.translate is not None:
            check_pair("RandomAffine translate", self.translate, ordered=False, at_least=0, at_most=1)
        if self.scale is not None:
            check_pair("RandomAffine scale", self.scale, above=0)
        check_number("RandomAffine fill", self.fill)
        check_optional("RandomAffine shear", self.shear, at_least=0, below=90, unit="degrees")
        check_number("RandomAffine elastic", self.elastic, at_least=0, unit="pixels")
        check_number("RandomAffine elastic_sigma", self.elastic_sigma, above=0, unit="pixels")
        if self.mode not in ("nearest", "bilinear"):
            raise ValueError(f"mode must be 'nearest' or 'bilinear', got {self.mode!r}")

    def sample(self, n: int, size: tuple[int, int], generator=None) -> torch.Tensor:
        """Draw ``n`` affine matrices (one per image)."""
        h, w = size
        angle = _uniform(n, *self.degrees, generator)
        shift = None
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * w, self.translate[1] * h
            shift = torch.stack([_uniform(n, -max_dx, max_dx, generator),
                                 _uniform(n, -max_dy, max_dy, generator)], dim=1).round()
        scale = None if self.scale is None else _uniform(n, *self.scale, generator)
        shear = None if not self.shear else _uniform(n, -self.shear, self.shear, generator)  # drawn last
        return affine_theta(angle, shift, scale, size, shear)

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        theta = self.sample(len(x), size, generator)
        if not self.elastic:
            return warp(x, theta, self.fill, self.mode)
        grid = affine_sampling_grid(x, theta)
        field = elastic_field(len(x), size, self.elastic, self.elastic_sigma, generator)
        h, w = size
        to_grid = torch.tensor([2 / w, 2 / h]).view(1, 2, 1, 1)  # pixels -> normalised units
        grid = grid + (field * to_grid).permute(0, 2, 3, 1).to(grid)
        return resample(x, grid, self.fill, self.mode)


def rotate(x: torch.Tensor, degrees: float, fill: float = COURSE_FILL, mode: str = "nearest") -> torch.Tensor:
    """Rotate every image of the batch by the same angle (for tests and figures)."""
    check_number("rotate degrees", degrees, unit="degrees")
    theta = affine_theta(torch.full((len(x),), float(degrees)), size=tuple(x.shape[-2:]))
    return warp(x, theta, fill, mode)


@dataclass
class RandomHorizontalFlip:
    """Flip each image left-right with probability ``p`` (CIFAR; never for digits)."""

    p: float = 0.5

    def __post_init__(self):
        check_number("RandomHorizontalFlip p", self.p, at_least=0, at_most=1)

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        flip = (torch.rand(len(x), generator=generator) < self.p).to(x.device)
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@dataclass
class RandomCrop:
    """Pad by ``padding`` (with ``fill``) and take a random crop of the original size, per image."""

    padding: int = 4
    fill: float = 0.0

    def __post_init__(self):
        check_number("RandomCrop padding", self.padding, whole=True, at_least=0, unit="pixels")
        check_number("RandomCrop fill", self.fill)

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        n, _, h, w = x.shape
        p = self.padding
        dx = torch.randint(-p, p + 1, (n,), generator=generator)
        dy = torch.randint(-p, p + 1, (n,), generator=generator)
        theta = affine_theta(torch.zeros(n), torch.stack([dx, dy], 1).double(), size=(h, w))
        return warp(x, theta, self.fill, "nearest")


@dataclass
class Cutout:
    """Zero (``fill``) one ``size`` x ``size`` square per image at a random centre (CoarseDropout)."""

    size: int = 8
    fill: float = 0.0
    p: float = 1.0

    def __post_init__(self):
        check_number("Cutout size", self.size, whole=True, at_least=0, unit="pixels")
        check_number("Cutout fill", self.fill)
        check_number("Cutout p", self.p, at_least=0, at_most=1)

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        n, _, h, w = x.shape
        cy = torch.randint(0, h, (n,), generator=generator).to(x.device).view(-1, 1, 1)
        cx = torch.randint(0, w, (n,), generator=generator).to(x.device).view(-1, 1, 1)
        use = (torch.rand(n, generator=generator) < self.p).to(x.device).view(-1, 1, 1)
        ys = torch.arange(h, device=x.device).view(1, -1, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, -1)
        half = self.size // 2
        box = (ys >= cy - half) & (ys < cy - half + self.size) & (xs >= cx - half) & (xs < cx - half + self.size)
        return torch.where((box & use).unsqueeze(1), torch.as_tensor(self.fill, dtype=x.dtype), x)


@dataclass
class Compose:
    """Apply batched augmentations in order."""

    steps: Sequence

    def __call__(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x


class MeanFill:
    """Run a fill-with-constant augmentation so that the filled pixels equal the per-channel mean.

    :class:`RandomCrop`/:class:`Cutout` fill with one scalar; shifting the image by the mean
    first (and back after) makes a fill of 0 equal the mean of each channel, which is 0
    after normalisation (CIFAR-10: a grey border, not a black one).
    """

    def __init__(self, step, mean):
        for i, m in enumerate(torch.as_tensor(mean, dtype=torch.float64).flatten().tolist()):
            check_number(f"MeanFill mean[{i}]", m)
        self.step, self.mean = step, torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, x, generator=None):
        m = self.mean.to(x.device, x.dtype)
        return self.step(x - m, generator) + m

    def __repr__(self):
        return f"MeanFill({self.step!r})"
