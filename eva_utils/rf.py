"""Receptive-field (RF) tables that follow the real forward pass.

The receptive field is the course's main design tool: every block is planned
by its output size and its RF.  Public tools either get it wrong for branches
(they walk layers in declaration order) or refuse common layers, so this
module computes it from the forward pass itself and ships a gradient-based
cross-check (:func:`measure_rf`) that the tests compare against.

Geometry
    Per spatial axis a feature map is described by the classic recurrence
    numbers: output unit 0 sees input pixels ``start .. start + rf - 1`` and
    unit ``i`` sees the same window moved by ``i * jump`` (``start`` is
    negative when the window reaches into zero padding).  A sliding layer with
    kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` maps
    ``rf += (k - 1) * d * jump``, ``start -= p * jump``, ``jump *= s``.
    Keeping ``start`` (not only ``rf``) makes merges of branches exact.

How the pass is followed
    * Forward hooks on *leaf* modules give one row per call, in real order.
    * The geometry travels *with each tensor* (a dict keyed by ``id()``; the
      tensors are kept alive during the pass so ids cannot be reused).
    * A :class:`torch.overrides.TorchFunctionMode` sees every functional op
      between layers (``x + y``, ``torch.cat``, ``F.relu``, ``view``,
      slicing, ``F.pad``, ``x.mean((2, 3))`` ...) and propagates geometry
      through it.  Merging branches takes the *union* of their windows, which
      equals the widest branch when branches are centred alike.
    * Whatever cannot be reasoned about (``nn.Upsample``,
      ``ConvTranspose2d``, ``F.max_pool2d`` called functionally, a custom
      layer using an unknown op, ...) raises :class:`UnsupportedLayerError`
      instead of silently returning a wrong number.

Conventions
    * Normalisation layers (BatchNorm, GroupNorm, LayerNorm, InstanceNorm)
      count as pointwise: their statistics are not a spatial window.
    * Once a map is flattened (or otherwise loses its H x W layout), any op
      that mixes features (``Linear``, softmax over features, reductions)
      sees every position that reached it: ``rf += (size - 1) * jump``.
    * ``rf`` and ``jump`` of a row are ints (the larger of the two axes);
      ``rf_hw`` / ``jump_hw`` / ``geometry`` give the per-axis values, so
      non-square kernels are handled exactly.

Public API: :func:`rf_table` (returns an :class:`RFTable` of :class:`RFRow`;
read the output RF with ``table.final_rf``), :func:`measure_rf`,
:func:`measure_rf_region`, :class:`Geometry`, :class:`Window`,
:class:`UnsupportedLayerError`.
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "Geometry",
    "RFRow",
    "RFTable",
    "UnsupportedLayerError",
    "Window",
    "measure_rf",
    "measure_rf_region",
    "rf_table",
]

Pair = tuple[int, int]


class UnsupportedLayerError(ValueError):
    """A layer or op whose effect on the receptive field cannot be derived."""


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """An inclusive pixel rectangle of the input (may extend into padding)."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    def clip(self, height: int, width: int) -> "Window":
        """The part of the window inside an image of ``height x width``."""
        return Window(max(self.top, 0), max(self.left, 0),
                      min(self.bottom, height - 1), min(self.right, width - 1))


@dataclass(frozen=True)
class Geometry:
    """Where the units of a feature map look in the input, per axis (H, W).

    ``start_hw``: first input pixel seen by output unit 0 (negative = padding);
    ``rf_hw``: window size; ``jump_hw``: input pixels between adjacent units;
    ``grid_hw``: the spatial size of the feature map.
    """

    start_hw: Pair
    rf_hw: Pair
    jump_hw: Pair
    grid_hw: Pair

    @property
    def rf(self) -> int:
        return max(self.rf_hw)

    @property
    def jump(self) -> int:
        return max(self.jump_hw)

    def center_unit(self) -> Pair:
        """The unit :func:`measure_rf` probes: index ``size // 2`` per axis."""
        return (self.grid_hw[0] // 2, self.grid_hw[1] // 2)

    def window(self, unit: Pair | None = None) -> Window:
        """Input window of output unit ``(row, col)`` (default: central unit)."""
        i, j = self.center_unit() if unit is None else unit
        top = self.start_hw[0] + i * self.jump_hw[0]
        left = self.start_hw[1] + j * self.jump_hw[1]
        return Window(top, left, top + self.rf_hw[0] - 1, left + self.rf_hw[1] - 1)


def _sliding(g: Geometry, kernel: Pair, stride: Pair, pad_before: Pair,
             dilation: Pair, out_grid: Pair) -> Geometry:
    """Geometry after a sliding-window layer (conv / pool / crop / pad)."""
    return Geometry(
        start_hw=tuple(s - p * j for s, p, j in zip(g.start_hw, pad_before, g.jump_hw)),
        rf_hw=tuple(r + (k - 1) * d * j for r, k, d, j in zip(g.rf_hw, kernel, dilation, g.jump_hw)),
        jump_hw=tuple(j * s for j, s in zip(g.jump_hw, stride)),
        grid_hw=out_grid,
    )


def _covering(g: Geometry) -> Geometry:
    """One unit that sees every unit of ``g`` (global pooling, Linear)."""
    return _sliding(g, g.grid_hw, g.grid_hw, (0, 0), (1, 1), (1, 1))


def _union(geoms: Sequence[Geometry], what: str) -> Geometry:
    """Geometry of a tensor combining several aligned branches unit by unit."""
    first = geoms[0]
    if any(g.grid_hw != first.grid_hw for g in geoms):
        sizes = sorted({g.grid_hw for g in geoms})
        raise UnsupportedLayerError(
            f"{what} combines feature maps of different spatial sizes {sizes}; "
            "rf_table only follows merges of equally sized maps.")
    start, rf, jump = [], [], []
    for axis in (0, 1):
        jumps = {g.jump_hw[axis] for g in geoms}
        if len(jumps) > 1 and first.grid_hw[axis] > 1:
            raise UnsupportedLayerError(
                f"{what} merges branches with different jumps {sorted(jumps)}: "
                "neighbouring output units would not be evenly spaced in the "
                "input, so there is no single receptive field to report.")
        lo = min(g.start_hw[axis] for g in geoms)
        hi = max(g.start_hw[axis] + g.rf_hw[axis] - 1 for g in geoms)
        start.append(lo)
        rf.append(hi - lo + 1)
        jump.append(max(jumps))
    return Geometry(tuple(start), tuple(rf), tuple(jump), first.grid_hw)


class _Info(NamedTuple):
    """What the tracer knows about one tensor.

    ``spatial`` is True while the tensor is a 4-D map whose last two dims are
    ``geometry.grid_hw``; otherwise it is a "bag" of features (flattened,
    reshaped) that still remembers which grid its values came from.
    """

    geometry: Geometry
    spatial: bool


def _pair(v: Any) -> Pair:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (1, 1)
    return (int(v), int(v))


def _tensors(obj: Any) -> Iterator[Tensor]:
    """Tensors inside (nested) tuples / lists / dicts, in order."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


# --------------------------------------------------------------------------
# Rows and table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RFRow:
    """One leaf-module call, torchsummary style, plus its receptive field.

    ``kernel``/``stride``/``padding``/``dilation`` are the layer's values
    (larger axis; padding = pixels added before the first row/column;
    ``1/1/0/1`` for pointwise layers; for Linear and adaptive pools the
    equivalent window).  ``params`` counts parameters owned directly by the
    module, on its first call only (``repeat`` marks later calls of a shared
    module, which show 0).
    """

    layer: str
    module: str
    type: str
    output_shape: tuple
    params: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    geometry: Geometry
    repeat: bool = False

    @property
    def rf(self) -> int:
        return self.geometry.rf

    @property
    def jump(self) -> int:
        return self.geometry.jump

    @property
    def rf_hw(self) -> Pair:
        return self.geometry.rf_hw

    @property
    def jump_hw(self) -> Pair:
        return self.geometry.jump_hw

    def window(self, unit: Pair | None = None) -> Window:
        return self.geometry.window(unit)


class RFTable(list):
    """The list of :class:`RFRow` returned by :func:`rf_table`.

    ``final_rf`` / ``final_jump`` / ``output`` describe the model's *output*
    tensor (which need not be the last row, e.g. after ``x + shortcut``);
    parameter totals are taken from ``model.parameters()`` (each counted once).
    """

    def __init__(self, rows: Sequence[RFRow], *, output: Geometry,
                 input_size: tuple, total_params: int, trainable_params: int):
        super().__init__(rows)
        self.output = output
        self.input_size = tuple(input_size)
        self.total_params = total_params
        self.trainable_params = trainable_params

    @property
    def final_rf(self) -> int:
        return self.output.rf

    @property
    def final_jump(self) -> int:
        return self.output.jump

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params


# --------------------------------------------------------------------------
# Leaf modules with known geometry
# --------------------------------------------------------------------------

class _LeafResult(NamedTuple):
    geometry: Geometry
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1


def _max_ints(*pairs: Pair) -> tuple[int, ...]:
    return tuple(max(p) for p in pairs)


def _require_map(info: _Info, where: str) -> None:
    if not info.spatial:
        raise UnsupportedLayerError(
            f"{where} receives a tensor that is no longer an N x C x H x W feature "
            "map (it was flattened or reshaped), so its windows are unknown. "
            "Keep the 4-D layout until after the last spatial layer.")


def _conv_like(m: nn.Module, info: _Info, out_grid: Pair, where: str,
               dilation_attr: bool = True) -> _LeafResult:
    _require_map(info, where)
    kernel = _pair(m.kernel_size)
    stride = _pair(m.stride or m.kernel_size)  # pools: stride=None -> kernel
    dilation = _pair(m.dilation) if dilation_attr else (1, 1)
    padding = m.padding
    if padding == "valid":
        pad = (0, 0)
    elif padding == "same":  # PyTorch pads total//2 before, the rest after
        pad = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    else:
        pad = _pair(padding)
    g = _sliding(info.geometry, kernel, stride, pad, dilation, out_grid)
    return _LeafResult(g, *_max_ints(kernel, stride, pad, dilation))


def _conv(m, info, x, out_grid, where):
    return _conv_like(m, info, out_grid, where)


def _avg_pool(m, info, x, out_grid, where):
    return _conv_like(m, info, out_grid, where, dilation_attr=False)


def _adaptive_pool(m, info, x, out_grid, where):
    """Adaptive pools are exact only when every window has the same size."""
    _require_map(info, where)
    kernel = []
    for n_in, n_out in zip(info.geometry.grid_hw, out_grid):
        if n_in % n_out:
            raise UnsupportedLayerError(
                f"{where} maps {n_in} units onto {n_out}: its windows are not "
                "equal, evenly spaced blocks, so no single RF/jump describes them. "
                "Choose an input size whose map divides evenly (output size 1 "
                "always works).")
        kernel.append(n_in // n_out)
    kernel = tuple(kernel)
    g = _sliding(info.geometry, kernel, kernel, (0, 0), (1, 1), out_grid)
    return _LeafResult(g, max(kernel), max(kernel))


def _pointwise(m, info, x, out_grid, where):
    return _LeafResult(info.geometry)


def _softmax_module(m, info, x, out_grid, where):
    return _LeafResult(_softmax_geometry(info, m.dim, x.dim(), where))


def _linear(m, info, x, out_grid, where):
    if info.spatial:
        raise UnsupportedLayerError(
            f"{where} is applied to a 4-D feature map (it would mix only the last "
            "axis). Flatten the map (or pool it to 1x1) before the Linear layer.")
    grid = info.geometry.grid_hw
    return _LeafResult(_covering(info.geometry), max(grid), max(grid))


def _reshape(m, info, x, out_grid, where):
    return _LeafResult(info.geometry)  # layout change only; spatial recomputed


_POINTWISE_MODULES = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
    nn.InstanceNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.GELU,
    nn.SiLU, nn.Mish, nn.ELU, nn.SELU, nn.CELU, nn.Sigmoid, nn.Tanh, nn.Hardtanh,
    nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.LogSigmoid,
    nn.Tanhshrink, nn.Threshold, nn.Identity, nn.Dropout, nn.Dropout1d,
    nn.Dropout2d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)

# Exact classes whose forward we trust; subclasses that override forward are
# followed op by op instead (see _Tracer._known_handler).
_LEAF_HANDLERS: dict[type, Callable[..., _LeafResult]] = {
    nn.Conv2d: _conv,
    nn.MaxPool2d: _conv,
    nn.AvgPool2d: _avg_pool,
    nn.AdaptiveAvgPool2d: _adaptive_pool,
    nn.AdaptiveMaxPool2d: _adaptive_pool,
    nn.Softmax: _softmax_module,
    nn.LogSoftmax: _softmax_module,
    nn.Softmin: _softmax_module,
    nn.Linear: _linear,
    nn.Flatten: _reshape,
    nn.Unflatten: _reshape,
    **{cls: _pointwise for cls in _POINTWISE_MODULES},
}


def _softmax_geometry(info: _Info, dim: int | None, ndim: int, where: str) -> Geometry:
    """Softmax over channels is pointwise in space; over features it mixes all."""
    if dim is None:  # torch's legacy implicit dim
        dim = 0 if ndim in (0, 1, 3) else 1
    dim %= max(ndim, 1)
    if info.spatial:
        if dim >= 2:
            raise UnsupportedLayerError(
                f"{where} applies softmax over a spatial axis; rf_table does not "
                "follow that. Use it over channels (dim=1) or after flattening.")
        return info.geometry
    return _covering(info.geometry) if dim >= 1 else info.geometry


# --------------------------------------------------------------------------
# Functional ops between layers
# --------------------------------------------------------------------------

# Elementwise / pointwise-in-space ops: output unit = union of input units.
_ELEMENTWISE_OPS = frozenset("""
add add_ __radd__ __iadd__ sub sub_ __rsub__ __isub__ rsub mul mul_ __rmul__
__imul__ div div_ __rdiv__ __rtruediv__ __idiv__ __itruediv__ true_divide
floor_divide neg pow __rpow__ maximum minimum clamp clamp_ clip clip_ abs exp
log sqrt rsqrt square reciprocal lerp addcmul addcdiv where masked_fill
eq ne gt lt ge le logical_and logical_or logical_not isnan isfinite
sigmoid sigmoid_ tanh tanh_ relu relu_ relu6 leaky_relu leaky_relu_ gelu silu
mish elu elu_ selu celu hardtanh hardtanh_ hardswish hardsigmoid softplus
softsign logsigmoid tanhshrink threshold threshold_ prelu rrelu
dropout dropout_ dropout1d dropout2d dropout3d feature_dropout alpha_dropout
feature_alpha_dropout batch_norm group_norm layer_norm instance_norm
sign round floor ceil float double half bfloat16 to type type_as contiguous
clone detach detach_ cpu cuda requires_grad_ data
""".split())

# Layout-only ops: values are kept, only the shape changes.
_RESHAPE_OPS = frozenset(
    "view view_as reshape reshape_as flatten unflatten squeeze squeeze_ "
    "unsqueeze unsqueeze_ ravel".split())

# Ops splitting along one dim: fine unless the dim is spatial.
_SPLIT_OPS = frozenset("split chunk narrow split_with_sizes tensor_split".split())

# Ops mixing all features of a flattened tensor / reducing along dims.
_REDUCTION_OPS = frozenset(
    "mean sum amax amin max min logsumexp std var norm prod argmax argmin".split())
_MATMUL_OPS = frozenset("linear matmul mm bmm addmm __rmatmul__".split())

# Ops that only permute positions: harmless on a 1x1 grid, unknown otherwise.
_PERMUTE_OPS = frozenset("permute transpose t T mT movedim swapaxes flip roll".split())

# Results that do not depend on the values of their tensor inputs.
_CONSTANT_OPS = frozenset(
    "zeros_like ones_like empty_like full_like rand_like randn_like "
    "randint_like new_zeros new_ones new_empty new_full new_tensor".split())

# Spatial ops that only make sense as nn layers for rf_table.
_SPATIAL_FUNCTIONAL_OPS = frozenset("""
conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d
max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d
adaptive_avg_pool1d adaptive_max_pool1d
lp_pool1d lp_pool2d interpolate upsample upsample_nearest upsample_bilinear
unfold fold pixel_shuffle pixel_unshuffle grid_sample max_unpool2d
""".split())


def _op_name(func: Callable) -> str:
    name = getattr(func, "__name__", "")
    if name == "__get__":  # property access such as x.data / x.T
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name


def _dims(dim: Any, ndim: int) -> set[int] | None:
    """Normalised reduction dims; None means 'all dims'."""
    if dim is None or isinstance(dim, bool):
        return None
    if isinstance(dim, int):
        dim = (dim,)
    return {int(d) % ndim for d in dim}


class _Tracer(TorchFunctionMode):
    """Follows one forward pass: rows from leaf hooks, geometry from ops."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.info: dict[int, tuple[Tensor, _Info]] = {}
        self.stack: list[tuple[str, nn.Module, str | None]] = []
        self.opaque = 0  # > 0 while inside a leaf whose forward we trust
        self.rows: list[RFRow] = []
        self.called: set[int] = set()
        self.handles: list[Any] = []

    # ---- bookkeeping -----------------------------------------------------
    def get(self, t: Tensor) -> _Info | None:
        entry = self.info.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else None

    def set(self, t: Tensor, geometry: Geometry) -> None:
        spatial = t.dim() == 4 and tuple(t.shape[-2:]) == geometry.grid_hw
        self.info[id(t)] = (t, _Info(geometry, spatial))

    def where(self) -> str:
        """Human name of the module currently running."""
        if not self.stack:
            return f"the model ({type(self.model).__name__})"
        name, module, label = self.stack[-1]
        shown = f"'{name}'" if name else "the model itself"
        if label:
            return f"layer {label} (module {shown}, {type(module).__name__})"
        return f"the forward of {shown} ({type(module).__name__})"

    # ---- hooks -----------------------------------------------------------
    def attach(self) -> None:
        for name, module in self.model.named_modules():
            leaf = next(module.children(), None) is None
            self.handles.append(module.register_forward_pre_hook(
                self._make_pre_hook(name, leaf)))
            self.handles.append(module.register_forward_hook(
                self._make_post_hook(name, leaf)))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    @staticmethod
    def _known_handler(module: nn.Module) -> Callable[..., _LeafResult] | None:
        for cls in type(module).__mro__:
            handler = _LEAF_HANDLERS.get(cls)
            if handler is not None:
                # A subclass with its own forward may do anything: follow its ops.
                return handler if type(module).forward is cls.forward else None
        return None

    def _make_pre_hook(self, name: str, leaf: bool):
        def pre_hook(module, args):
            label = f"{type(module).__name__}-{len(self.rows) + 1}" if leaf else None
            self.stack.append((name, module, label))
            if leaf and self._known_handler(module) is not None:
                self.opaque += 1
        return pre_hook

    def _make_post_hook(self, name: str, leaf: bool):
        def post_hook(module, args, output):
            where = self.where()
            handler = self._known_handler(module) if leaf else None
            if handler is not None:
                self.opaque -= 1
            self.stack.pop()
            if leaf:
                self._add_row(name, module, handler, args, output, where)
        return post_hook

    def _add_row(self, name, module, handler, args, output, where) -> None:
        outs = list(_tensors(output))
        ins = [t for t in _tensors(args) if self.get(t) is not None]
        if not outs:
            raise UnsupportedLayerError(f"{where} returned no tensor.")
        if not ins:
            raise UnsupportedLayerError(
                f"{where} receives no tensor derived from the model input through "
                "ops rf_table understands, so its receptive field is unknown.")
        info_in = self.get(ins[0])
        out_grid = tuple(outs[0].shape[-2:]) if outs[0].dim() == 4 else (1, 1)
        if handler is not None:
            res = handler(module, info_in, ins[0], out_grid, where)
            for t in outs:
                self.set(t, res.geometry)
        else:
            # Custom / unknown leaf: its ops were followed by the mode.  Report
            # the equivalent window it applied.
            info_out = self.get(outs[0])
            if info_out is None:
                raise UnsupportedLayerError(
                    f"{where}: could not follow its output back to the input.")
            res = _equivalent_window(info_in.geometry, info_out.geometry)
        first_call = id(module) not in self.called
        self.called.add(id(module))
        params = sum(p.numel() for p in module.parameters(recurse=False)) if first_call else 0
        label = f"{type(module).__name__}-{len(self.rows) + 1}"
        self.rows.append(RFRow(
            layer=label, module=name, type=type(module).__name__,
            output_shape=(-1, *outs[0].shape[1:]), params=params,
            kernel=res.kernel, stride=res.stride, padding=res.padding,
            dilation=res.dilation, geometry=res.geometry, repeat=not first_call))

    # ---- functional ops --------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.opaque:
            return out
        name = _op_name(func)
        inputs = [(t, i) for t in _tensors((args, kwargs)) if (i := self.get(t)) is not None]
        # __setitem__ returns None but changes its target in place.
        outs = [args[0]] if name == "__setitem__" else list(_tensors(out))
        if not inputs or not outs or name in _CONSTANT_OPS:
            return out
        geometry = self._propagate(name, args, kwargs, inputs, outs)
        for t in outs:
            self.set(t, geometry)
        return out

    def _propagate(self, name, args, kwargs, inputs, outs) -> Geometry:
        infos = [i for _, i in inputs]
        first = infos[0]
        where = self.where()
        op = f"{name}() in {where}"
        trivial = all(i.geometry.grid_hw == (1, 1) for i in infos)

        two_tensor_max = name in ("max", "min") and len(args) > 1 and isinstance(args[1], Tensor)
        if name in _ELEMENTWISE_OPS or two_tensor_max:
            return self._merge(infos, op)
        if name in ("cat", "concat", "concatenate"):
            tensors = [t for t, _ in inputs]
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % tensors[0].dim()
            if any(i.spatial for i in infos) and dim >= 2:
                raise UnsupportedLayerError(f"{op} concatenates along a spatial axis; "
                                            "rf_table only follows concatenation of channels.")
            return self._merge(infos, op)
        if name == "copy_":
            src = self.get(args[1]) if len(args) > 1 and isinstance(args[1], Tensor) else None
            if src is None:
                raise UnsupportedLayerError(f"{op}: copying a constant over a tracked tensor.")
            return src.geometry
        if name in _RESHAPE_OPS:
            return first.geometry
        if name in _SPLIT_OPS:
            t = inputs[0][0]
            dim = args[1] if name == "narrow" else kwargs.get("dim", args[2] if len(args) > 2 else 0)
            dim %= t.dim()
            if (first.spatial and dim >= 2) or (
                    not first.spatial and not trivial and dim != 0):
                raise UnsupportedLayerError(f"{op} splits a map along a spatial / flattened axis.")
            return first.geometry
        if name in _REDUCTION_OPS or name in ("softmax", "log_softmax", "softmin"):
            return self._reduce(name, args, kwargs, inputs[0][0], first, op)
        if name in _MATMUL_OPS:
            if any(i.spatial for i in infos) and not trivial:
                raise UnsupportedLayerError(
                    f"{op} multiplies a 4-D feature map along its last axis; flatten "
                    "or pool the map first.")
            return self._merge([_Info(_covering(i.geometry), False) for i in infos], op)
        if name == "__getitem__":
            return self._index(args[0], first, args[1], op)
        if name == "__setitem__":
            return self._setitem(args, op)
        if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            # Fully determined by the input and output sizes, like the layer.
            out = outs[0]
            grid = tuple(out.shape[-2:]) if out.dim() == 4 else (1, 1)
            return _adaptive_pool(None, first, inputs[0][0], grid, op).geometry
        if name == "pad":
            return self._pad(args, kwargs, first, outs[0], op)
        if name in _PERMUTE_OPS and trivial:
            return first.geometry
        if name in _SPATIAL_FUNCTIONAL_OPS:
            if self.stack and self.stack[-1][2] is not None:  # inside a leaf
                raise self._unsupported_leaf(name)
            raise UnsupportedLayerError(
                f"F.{name}() is called functionally in {where}; rf_table only "
                "reasons about spatial ops done by nn layers. Use the layer "
                f"instead (e.g. nn.MaxPool2d rather than F.max_pool2d) so it "
                "shows up as a row.")
        if self.stack and self.stack[-1][2] is not None:
            raise self._unsupported_leaf(name)
        raise UnsupportedLayerError(
            f"{op}: rf_table does not know how this op moves pixels, so it cannot "
            "compute the receptive field. Use standard layers for spatial work.")

    def _unsupported_leaf(self, op_name: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"{self.where()} is not supported by rf_table: it uses {op_name}(), "
            "whose effect on the receptive field cannot be derived. Supported: "
            "Conv2d, MaxPool2d, AvgPool2d, adaptive pools, norms, activations, "
            "Dropout, Flatten, Linear and elementwise custom layers. Remove or "
            "replace this layer, or work out its RF by hand.")

    def _merge(self, infos: list[_Info], op: str) -> Geometry:
        if len(infos) == 1:
            return infos[0].geometry
        if len({i.spatial for i in infos}) > 1 and not all(
                i.geometry.grid_hw == (1, 1) for i in infos):
            raise UnsupportedLayerError(f"{op} combines a feature map with a flattened tensor.")
        return _union([i.geometry for i in infos], op)

    def _reduce(self, name, args, kwargs, t: Tensor, info: _Info, op: str) -> Geometry:
        if name in ("softmax", "log_softmax", "softmin"):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            return _softmax_geometry(info, dim, t.dim(), op)
        pos = 2 if name == "norm" else 1
        dim = kwargs.get("dim", args[pos] if len(args) > pos else None)
        dims = _dims(dim, t.dim()) if t.dim() else None
        if info.spatial:
            if dims is None or {2, 3} <= dims:
                return _covering(info.geometry)
            if dims & {2, 3}:
                raise UnsupportedLayerError(f"{op} reduces over only one spatial axis.")
            return info.geometry
        mixes_features = dims is None or bool(dims - {0})
        return _covering(info.geometry) if mixes_features else info.geometry

    def _index(self, t: Tensor, info: _Info, idx: Any, op: str) -> Geometry:
        """Basic slicing: channel/batch indexing keeps windows, spatial slices
        ``a:b:s`` shift the start by ``a`` units and multiply the jump by ``s``."""
        entries = list(idx) if isinstance(idx, tuple) else [idx]
        if not info.spatial:
            if info.geometry.grid_hw == (1, 1) or all(
                    isinstance(e, slice) and e == slice(None) for e in entries[1:]):
                return info.geometry
            raise UnsupportedLayerError(f"{op} selects part of a flattened feature map.")
        if any(e is None for e in entries) or any(
                isinstance(e, Tensor) and e.dtype == torch.bool for e in entries):
            raise UnsupportedLayerError(f"{op}: unsupported indexing of a feature map.")
        at = next((k for k, e in enumerate(entries) if e is Ellipsis), None)
        if at is not None:
            entries[at:at + 1] = [slice(None)] * (4 - len(entries) + 1)
        entries += [slice(None)] * (4 - len(entries))
        begin, step, size = [], [], []
        for axis, e in enumerate(entries[2:4]):
            if not isinstance(e, slice):
                raise UnsupportedLayerError(
                    f"{op} indexes a spatial axis with {e!r}; only slices are followed.")
            b, end, s = e.indices(t.shape[2 + axis])
            begin.append(-b)  # a crop is negative padding
            step.append(s)
            size.append(len(range(b, end, s)))
        return _sliding(info.geometry, (1, 1), tuple(step), tuple(begin), (1, 1), tuple(size))

    def _setitem(self, args, op: str) -> Geometry:
        target, idx, value = args[0], args[1], args[2]
        t_info, v_info = self.get(target), (
            self.get(value) if isinstance(value, Tensor) else None)
        if v_info is None:
            return t_info.geometry  # writing constants does not widen anything
        entries = list(idx) if isinstance(idx, tuple) else [idx]
        if any(not (isinstance(e, slice) and e == slice(None)) for e in entries[2:]) \
                or any(e is Ellipsis for e in entries):
            raise UnsupportedLayerError(f"{op} writes into part of the spatial axes.")
        infos = [i for i in (t_info, v_info) if i is not None]
        return self._merge(infos, op)

    def _pad(self, args, kwargs, info: _Info, out: Tensor, op: str) -> Geometry:
        pad = list(kwargs.get("pad", args[1] if len(args) > 1 else ()))
        if len(pad) < 2 or not info.spatial:
            if info.spatial or info.geometry.grid_hw == (1, 1):
                return info.geometry
            raise UnsupportedLayerError(f"{op} pads a flattened feature map.")
        before = (pad[2] if len(pad) >= 4 else 0, pad[0])  # (top, left)
        grid = tuple(out.shape[-2:])
        return _sliding(info.geometry, (1, 1), (1, 1), before, (1, 1), grid)


def _equivalent_window(g_in: Geometry, g_out: Geometry) -> _LeafResult:
    """Kernel/stride/padding a custom leaf effectively applied (for display)."""
    k, s, p = [], [], []
    for a in (0, 1):
        j = g_in.jump_hw[a]
        s.append(max(g_out.jump_hw[a] // j, 1))
        k.append((g_out.rf_hw[a] - g_in.rf_hw[a]) // j + 1)
        p.append((g_in.start_hw[a] - g_out.start_hw[a]) // j)
    return _LeafResult(g_out, max(k), max(s), max(p), 1)


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int, int]:
    size = tuple(input_size)
    if len(size) != 3 or not all(isinstance(v, numbers.Integral) and v > 0 for v in size):
        raise ValueError(f"input_size must be (channels, height, width), got {input_size!r}")
    return tuple(int(v) for v in size)


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    tensors = [*model.parameters(), *model.buffers()]
    floats = [t for t in tensors if t.is_floating_point()]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = floats[0].dtype if floats else torch.get_default_dtype()
    return device, dtype


def rf_table(model: nn.Module, input_size: Sequence[int] = (1, 28, 28),
             device: torch.device | str | None = None) -> RFTable:
    """Receptive field of every leaf-module call, in real forward order.

    Runs ``model`` once (eval mode, ``no_grad``, a zero batch of 2 on the
    model's device unless ``device`` is given); the training flags of all
    submodules are restored afterwards.  Returns an :class:`RFTable`; its
    ``final_rf`` is the RF of the model's output.

    Raises :class:`UnsupportedLayerError` for layers/ops it cannot reason
    about, and ``ValueError`` naming the failing layer when the input has the
    wrong channel count or is too small for the network.
    """
    c, h, w = _check_input_size(input_size)
    model_device, dtype = _device_dtype(model)
    x = torch.zeros(2, c, h, w, device=device or model_device, dtype=dtype)

    tracer = _Tracer(model)
    tracer.set(x, Geometry((0, 0), (1, 1), (1, 1), (h, w)))
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    tracer.attach()
    try:
        with torch.no_grad(), tracer:
            output = model(x)
    except UnsupportedLayerError:
        raise
    except RuntimeError as err:
        raise ValueError(
            f"Forward pass with input_size={tuple(input_size)} failed in "
            f"{tracer.where()}: {err}\nCheck the number of input channels, and "
            "that the input is large enough for every layer (the spatial size "
            "must stay >= each kernel).") from err
    finally:
        tracer.detach()
        for m, flag in flags:
            m.training = flag

    out = next(_tensors(output), None)
    info = tracer.get(out) if out is not None else None
    if info is None:
        raise UnsupportedLayerError("The model output does not depend on its input "
                                    "through ops rf_table can follow.")
    params = {id(p): p for p in model.parameters()}.values()
    return RFTable(
        tracer.rows, output=info.geometry, input_size=(c, h, w),
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad))


# --------------------------------------------------------------------------
# Measured cross-check
# --------------------------------------------------------------------------

# Under measurement these become identity, so no unit is ever zeroed or
# normalised away and the gradient stays strictly positive inside the RF.
_IDENTITY_WHEN_MEASURING = frozenset("""
relu relu_ relu6 leaky_relu leaky_relu_ gelu silu mish elu elu_ selu celu
hardtanh hardtanh_ hardswish hardsigmoid softplus softsign logsigmoid tanhshrink
threshold threshold_ prelu rrelu sigmoid sigmoid_ tanh tanh_ softmax log_softmax
softmin dropout dropout_ dropout1d dropout2d dropout3d feature_dropout
alpha_dropout feature_alpha_dropout batch_norm group_norm layer_norm
instance_norm local_response_norm
""".split())


class _Linearised(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _op_name(func) in _IDENTITY_WHEN_MEASURING:
            x = args[0] if args else kwargs["input"]
            return x if _op_name(func).endswith("_") or kwargs.get("inplace") else x.clone()
        return func(*args, **kwargs)


class _SpreadMaxPool(nn.Module):
    """Mean over exactly the windows a MaxPool2d uses (any stride, padding,
    dilation, ceil_mode): same RF, but the gradient reaches every window
    pixel instead of one winner."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        out_h, out_w = self.pool(x.detach()).shape[-2:]
        (kh, kw), (dh, dw) = _pair(self.pool.kernel_size), _pair(self.pool.dilation)
        sh, sw = _pair(self.pool.stride or self.pool.kernel_size)
        ph, pw = _pair(self.pool.padding)
        need_h = (out_h - 1) * sh + dh * (kh - 1) + 1
        need_w = (out_w - 1) * sw + dw * (kw - 1) + 1
        h, w = x.shape[-2:]
        x = F.pad(x, (pw, max(0, need_w - w - pw), ph, max(0, need_h - h - ph)))
        n, c, hp, wp = x.shape
        cols = F.unfold(x, (kh, kw), dilation=(dh, dw), stride=(sh, sw))
        nh, nw = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
        return cols.view(n, c, kh * kw, nh, nw).mean(2)[..., :out_h, :out_w]


def _positive_copy(model: nn.Module) -> nn.Module:
    """Float64 eval copy with positive weights, zero biases, spread pooling."""
    probe = copy.deepcopy(model).double().eval()
    replaced: dict[int, nn.Module] = {}
    for name, m in list(probe.named_modules(remove_duplicate=False)):
        if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
            new = replaced.setdefault(id(m), _SpreadMaxPool(m) if isinstance(
                m, nn.MaxPool2d) else nn.AdaptiveAvgPool2d(m.output_size))
            if not name:
                return new
            parent_name, _, attr = name.rpartition(".")
            setattr(probe.get_submodule(parent_name), attr, new)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    return probe


class _Captured(Exception):
    def __init__(self, output):
        self.output = output


def measure_rf_region(model: nn.Module, input_size: Sequence[int] = (1, 28, 28),
                      module: str | None = None) -> Window:
    """Input region that actually influences one output unit (by gradient).

    ``module`` is a dotted name from ``named_modules()`` (first call is used)
    or None for the model's output.  For a 4-D output the central unit
    (index ``size // 2`` per axis, summed over channels) is probed; for other
    outputs (logits) everything is summed.  Works on a float64 copy in which
    weights are positive constants, biases 0, activations/dropout/norms are
    identity and max pools average the same windows, so the gradient cannot
    cancel and is non-zero exactly on the receptive field (clipped to the
    image).  Two honest differences from :func:`rf_table`'s window: the
    measurement is clipped to the image, and pixels the network never reads
    (e.g. the last column when a stride does not divide the width) are never
    measured, while the theoretical window counts such border/padding units.
    Functional max pooling and custom parameters that zero a branch are not
    rewritten.
    """
    c, h, w = _check_input_size(input_size)
    probe = _positive_copy(model)
    device, _ = _device_dtype(probe)
    x = torch.ones(1, c, h, w, dtype=torch.float64, device=device, requires_grad=True)

    handle = None
    if module is not None:
        modules = dict(probe.named_modules())
        if module not in modules:
            raise ValueError(f"No module named {module!r}; see model.named_modules().")

        def capture(_m, _args, output):
            raise _Captured(output)
        handle = modules[module].register_forward_hook(capture)
    try:
        with _Linearised():
            output = probe(x)
    except _Captured as got:
        output = got.output
    finally:
        if handle is not None:
            handle.remove()

    out = next(_tensors(output))
    target = out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum() if out.dim() == 4 \
        else out.sum()
    (grad,) = torch.autograd.grad(target, x)
    hit = grad[0].abs().sum(0) > 0
    rows, cols = hit.any(1).nonzero().flatten(), hit.any(0).nonzero().flatten()
    if rows.numel() == 0:
        raise ValueError("No input pixel influences the probed output.")
    return Window(int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))


def measure_rf(model: nn.Module, input_size: Sequence[int] = (1, 28, 28),
               module: str | None = None, *, per_axis: bool = False) -> int | Pair:
    """Measured RF size of the probed unit: ``max(height, width)`` of
    :func:`measure_rf_region`, or ``(height, width)`` with ``per_axis=True``.

    Pick an input large enough that the window is not clipped by the border
    when comparing with :func:`rf_table`'s theoretical ``rf``.
    """
    region = measure_rf_region(model, input_size, module)
    return (region.height, region.width) if per_axis else max(region.height, region.width)
