"""What a convolution costs and what it sees: the numbers behind notebook 09's choices.

Parameters and multiply-accumulates (MACs) of each depthwise-separable conv against the
plain 3x3 it replaces, a model's MACs per image, and what dilation adds to the receptive
field (a copy of the model without it, and the RF of each layer from :mod:`eva_utils.rf`).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn

from .rf import rf_table


def rf_before_gap(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> int:
    """Receptive field of the last feature map before global average pooling, from the real forward pass.

    (The RF that must cover the object; after GAP every output sees the whole image.)
    """
    rows = list(rf_table(model, input_size))
    for i, row in enumerate(rows):
        if row.type in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d") and i > 0:
            return rows[i - 1].rf
    raise ValueError(f"{type(model).__name__} has no global pooling layer (AdaptiveAvgPool2d)")


def _first_conv(m: nn.Module):
    return m if isinstance(m, nn.Conv2d) else next((c for c in m.modules() if isinstance(c, nn.Conv2d)), None)


def is_separable(m: nn.Module) -> bool:
    """A depthwise-separable conv: a depthwise conv (``groups = in_channels``) then a pointwise 1x1,
    as :class:`eva_utils.models.SeparableConv` builds it (by structure, so a notebook's own copy
    of the class counts too)."""
    if not isinstance(m, nn.Sequential) or len(m) < 2:
        return False
    dw, pw = _first_conv(m[0]), _first_conv(m[1])
    return (dw is not None and pw is not None and dw.groups == dw.in_channels > 1
            and pw.kernel_size == (1, 1) and pw.groups == 1)


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
             for m in model.modules() if is_separable(m)]
    _forward_once(model, input_size, hooks)
    rows = []
    names = {m: n for n, m in model.named_modules()}
    for m, (h, w) in shapes.items():
        dw, pw = _first_conv(m[0]), _first_conv(m[1])
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
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if isinstance(m, nn.Conv2d) and m.dilation[0] > 1:
            m.dilation, m.padding = (1, 1), ((m.kernel_size[0] - 1) // 2,) * 2
    return clone


def rf_rows(model: nn.Module, input_size=(3, 32, 32)) -> list[tuple[str, str, int, int]]:
    """(layer, output size, jump, RF) for each conv and the GAP, from :func:`eva_utils.rf.rf_table`."""
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


