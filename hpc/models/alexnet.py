"""The study's small AlexNet (32/64/128 px MRI slices) and the ImageNet AlexNet.

Small variant, layer by layer as the study defined it::

    conv in->64 (k3, s2, p1), maxpool 2, ReLU
    conv 64->192 (k3, p1),    maxpool 2, ReLU
    conv 192->384, 384->256, 256->256 (k3, p1, ReLU each)
    maxpool 2, ReLU
    Dropout 0.5, Linear(256*s*s, 4096), ReLU, Dropout 0.5, Linear(4096, 4096), ReLU,
    Linear(4096, classes)

The flatten size ``256*s*s`` is derived from the input size by the same arithmetic the
layers perform (s = 2 for 32 px, 4 for 64 px, 8 for 128 px), so changing the input size can
never leave a stale hard-coded constant. ``width`` and ``hidden`` exist only so tests can
train a tiny network in seconds; the defaults are the study's network.

ImageNet variant, two layouts:

* ``classic``: Krizhevsky et al. 2012 for 227x227 input (96-256-384-384-256 channels,
  LRN after conv1/conv2, no grouped convolutions), flatten size derived from the input.
* ``torchvision``: the layout of ``torchvision.models.alexnet`` (64-192-384-256-256,
  adaptive average pool to 6x6) for 224x224 input; the layout the NetAdapt study counted.

Both accept ``channels`` (5 conv widths, 2 hidden widths, classes) for pruned variants.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

ALEXNET_SMALL_INPUT_SIZES: tuple[int, ...] = (32, 64, 128)
ARCHS: tuple[str, ...] = ("alexnet-small", "alexnet-imagenet")
IMAGENET_LAYOUTS: tuple[str, ...] = ("classic", "torchvision")

_SMALL_CHANNELS = (64, 192, 384, 256, 256)
_CLASSIC_CHANNELS = (96, 256, 384, 384, 256, 4096, 4096)
_TORCHVISION_CHANNELS = (64, 192, 384, 256, 256, 4096, 4096)


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution/pooling window (floor mode, PyTorch semantics)."""
    return (size + 2 * padding - kernel) // stride + 1


def small_feature_size(input_size: int) -> int:
    """Spatial size after the small AlexNet's feature extractor (2 for 32 px input).

    Follows the layers: conv k3 s2 p1, pool 2, conv k3 p1, pool 2, 3x conv k3 p1, pool 2.
    """
    s = _conv_out(input_size, 3, 2, 1)
    s = _conv_out(s, 2, 2)
    s = _conv_out(s, 2, 2)
    s = _conv_out(s, 2, 2)
    return s


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) for convolutions, Xavier-uniform for linear layers,
    zero biases: the study's initialisation, which keeps activations in range through the
    ReLU stack from the first step."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def classifier_head(in_features: int, hidden1: int, hidden2: int, num_classes: int,
                    dropout: float) -> nn.Sequential:
    """AlexNet's classifier (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear), shared by
    both variants so their layer indices (and checkpoint keys) stay the same."""
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, hidden1),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden1, hidden2),
        nn.ReLU(inplace=True),
        nn.Linear(hidden2, num_classes),
    )


class AlexNetSmall(nn.Module):
    """The study's AlexNet for 32/64/128 px single- (or multi-) channel slices."""

    def __init__(self, num_classes: int = 3, in_channels: int = 1, input_size: int = 32,
                 width: float = 1.0, hidden: int = 4096, dropout: float = 0.5) -> None:
        super().__init__()
        if input_size not in ALEXNET_SMALL_INPUT_SIZES:
            raise ValueError(f"input_size={input_size}: the small AlexNet supports "
                             f"{ALEXNET_SMALL_INPUT_SIZES}")
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes}: need at least 2 classes")
        if in_channels < 1:
            raise ValueError(f"in_channels={in_channels}: must be >= 1")
        if width <= 0:
            raise ValueError(f"width={width}: must be > 0")
        if hidden < 1:
            raise ValueError(f"hidden={hidden}: must be >= 1")
        c1, c2, c3, c4, c5 = (max(1, round(c * width)) for c in _SMALL_CHANNELS)
        self.num_classes, self.in_channels, self.input_size = num_classes, in_channels, input_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=3, stride=2, padding=1),
            nn.MaxPool2d(kernel_size=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2),
            nn.ReLU(inplace=True),
        )
        s = small_feature_size(input_size)
        self.flatten_size = c5 * s * s
        self.classifier = classifier_head(self.flatten_size, hidden, hidden, num_classes, dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class AlexNetImageNet(nn.Module):
    """ImageNet AlexNet, ``classic`` (227 px, Krizhevsky) or ``torchvision`` (224 px) layout.

    ``channels``: 8 numbers, the 5 conv widths, the 2 hidden widths and the class count
    (the class count may also be given alone via ``num_classes``).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, input_size: int | None = None,
                 layout: str = "classic", channels: Sequence[int] | None = None,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if layout not in IMAGENET_LAYOUTS:
            raise ValueError(f"layout={layout!r}: expected one of {IMAGENET_LAYOUTS}")
        default = _CLASSIC_CHANNELS if layout == "classic" else _TORCHVISION_CHANNELS
        if channels is None:
            widths = list(default) + [num_classes]
        else:
            widths = [int(c) for c in channels]
            if len(widths) != 8:
                raise ValueError(f"channels={list(channels)}: expected 8 numbers "
                                 "(5 conv widths, 2 hidden widths, classes)")
            if any(c < 1 for c in widths):
                raise ValueError(f"channels={widths}: every width must be >= 1")
        c1, c2, c3, c4, c5, h1, h2, k = widths
        self.num_classes, self.in_channels, self.layout = k, in_channels, layout
        if input_size is None:
            input_size = 227 if layout == "classic" else 224
        self.input_size = input_size
        if layout == "classic":
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, c1, kernel_size=11, stride=4),
                nn.ReLU(inplace=True),
                nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(c1, c2, kernel_size=5, padding=2),
                nn.ReLU(inplace=True),
                nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(c2, c3, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c3, c4, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c4, c5, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )
            s = _conv_out(input_size, 11, 4)
            s = _conv_out(s, 3, 2)
            s = _conv_out(s, 3, 2)
            s = _conv_out(s, 3, 2)
            if s < 1:
                raise ValueError(f"input_size={input_size}: too small for the classic AlexNet")
            self.avgpool: nn.Module = nn.Identity()
        else:
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(c1, c2, kernel_size=5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(c2, c3, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c3, c4, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c4, c5, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )
            s = 6
            if _conv_out(_conv_out(_conv_out(_conv_out(input_size, 11, 4, 2), 3, 2), 3, 2), 3, 2) < 1:
                raise ValueError(f"input_size={input_size}: too small for the torchvision AlexNet")
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.flatten_size = c5 * s * s
        self.classifier = classifier_head(self.flatten_size, h1, h2, k, dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def build_model(arch: str, num_classes: int, in_channels: int | None = None, input_size: int = 32,
                width: float = 1.0, hidden: int = 4096, layout: str | None = None,
                channels: Sequence[int] | None = None) -> nn.Module:
    """Build a network by name; ``layout`` for alexnet-imagenet defaults to ``classic``
    for 227 px input and ``torchvision`` otherwise. ``in_channels`` defaults to 1 for the
    small network (MRI slices) and 3 for the ImageNet one (RGB)."""
    if arch == "alexnet-small":
        if channels is not None:
            raise ValueError("channels: only supported for alexnet-imagenet (use width for alexnet-small)")
        return AlexNetSmall(num_classes=num_classes, in_channels=in_channels or 1, input_size=input_size,
                            width=width, hidden=hidden)
    if arch == "alexnet-imagenet":
        if layout is None:
            layout = "classic" if input_size == 227 else "torchvision"
        return AlexNetImageNet(num_classes=num_classes, in_channels=in_channels or 3,
                               input_size=input_size, layout=layout, channels=channels)
    raise ValueError(f"arch={arch!r}: expected one of {ARCHS}")
