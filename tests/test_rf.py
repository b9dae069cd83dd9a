"""Receptive-field tables: analytic numbers vs. a gradient measurement.

Every architecture the course shows is checked two ways: ``rf_table``'s
theoretical window of the probed unit (clipped to the image) must equal the
input region whose gradient is non-zero (``measure_rf_region``), and where the
window fits inside the image the RF sizes must agree.  Inputs are tiny so the
whole file runs in a few seconds on CPU.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eva_utils.rf import (
    RFTable,
    UnsupportedLayerError,
    measure_rf,
    measure_rf_region,
    rf_table,
)


def conv(cin, cout, k=3, **kw):
    return nn.Conv2d(cin, cout, k, **kw)


class Residual(nn.Module):
    """x -> conv3 -> conv3, plus a 1x1 (optionally strided) shortcut."""

    def __init__(self, c, stride=1):
        super().__init__()
        self.body = nn.Sequential(
            conv(c, c, 3, stride=stride, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            conv(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.shortcut = conv(c, c, 1, stride=stride)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class TwoBranch(nn.Module):
    """Inception-style: a 3x3 branch and a dilated 3x3 branch, concatenated."""

    def __init__(self):
        super().__init__()
        self.a = conv(2, 4, 3, padding=1)
        self.b = conv(2, 4, 3, padding=2, dilation=2)
        self.merge = conv(8, 4, 1)

    def forward(self, x):
        return self.merge(torch.cat([self.a(x), self.b(x)], dim=1))


class OffsetBranches(nn.Module):
    """Two 3x3 branches looking one pixel apart: the sum sees 4 pixels, not 3."""

    def __init__(self):
        super().__init__()
        self.a = conv(1, 2, 3)
        self.b = conv(1, 2, 3)

    def forward(self, x):
        return self.a(x[:, :, :-1, :-1]) + self.b(x[:, :, 1:, 1:])


class Swish(nn.Module):
    """A custom elementwise leaf: followed op by op, no special casing."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class FunctionalOps(nn.Module):
    """Functional glue between layers: F.relu, padding, strided slicing, mean."""

    def __init__(self):
        super().__init__()
        self.c1 = conv(1, 4, 3)
        self.pad = nn.ZeroPad2d(1)
        self.act = Swish()
        self.c2 = conv(4, 4, 3)

    def forward(self, x):
        x = self.act(self.pad(F.relu(self.c1(x))))
        x = x[:, :, ::2, ::2]                      # stride-2 subsampling
        x = self.c2(x) * 0.5 + 1.0
        return x.mean(dim=1, keepdim=True)         # channel mean: pointwise


class CourseNet(nn.Module):
    """A typical course MNIST model: conv blocks, 1x1 + maxpool transition, GAP."""

    def __init__(self):
        super().__init__()

        def block(cin, cout, padding=0):
            return nn.Sequential(conv(cin, cout, 3, padding=padding, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(0.05))

        self.convblock1 = block(1, 8)                       # 26, rf 3
        self.convblock2 = block(8, 12)                      # 24, rf 5
        self.trans = nn.Sequential(conv(12, 8, 1, bias=False), nn.MaxPool2d(2))  # 12, rf 6
        self.convblock3 = block(8, 12)                      # 10, rf 10
        self.convblock4 = block(12, 16)                     # 8, rf 14
        self.convblock5 = block(16, 16, padding=1)          # 8, rf 18
        self.gap = nn.AdaptiveAvgPool2d(1)                  # rf 18 + 7 * 2 = 32
        self.head = conv(16, 10, 1, bias=False)

    def forward(self, x):
        x = self.trans(self.convblock2(self.convblock1(x)))
        x = self.convblock5(self.convblock4(self.convblock3(x)))
        x = self.head(self.gap(x)).view(-1, 10)
        return F.log_softmax(x, dim=-1)


# (id, model factory, input size, probed module or None for the output)
ARCHITECTURES = [
    ("plain_3x3", lambda: nn.Sequential(conv(1, 4), nn.ReLU(), conv(4, 4), nn.ReLU(),
                                        conv(4, 4)), (1, 16, 16), None),
    ("padding", lambda: nn.Sequential(conv(1, 4, padding=1), conv(4, 4, padding=1),
                                      conv(4, 4, padding=1)), (1, 13, 13), None),
    ("stride2", lambda: nn.Sequential(conv(1, 4, stride=2, padding=1), conv(4, 4),
                                      conv(4, 4, stride=2)), (1, 24, 24), None),
    ("maxpool", lambda: nn.Sequential(conv(1, 4), conv(4, 4), nn.MaxPool2d(2),
                                      conv(4, 4)), (1, 20, 20), None),
    ("maxpool_pad_dilation_ceil", lambda: nn.Sequential(
        conv(1, 2), nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(3, stride=1, dilation=2),
        nn.MaxPool2d(2, ceil_mode=True), conv(2, 2)), (1, 31, 31), None),
    ("avgpool", lambda: nn.Sequential(conv(1, 4), nn.AvgPool2d(3, stride=2, padding=1),
                                      conv(4, 4)), (1, 20, 20), None),
    ("dilation2", lambda: nn.Sequential(conv(1, 4, dilation=2), nn.ReLU(),
                                        conv(4, 4, dilation=2)), (1, 20, 20), None),
    ("dilation3", lambda: nn.Sequential(conv(1, 4, dilation=3, padding=3), nn.ReLU(),
                                        conv(4, 4)), (1, 20, 20), None),
    ("depthwise_separable", lambda: nn.Sequential(
        conv(1, 8), conv(8, 8, groups=8, stride=2, padding=1), conv(8, 16, 1),
        conv(16, 16, groups=16), conv(16, 8, 1)), (1, 24, 24), None),
    ("transition_1x1", lambda: nn.Sequential(
        conv(1, 8), conv(8, 4, 1), nn.MaxPool2d(2), conv(4, 8), conv(8, 4, 1)),
        (1, 20, 20), None),
    ("gap", lambda: nn.Sequential(conv(1, 4), conv(4, 4), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(4, 3)), (1, 12, 12), None),
    ("residual_1x1", lambda: nn.Sequential(conv(1, 4), Residual(4)), (1, 16, 16), None),
    ("residual_stride", lambda: nn.Sequential(conv(1, 4), Residual(4, stride=2)),
     (1, 17, 17), None),
    ("concat_branches", lambda: nn.Sequential(conv(1, 2), TwoBranch()), (1, 16, 16), None),
    ("offset_branches", OffsetBranches, (1, 12, 12), None),
    ("course_mnist_output", CourseNet, (1, 28, 28), None),
    ("course_mnist_block4", CourseNet, (1, 28, 28), "convblock4.3"),
    ("course_mnist_transition", CourseNet, (1, 28, 28), "trans.1"),
    ("non_square", lambda: nn.Sequential(conv(1, 2, (3, 5)), conv(2, 2, (5, 1), stride=(2, 1))),
     (1, 21, 21), None),
    ("same_padding_even_kernel", lambda: nn.Sequential(
        conv(1, 2, 4, padding="same"), conv(2, 2, 2, padding="same")), (1, 12, 12), None),
    ("functional_ops", FunctionalOps, (1, 16, 16), None),
    ("flatten_linear", lambda: nn.Sequential(conv(1, 2), nn.MaxPool2d(2), nn.Flatten(),
                                             nn.Linear(2 * 4 * 4, 5)), (1, 10, 10), None),
]


def analytic_geometry(model, input_size, module):
    table = rf_table(model, input_size)
    if module is None:
        return table.output
    return next(row.geometry for row in table if row.module == module)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("factory, input_size, module",
                         [a[1:] for a in ARCHITECTURES], ids=[a[0] for a in ARCHITECTURES])
def test_analytic_rf_matches_measurement(factory, input_size, module):
    model = factory()
    geometry = analytic_geometry(model, input_size, module)
    _, h, w = input_size
    measured = measure_rf_region(model, input_size, module)
    window = geometry.window()
    assert window.clip(h, w) == measured
    if window.clip(h, w) == window:  # window fits: sizes must agree exactly
        assert measure_rf(model, input_size, module, per_axis=True) == geometry.rf_hw
        assert measure_rf(model, input_size, module) == geometry.rf


def test_hand_computed_numbers():
    model = nn.Sequential(conv(1, 4), conv(4, 4), nn.MaxPool2d(2), conv(4, 4))
    table = rf_table(model, (1, 28, 28))
    assert [r.rf for r in table] == [3, 5, 6, 10]
    assert [r.jump for r in table] == [1, 1, 2, 2]
    assert [r.layer for r in table] == ["Conv2d-1", "Conv2d-2", "MaxPool2d-3", "Conv2d-4"]
    assert table[0].output_shape == (-1, 4, 26, 26)
    assert (table[2].kernel, table[2].stride, table[2].padding, table[2].dilation) == (2, 2, 0, 1)
    assert isinstance(table, RFTable) and table.final_rf == 10 and table.final_jump == 2


def test_hand_computed_special_layers():
    assert rf_table(nn.Sequential(conv(1, 1, dilation=2)), (1, 9, 9)).final_rf == 5
    assert rf_table(nn.Sequential(conv(1, 1, dilation=3)), (1, 9, 9)).final_rf == 7
    strided = rf_table(nn.Sequential(conv(1, 1, stride=2), conv(1, 1)), (1, 15, 15))
    assert [(r.rf, r.jump) for r in strided] == [(3, 2), (7, 2)]
    # Global average pooling covers the whole input: rf_in + (size - 1) * jump_in.
    gap = rf_table(nn.Sequential(conv(1, 1, padding=1), nn.MaxPool2d(2),
                                 nn.AdaptiveAvgPool2d(1)), (1, 16, 16))
    assert gap[1].rf == 4 and gap[1].output_shape == (-1, 1, 8, 8)
    assert gap.final_rf == 4 + 7 * 2
    course = rf_table(CourseNet(), (1, 28, 28))
    convs = [r.rf for r in course if r.type == "Conv2d"]
    assert convs == [3, 5, 5, 10, 14, 18, 32]  # the 1x1 transition keeps rf 5
    assert [(r.rf, r.jump) for r in course if r.type == "MaxPool2d"] == [(6, 2)]
    assert course.final_rf == 32
    assert rf_table(OffsetBranches(), (1, 12, 12)).final_rf == 4


def test_row_order_follows_forward_not_declaration():
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.c3 = conv(8, 8)
            self.pool = nn.MaxPool2d(2)
            self.c2 = conv(4, 8)
            self.c1 = conv(1, 4)

        def forward(self, x):
            return self.c3(self.pool(self.c2(self.c1(x))))

    table = rf_table(Reversed(), (1, 16, 16))
    assert [r.module for r in table] == ["c1", "c2", "pool", "c3"]
    assert [r.layer for r in table] == ["Conv2d-1", "Conv2d-2", "MaxPool2d-3", "Conv2d-4"]
    assert [r.rf for r in table] == [3, 5, 6, 10]


def test_common_layers_are_accepted():
    model = nn.Sequential(
        conv(1, 4), nn.BatchNorm2d(4), nn.ReLU6(), nn.Dropout2d(0.1), conv(4, 4),
        nn.GroupNorm(2, 4), nn.GELU(), nn.SiLU(), nn.LeakyReLU(), nn.ELU(), nn.Tanh(),
        nn.AvgPool2d(2), nn.AdaptiveMaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.1), nn.Linear(4, 8), nn.LayerNorm(8), nn.BatchNorm1d(8),
        nn.Sigmoid(), nn.Identity(), nn.Linear(8, 3), nn.Softmax(dim=1))
    table = rf_table(model, (1, 16, 16))
    assert len(table) == len(model)
    assert [r.module for r in table] == [str(i) for i in range(len(model))]
    # 3, 5, avgpool 6 (jump 2), adaptive 6 -> 2: 10 (jump 6), adaptive 2 -> 1: 16
    assert [r.rf for r in table if "Pool" in r.type] == [6, 10, 16]
    assert table.final_rf == 16
    assert measure_rf_region(model, (1, 16, 16)).height == 16


def test_shared_module_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv(1, 4)
            self.shared = conv(4, 4, padding=1)

        def forward(self, x):
            return self.shared(self.shared(self.stem(x)))

    model = Twice()
    table = rf_table(model, (1, 12, 12))
    assert [r.module for r in table] == ["stem", "shared", "shared"]
    assert [r.rf for r in table] == [3, 5, 7]
    assert [r.params for r in table] == [40, 148, 0]
    assert [r.repeat for r in table] == [False, False, True]
    assert table.total_params == sum(p.numel() for p in model.parameters()) == 188


@pytest.mark.parametrize("layer, name", [
    (nn.Upsample(scale_factor=2), "Upsample"),
    (nn.ConvTranspose2d(4, 4, 3), "ConvTranspose2d"),
])
def test_unsupported_layer_names_the_module(layer, name):
    model = nn.Sequential()
    model.add_module("stem", conv(1, 4))
    model.add_module("up", layer)
    with pytest.raises(UnsupportedLayerError, match=rf"module 'up', {name}\)"):
        rf_table(model, (1, 12, 12))
    assert issubclass(UnsupportedLayerError, ValueError)


def test_functional_and_unknown_spatial_ops_raise():
    class FunctionalPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = conv(1, 2)

        def forward(self, x):
            return F.max_pool2d(self.c(x), 2)

    with pytest.raises(UnsupportedLayerError, match="max_pool2d"):
        rf_table(FunctionalPool(), (1, 12, 12))

    class MyStridedConv(nn.Module):  # custom leaf with parameters
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(2, 1, 3, 3))

        def forward(self, x):
            return F.conv2d(x, self.weight, stride=2)

    model = nn.Sequential()
    model.add_module("custom", MyStridedConv())
    with pytest.raises(UnsupportedLayerError, match=r"module 'custom', MyStridedConv\)"):
        rf_table(model, (1, 9, 9))

    with pytest.raises(UnsupportedLayerError, match="5 units onto 3"):  # 5 -> 3 windows
        rf_table(nn.Sequential(conv(1, 1), nn.AdaptiveAvgPool2d(3)), (1, 7, 7))

    class MixedJumps(nn.Module):  # same shapes, different spacing of units
        def __init__(self):
            super().__init__()
            self.a = conv(1, 1, 1, stride=2)
            self.b = conv(1, 1, 5)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(UnsupportedLayerError, match="jumps"):
        rf_table(MixedJumps(), (1, 8, 8))


def test_bad_input_names_the_layer():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(conv(1, 4), nn.ReLU(), conv(4, 4), conv(4, 4))

        def forward(self, x):
            return self.features(x)

    with pytest.raises(ValueError, match=r"Conv2d-1 \(module 'features\.0'"):
        rf_table(Net(), (3, 28, 28))
    with pytest.raises(ValueError, match=r"Conv2d-4 \(module 'features\.3'"):
        rf_table(Net(), (1, 5, 5))  # 5 -> 3 -> 3 -> 1: the last 3x3 has no room
    with pytest.raises(ValueError, match="channels, height, width"):
        rf_table(Net(), (28, 28))


def test_rf_table_leaves_no_trace():
    model = CourseNet().train()
    rng = torch.get_rng_state()
    rf_table(model, (1, 28, 28))
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert torch.equal(rng, torch.get_rng_state())
    model.eval()
    rf_table(model, (1, 28, 28))
    assert not any(m.training for m in model.modules())


def test_measure_rf_does_not_touch_the_model():
    model = CourseNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measure_rf(model, (1, 28, 28))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(isinstance(m, nn.MaxPool2d) for m in [model.trans[1]])


def test_published_receptive_fields():
    """Values from Araujo et al., "Computing Receptive Fields of Convolutional
    Neural Networks" (Distill, 2019) and the usual ResNet-18 figure."""
    tv = pytest.importorskip("torchvision")
    vgg16 = tv.models.vgg.make_layers(tv.models.vgg.cfgs["D"])  # conv part only
    table = rf_table(vgg16, (3, 32, 32))
    assert (table[-3].type, table[-3].rf) == ("Conv2d", 196)  # conv5_3
    assert table.final_rf == 212                              # pool5
    assert rf_table(tv.models.alexnet().features, (3, 64, 64)).final_rf == 195
    resnet = rf_table(tv.models.resnet18(), (3, 64, 64))
    assert [r.rf for r in resnet if r.module == "layer4.1.relu"][-1] == 435
