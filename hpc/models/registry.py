"""One place that builds every network of the suite by name.

Why a registry: the compression stage (and anything else that stores a model as "build
arguments + weights") must rebuild AlexNets and SqueezeNet from the same argument dict,
and a misspelt name or an option meant for another network (``width`` for SqueezeNet)
must fail with a message that says so, not with a ``TypeError`` deep inside a constructor.

Architectures (``ARCHS``) and the options each takes beyond ``num_classes``,
``in_channels`` and ``input_size`` (``ARCH_OPTIONS``):

* ``alexnet-small``    - the study's MRI AlexNet (:func:`hpc.models.alexnet.build_model`):
  ``width``, ``hidden``;
* ``alexnet-imagenet`` - the ImageNet AlexNet: ``layout``, ``channels``;
* ``squeezenet1_1``    - SqueezeNet v1.1 in torchvision's layout
  (:class:`hpc.models.squeezenet.SqueezeNet11`): ``dropout``. Its pooling is ceil-mode,
  so any input of at least :data:`SQUEEZENET_MIN_INPUT` pixels works; at 32 px (the MRI
  slices) the feature maps are 15 -> 7 -> 3 -> 1, i.e. the last four fire modules see a
  1x1 map and their 3x3 expand convolutions use only the centre tap
  (:func:`squeezenet_feature_sizes`).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from hpc.models import alexnet
from hpc.models.squeezenet import SqueezeNet11

ARCHS: tuple[str, ...] = ("alexnet-small", "alexnet-imagenet", "squeezenet1_1")
ARCH_OPTIONS: dict[str, tuple[str, ...]] = {
    "alexnet-small": ("width", "hidden"),
    "alexnet-imagenet": ("layout", "channels"),
    "squeezenet1_1": ("dropout",),
}
DEFAULT_IN_CHANNELS: dict[str, int] = {"alexnet-small": 1, "alexnet-imagenet": 3, "squeezenet1_1": 3}


class ModelSpecError(ValueError):
    """An unknown architecture, an option it does not take, or an input size it cannot process."""


def _ceil_pool(size: int) -> int:
    """Output length of SqueezeNet's MaxPool2d(3, stride 2, ceil_mode=True), PyTorch's rule
    (ceil mode may let the last window hang over the edge, but it must start inside)."""
    out = (size - 3 + 1) // 2 + 1
    if (out - 1) * 2 >= size:
        out -= 1
    return out


def _squeezenet_sizes(input_size: int) -> list[int]:
    sizes = [(input_size - 3) // 2 + 1]
    for _ in range(3):
        sizes.append(_ceil_pool(sizes[-1]) if sizes[-1] >= 1 else 0)
    return sizes


SQUEEZENET_MIN_INPUT: int = next(s for s in range(3, 1000) if min(_squeezenet_sizes(s)) >= 1)


def squeezenet_feature_sizes(input_size: int) -> tuple[int, int, int, int]:
    """Spatial sizes after conv1 (3x3, stride 2) and each of SqueezeNet v1.1's three pools.

    At 224 px: (111, 55, 27, 13); at 32 px: (15, 7, 3, 1). Raises below
    :data:`SQUEEZENET_MIN_INPUT` (17) px, where a pool would produce an empty map (PyTorch
    would fail mid-forward with "Output size is too small").
    """
    sizes = _squeezenet_sizes(input_size)
    if min(sizes) < 1:
        raise ModelSpecError(f"input_size={input_size}: too small for squeezenet1_1 "
                               f"(needs >= {SQUEEZENET_MIN_INPUT} px; feature maps would be {sizes})")
    return sizes[0], sizes[1], sizes[2], sizes[3]


def check_options(arch: str, options: dict[str, Any]) -> None:
    """Raise :class:`ModelSpecError` for an unknown ``arch`` or an option it does not take."""
    if arch not in ARCH_OPTIONS:
        raise ModelSpecError(f"arch={arch!r}: unknown architecture; expected one of {ARCHS}")
    extra = sorted(set(options) - set(ARCH_OPTIONS[arch]))
    if extra:
        takes = ", ".join(ARCH_OPTIONS[arch]) or "none"
        raise ModelSpecError(f"arch={arch!r}: option(s) {', '.join(extra)} not taken by this architecture "
                               f"(its options: {takes})")


def build_model(arch: str, num_classes: int, in_channels: int | None = None, input_size: int = 32,
                **arch_options: Any) -> nn.Module:
    """Build ``arch`` for ``num_classes`` classes and ``in_channels`` x ``input_size``^2 input.

    ``in_channels`` defaults to 1 for the MRI AlexNet and 3 for the ImageNet networks.
    ``arch_options``: see ``ARCH_OPTIONS``; anything else is an :class:`ModelSpecError`.
    """
    check_options(arch, arch_options)
    channels = in_channels if in_channels is not None else DEFAULT_IN_CHANNELS[arch]
    if arch == "squeezenet1_1":
        squeezenet_feature_sizes(input_size)
        return SqueezeNet11(num_classes=num_classes, in_channels=channels, **arch_options)
    return alexnet.build_model(arch, num_classes=num_classes, in_channels=channels, input_size=input_size,
                               **arch_options)
