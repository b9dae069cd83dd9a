"""torchsummary-style model summary with a receptive-field column.

Which library, and why: the table is built on our own :func:`eva_utils.rf.rf_table`,
not by calling ``torchsummary``.  ``torchsummary.summary`` prints and returns
``None`` (nothing to test or render as HTML), defaults to ``device="cuda"``
(fails on CPU-only machines unless told otherwise), counts a module called
twice - and every custom block that has its own row - more than once, and
knows nothing about receptive fields.  We keep its conventions so the output
looks like what students see elsewhere: the same ``Layer (type)`` /
``Output Shape`` / ``Param #`` layout, ``-1`` for the batch dimension, and the
same size estimates (4 bytes per number; forward/backward = 2 x all layer
outputs).  A test checks that totals and MB lines agree with torchsummary's
printed output on a plain sequential CNN.

``summary(model)`` returns a :class:`Summary`: ``print(s)`` gives the text
table, Jupyter renders ``_repr_html_`` as an HTML table, and the numbers are
plain attributes (``s.rows``, ``s.total_params``, ``s.final_rf`` ...).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .rf import RFRow, RFTable, Window, rf_table

__all__ = ["Summary", "summary"]

_MB = 1024.0 ** 2
_BYTES_PER_NUMBER = 4.0  # torchsummary's assumption (float32)


def _pair_text(values: tuple[int, int]) -> str:
    """``7`` for square values, ``3x5`` (height x width) otherwise."""
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


@dataclass
class Summary:
    """Result of :func:`summary`; see the module docstring."""

    rows: RFTable
    input_size: tuple
    batch_size: int
    total_params: int
    trainable_params: int
    non_trainable_params: int
    input_size_mb: float
    forward_backward_mb: float
    params_size_mb: float
    total_size_mb: float

    @property
    def final_rf(self) -> int:
        """Receptive field of the model's output, in input pixels."""
        return self.rows.final_rf

    # ---- cells shared by the text and HTML renderings --------------------
    def _shape(self, row: RFRow) -> str:
        return str([self.batch_size, *row.output_shape[1:]])

    @staticmethod
    def _params(row: RFRow) -> str:
        return "0 (reused)" if row.repeat else f"{row.params:,}"

    def _footer(self) -> list[tuple[str, str]]:
        out = self.rows.output
        _, h, w = self.input_size
        whole = out.window().clip(h, w) == Window(0, 0, h - 1, w - 1)
        return [
            ("Total params", f"{self.total_params:,}"),
            ("Trainable params", f"{self.trainable_params:,}"),
            ("Non-trainable params", f"{self.non_trainable_params:,}"),
            ("Output receptive field",
             f"{_pair_text(out.rf_hw)} px (jump {_pair_text(out.jump_hw)})"
             + (f", sees the whole {h}x{w} input" if whole else "")),
        ]

    def _sizes(self) -> list[tuple[str, str]]:
        return [
            ("Input size (MB)", f"{self.input_size_mb:0.2f}"),
            ("Forward/backward pass size (MB)", f"{self.forward_backward_mb:0.2f}"),
            ("Params size (MB)", f"{self.params_size_mb:0.2f}"),
            ("Estimated Total Size (MB)", f"{self.total_size_mb:0.2f}"),
        ]

    # ---- renderings ------------------------------------------------------
    def to_text(self) -> str:
        """The familiar torchsummary console table plus Jump and RF columns."""
        fmt = "{:>20}  {:>25} {:>15} {:>6} {:>6}"
        width = len(fmt.format(*[""] * 5))
        lines = ["-" * width,
                 fmt.format("Layer (type)", "Output Shape", "Param #", "Jump", "RF"),
                 "=" * width]
        for row in self.rows:
            lines.append(fmt.format(row.layer, self._shape(row), self._params(row),
                                    _pair_text(row.jump_hw), _pair_text(row.rf_hw)))
        lines.append("=" * width)
        lines += [f"{k}: {v}" for k, v in self._footer()]
        lines.append("-" * width)
        lines += [f"{k}: {v}" for k, v in self._sizes()]
        lines.append("-" * width)
        return "\n".join(lines)

    __str__ = to_text
    __repr__ = to_text  # a bare `summary(model)` in a terminal shows the table

    def _repr_html_(self) -> str:
        """Rich table for notebooks (same columns, plus module name and kernel)."""
        esc = html.escape
        cell = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:{}"
        head = ["Layer (type)", "Module", "Output Shape", "Param #",
                "Kernel / Stride / Pad / Dil", "Jump", "RF"]
        parts = ['<table style="border-collapse:collapse;font-family:monospace;'
                 'font-size:12px">', "<thead><tr>"]
        parts += [f'<th style="{cell.format("right")};border-bottom:2px solid #444">'
                  f"{esc(h)}</th>" for h in head]
        parts.append("</tr></thead><tbody>")
        for row in self.rows:
            values = [row.layer, row.module or "(model)", self._shape(row),
                      self._params(row),
                      f"{row.kernel} / {row.stride} / {row.padding} / {row.dilation}",
                      _pair_text(row.jump_hw), _pair_text(row.rf_hw)]
            parts.append("<tr>" + "".join(
                f'<td style="{cell.format("right")}">{esc(v)}</td>' for v in values)
                + "</tr>")
        parts.append("</tbody></table>")
        parts.append('<table style="font-family:monospace;font-size:12px;margin-top:6px">')
        for k, v in self._footer() + self._sizes():
            parts.append(f'<tr><td style="{cell.format("left")}">{esc(k)}</td>'
                         f'<td style="{cell.format("right")}">{esc(v)}</td></tr>')
        parts.append("</table>")
        return "".join(parts)


def summary(model: nn.Module, input_size: Sequence[int] = (1, 28, 28),
            batch_size: int = -1, device: torch.device | str | None = None) -> Summary:
    """Summarise ``model`` for one input of ``input_size`` (C, H, W).

    ``batch_size`` only affects the displayed shapes and the MB estimates
    (-1 counts as 1, as in torchsummary).  ``device`` defaults to the model's
    own device, so CPU-only machines work without arguments.  Parameter
    totals come from ``model.parameters()``: each parameter is counted once,
    even when its module is called twice or shared.
    """
    rows = rf_table(model, input_size, device=device)
    n = abs(batch_size)
    outputs = sum(math.prod(row.output_shape[1:]) * n for row in rows)
    input_mb = math.prod(rows.input_size) * n * _BYTES_PER_NUMBER / _MB
    forward_backward_mb = 2.0 * outputs * _BYTES_PER_NUMBER / _MB  # x2 for gradients
    params_mb = rows.total_params * _BYTES_PER_NUMBER / _MB
    return Summary(
        rows=rows, input_size=rows.input_size, batch_size=batch_size,
        total_params=rows.total_params, trainable_params=rows.trainable_params,
        non_trainable_params=rows.non_trainable_params,
        input_size_mb=input_mb, forward_backward_mb=forward_backward_mb,
        params_size_mb=params_mb,
        total_size_mb=input_mb + forward_backward_mb + params_mb)
