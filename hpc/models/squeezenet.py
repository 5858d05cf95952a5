"""SqueezeNet v1.1 with torchvision's module layout and state-dict keys.

Written here (torchvision is not a dependency) so that a ``squeezenet1_1`` weights file from
torchvision loads with ``load_state_dict`` unchanged: ``features.0`` (conv1),
``features.{3,4,6,7,9,10,11,12}.{squeeze,expand1x1,expand3x3}`` (the eight fire modules),
``classifier.1`` (the 1x1 classifier convolution). Max pooling uses ``ceil_mode=True`` as
torchvision does; at 224x224 input this gives the same 55/27/13 sizes as the FPGA study's
floor-mode pooling, at other sizes it follows torchvision.

At 224x224 and 1000 classes: 1,235,496 parameters and 349,151,936 multiply-accumulates
(convolutions only, bias not counted), the figures the FPGA study's layer table implies.
"""
from __future__ import annotations

import torch
from torch import nn

# (in_channels, squeeze, expand1x1, expand3x3) of the fire modules at features.3 ... features.12
FIRE_CONFIG: dict[int, tuple[int, int, int, int]] = {
    3: (64, 16, 64, 64), 4: (128, 16, 64, 64),
    6: (128, 32, 128, 128), 7: (256, 32, 128, 128),
    9: (256, 48, 192, 192), 10: (384, 48, 192, 192),
    11: (384, 64, 256, 256), 12: (512, 64, 256, 256),
}


class Fire(nn.Module):
    """Squeeze 1x1 -> ReLU -> (expand 1x1 | expand 3x3, pad 1) -> ReLU -> channel concat."""

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet11(nn.Module):
    """SqueezeNet v1.1 (Iandola et al. 2016, torchvision's ``squeezenet1_1`` layout)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes}: must be >= 1")
        if in_channels < 1:
            raise ValueError(f"in_channels={in_channels}: must be >= 1")
        self.num_classes, self.in_channels = num_classes, in_channels
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        ]
        for index in range(3, 13):
            if index in FIRE_CONFIG:
                layers.append(Fire(*FIRE_CONFIG[index]))
            else:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():   # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.classifier(self.features(x))
        return torch.flatten(x, 1)


def squeezenet1_1(num_classes: int = 1000, in_channels: int = 3) -> SqueezeNet11:
    """torchvision-style constructor name."""
    return SqueezeNet11(num_classes=num_classes, in_channels=in_channels)
