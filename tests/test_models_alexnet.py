"""The study's small AlexNet and the ImageNet AlexNet: shapes, derived flatten size, init."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hpc.models.alexnet import AlexNetImageNet, AlexNetSmall, build_model, small_feature_size


@pytest.mark.parametrize("size,spatial", [(32, 2), (64, 4), (128, 8)])
def test_flatten_size_is_derived_from_input_size(size: int, spatial: int) -> None:
    model = AlexNetSmall(num_classes=3, input_size=size, hidden=64)  # small classifier: fast init
    assert small_feature_size(size) == spatial
    assert model.flatten_size == 256 * spatial * spatial
    assert model.classifier[1].in_features == 256 * spatial * spatial
    feats = model.features(torch.zeros(2, 1, size, size))
    assert feats.shape == (2, 256, spatial, spatial)
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 3)


def test_small_alexnet_layers_match_the_study() -> None:
    m = AlexNetSmall(num_classes=3)
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 64, (3, 3), (2, 2), (1, 1)), (64, 192, (3, 3), (1, 1), (1, 1)),
        (192, 384, (3, 3), (1, 1), (1, 1)), (384, 256, (3, 3), (1, 1), (1, 1)),
        (256, 256, (3, 3), (1, 1), (1, 1))]
    kinds = [type(l).__name__ for l in m.features]
    assert kinds == ["Conv2d", "MaxPool2d", "ReLU", "Conv2d", "MaxPool2d", "ReLU", "Conv2d", "ReLU",
                     "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "ReLU"]
    lin = [l for l in m.classifier if isinstance(l, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [(1024, 4096), (4096, 4096), (4096, 3)]
    drops = [l.p for l in m.classifier if isinstance(l, nn.Dropout)]
    assert drops == [0.5, 0.5]
    assert sum(p.numel() for p in m.parameters()) == 23_242_435


def test_in_channels_configurable() -> None:
    m = AlexNetSmall(num_classes=4, in_channels=3, input_size=64)
    assert m.features[0].in_channels == 3
    assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


def test_init_kaiming_conv_xavier_linear_zero_bias() -> None:
    torch.manual_seed(0)
    m = AlexNetSmall(num_classes=3)
    for layer in m.modules():
        if isinstance(layer, nn.Conv2d):
            fan_out = layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1]
            expected = math.sqrt(2.0 / fan_out)  # kaiming normal, fan_out, relu gain
            assert layer.weight.std().item() == pytest.approx(expected, rel=0.1)
            assert layer.weight.mean().abs().item() < 0.2 * expected
            assert torch.count_nonzero(layer.bias) == 0
        elif isinstance(layer, nn.Linear):
            bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))  # xavier uniform
            assert layer.weight.abs().max().item() <= bound
            assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
            assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("bad", [{"input_size": 48}, {"num_classes": 1}, {"in_channels": 0},
                                 {"width": 0}])
def test_small_alexnet_rejects_bad_arguments(bad: dict) -> None:
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        AlexNetSmall(**bad)


def test_imagenet_layouts() -> None:
    # default widths except a narrow classifier (keeps the test fast; layout is what matters)
    classic = AlexNetImageNet(layout="classic", channels=[96, 256, 384, 384, 256, 64, 64, 1000])
    assert classic.input_size == 227 and classic.flatten_size == 256 * 6 * 6
    assert classic.features[0].out_channels == 96 and classic.features[0].stride == (4, 4)
    tv = build_model("alexnet-imagenet", num_classes=10, input_size=224,
                     channels=[64, 192, 384, 256, 256, 64, 64, 10])
    assert tv.layout == "torchvision" and tv.features[0].padding == (2, 2)
    with torch.no_grad():
        assert classic(torch.zeros(1, 3, 227, 227)).shape == (1, 1000)
        assert tv(torch.zeros(1, 3, 224, 224)).shape == (1, 10)
    with pytest.raises(ValueError, match="channels"):
        AlexNetImageNet(channels=[1, 2, 3])
