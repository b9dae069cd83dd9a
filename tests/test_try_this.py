"""What each notebook's "Try this" tells a student to expect from a change to the model, built and checked.

Each exercise that predicts a structural number (a parameter count, a receptive field, an output
shape) is built here from the package's classes, the way the exercise tells the student to edit
the notebook's copy, so a change of the models that makes the text wrong fails a test.
"""
import pytest
import torch
import torch.nn as nn

from eva_utils import engine, models
from eva_utils.rf import rf_table


def rows(model, input_size=(1, 28, 28)):
    """``{module name: (receptive field, output height and width)}`` along the real forward pass."""
    return {r.module: (r.rf, tuple(r.output_shape)[-2:]) for r in rf_table(model, input_size)}


def test_01_try_1_the_pool_after_conv3_leaves_a_2x2_map_under_the_6x6_head():
    class PoolLater(models.Skeleton):
        def forward(self, x):
            x = self.trans1(self.conv2(self.conv1(x)))
            x = self.pool1(self.conv3(x))
            x = self.conv5(self.conv4(x))
            return torch.log_softmax(self.head2(self.head1(x)).flatten(1), dim=1)

    model = PoolLater()
    assert engine.count_parameters(model) == engine.count_parameters(models.Skeleton()) == 41_972
    table = rows(model)
    assert table["pool1"] == (8, (11, 11)) and rows(models.Skeleton())["pool1"][0] == 6
    assert table["conv5.0"][1] == (7, 7) and table["head2"][1] == (2, 2)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 40)
    with pytest.raises(ValueError, match=r"shape \(2, 40\)"):  # training refuses it before the first batch
        models.check_output(model)
    model.head2 = nn.Conv2d(10, 10, 7)  # the fix: a head that covers the 7x7 map
    assert engine.count_parameters(model) == 43_272 and rows(model)["head2"] == (28, (1, 1))
    models.check_output(model)


def test_01_try_3_halving_every_width_leaves_a_third_of_the_parameters_not_02s_model():
    class Halved(models.Skeleton):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = models.conv_block(1, 8), models.conv_block(8, 16)
            self.trans1 = models.conv_block(16, 8, kernel=1)
            self.conv3, self.conv4 = models.conv_block(8, 16), models.conv_block(16, 16)
            self.conv5, self.head1 = models.conv_block(16, 32), models.conv_block(32, 10, kernel=1)

    halved = engine.count_parameters(Halved())
    assert halved == 13_452 and round(41_972 / halved) == 3
    assert halved != engine.count_parameters(models.Lighter()) and engine.count_parameters(models.Lighter()) < 10_000


def test_02_try_1_widening_conv5_to_16_channels_adds_620_parameters_and_crosses_the_budget():
    wider = models.Lighter()
    wider.conv5, wider.head1 = models.conv_block(16, 16), models.conv_block(16, 10, kernel=1)
    assert engine.count_parameters(models.Lighter()) == 9_484
    assert engine.count_parameters(wider) == 10_104
    plain = models.Lighter()
    assert engine.count_parameters(wider.conv5) - engine.count_parameters(plain.conv5) == 580
    assert engine.count_parameters(wider.head1) - engine.count_parameters(plain.head1) == 40
    assert rows(wider)["head2"] == (28, (1, 1))


def test_03_try_1_and_3_batchnorm_costs_two_parameters_per_channel():
    net = models.BatchNormNet()
    assert engine.count_parameters(net) == 9_566
    bn = sum(engine.count_parameters(m) for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn == 164 and bn / 9_566 < 0.02  # Try #3: under 2% of the total
    net.conv1, net.conv2 = models.conv_block(1, 8), models.conv_block(8, 16)  # Try #1: bn=False
    assert engine.count_parameters(net) == 9_566 - 24  # 48 BatchNorm parameters go, 24 biases come back


def test_04_try_3_a_learned_4x4_head_in_place_of_gap_costs_2700_parameters():
    learned = models.Regularized()
    assert engine.count_parameters(learned) == 7_972
    learned.gap, learned.head = nn.Identity(), nn.Conv2d(18, 10, 4, bias=False)
    assert engine.count_parameters(learned) == 10_672 == 7_972 + 2_700
    table = rows(learned)
    assert table["conv6.0"][1] == (4, 4) and table["head"] == (28, (1, 1))
    models.check_output(learned)


def test_08_try_2_padding_only_conv1_shrinks_block_2_to_a_7x7_map():
    from eva_utils.convs import total_macs

    adapted, variant = models.FashionNet(), models.FashionNet()
    variant.conv2 = models.conv_block(8, 16, padding=0, bn=True)  # padding=0 in conv2
    assert engine.count_parameters(variant) == engine.count_parameters(adapted) == 7_756
    before, after = rows(adapted), rows(variant)
    assert [before[f"conv{i}.0"][1][0] for i in (3, 4, 5)] == [12, 10, 8] and before["trans1.0"][1] == (14, 14)
    assert [after[f"conv{i}.0"][1][0] for i in (3, 4, 5)] == [11, 9, 7] and after["trans1.0"][1] == (13, 13)
    assert before["head"][0] == 32 and after["head"][0] == 30
    macs = [round(total_macs(m, (1, 28, 28)) / 1e6, 2) for m in (variant, adapted, models.Regularized(dropout=0))]
    assert macs == [1.34, 1.58, 0.83]


def test_09_try_1_and_2_one_dilation_undone_and_one_plain_3x3_in_c3():
    from eva_utils.convs import rf_before_gap, total_macs, without_dilation

    model = models.AdvancedConvNet()
    params, macs = engine.count_parameters(model), total_macs(model)
    assert (params, macs, rf_before_gap(model)) == (140_570, 11_917_184, 69)
    assert rf_before_gap(without_dilation(model)) == 57  # the RF table's column: both dilations undone
    one = models.AdvancedConvNet()
    one.c2[1] = models.conv_bn(48, 48)  # Try #1: only c2's dilation back to 1
    assert (engine.count_parameters(one), total_macs(one), rf_before_gap(one)) == (params, macs, 65)
    plain = models.AdvancedConvNet()
    assert engine.count_parameters(plain.c3[0]) == 17_792
    plain.c3[0] = models.conv_bn(128, 128)  # Try #2: a plain 3x3 for C3's first separable conv
    assert engine.count_parameters(plain.c3[0]) == 147_712
    assert engine.count_parameters(plain) == 270_490 == params + 129_920 and 270_490 > 200_000
    assert round(total_macs(plain) / 1e6, 1) == 20.2 and rf_before_gap(plain) == 69
