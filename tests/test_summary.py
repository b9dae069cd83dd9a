"""Model summary: totals, torchsummary compatibility, text and HTML rendering."""

import contextlib
import io
import re

import pytest
import torch
import torchsummary
from torch import nn

from eva_utils.summary import Summary, summary


def sequential_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 8, 1, bias=False), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(16, 10), nn.LogSoftmax(dim=1))


def torchsummary_text(model, input_size, batch_size=-1):
    """torchsummary's printed table, without touching the global RNG."""
    buf = io.StringIO()
    with torch.random.fork_rng(), contextlib.redirect_stdout(buf):
        torchsummary.summary(model, input_size, batch_size=batch_size, device="cpu")
    return buf.getvalue()


@pytest.mark.parametrize("batch_size", [-1, 16])
def test_matches_torchsummary_on_sequential_cnn(batch_size):
    model = sequential_cnn()
    theirs = torchsummary_text(model, (1, 28, 28), batch_size).splitlines()
    ours = summary(model, (1, 28, 28), batch_size=batch_size).to_text().splitlines()

    # Totals and the MB estimates are identical lines.
    keys = ("Total params", "Trainable params", "Non-trainable params", "Input size (MB)",
            "Forward/backward pass size (MB)", "Params size (MB)", "Estimated Total Size (MB)")
    for key in keys:
        line = next(line for line in theirs if line.startswith(key + ":"))
        assert line in ours, key
    # Each layer row starts exactly like torchsummary's (then Jump and RF follow).
    their_rows = [line for line in theirs if re.match(r"\s*\w+-\d+ ", line)]
    our_rows = [line for line in ours if re.match(r"\s*\w+-\d+ ", line)]
    assert len(their_rows) == len(our_rows) == len(model)
    for mine, theirs_row in zip(our_rows, their_rows):
        assert mine.startswith(theirs_row)


def test_totals_count_each_parameter_once():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3)
            self.block = nn.Conv2d(4, 4, 3, padding=1)
            self.frozen = nn.BatchNorm2d(4)
            self.head = nn.Linear(4, 4)
            self.tied = nn.Linear(4, 4)
            self.tied.weight = self.head.weight  # weight tying
            for p in self.frozen.parameters():
                p.requires_grad_(False)

        def forward(self, x):
            x = self.frozen(self.block(self.block(self.stem(x))))  # called twice
            x = x.mean((2, 3))  # global average pooling written functionally
            return self.tied(self.head(x))

    model = Shared()
    s = summary(model, (1, 10, 10))
    unique = sum(p.numel() for p in model.parameters())
    assert s.total_params == unique == 40 + 148 + 8 + 20 + 4
    assert s.trainable_params == unique - 8 and s.non_trainable_params == 8
    assert [r.module for r in s.rows] == ["stem", "block", "block", "frozen", "head", "tied"]
    assert "0 (reused)" in s.to_text()
    assert f"Total params: {unique:,}" in s.to_text()


def test_text_has_header_rf_column_and_rules():
    s = summary(sequential_cnn(), (1, 28, 28))
    text = str(s)
    assert isinstance(s, Summary) and text == s.to_text() == repr(s)
    header = next(line for line in text.splitlines() if "Layer (type)" in line)
    assert header.split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "Jump", "RF"]
    assert "=" * 64 in text
    first = next(line for line in text.splitlines() if "Conv2d-1" in line)
    assert first.split()[-2:] == ["1", "3"]  # jump 1, rf 3
    assert "[-1, 8, 26, 26]" in first and first.split()[-3] == "72"
    assert s.final_rf == s.rows.final_rf
    assert s.final_rf == 28  # 3, 5, 5, pool 6 (jump 2), 10, GAP over 10x10: 10 + 9 * 2
    assert "Output receptive field: 28 px (jump 20), sees the whole 28x28 input" in text


def test_html_table():
    s = summary(sequential_cnn(), (1, 28, 28))
    page = s._repr_html_()
    assert page.startswith("<table") and page.count("<table") == 2
    assert "<th" in page and ">RF</th>" in page and ">Param #</th>" in page
    assert page.count("<tr>") >= len(s.rows) + 4
    assert "MaxPool2d-8" in page and "[-1, 8, 12, 12]" in page


def test_works_on_cpu_without_device_argument():
    model = sequential_cnn()
    assert next(model.parameters()).device.type == "cpu"
    s = summary(model)  # default (1, 28, 28) on the model's own device
    assert s.rows[0].output_shape == (-1, 8, 26, 26)
    assert summary(model, device="cpu").total_params == s.total_params
