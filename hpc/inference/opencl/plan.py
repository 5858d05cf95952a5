"""A torch network as a flat list of engine layers (weights copied out as NumPy arrays).

Supported: an ``nn.Sequential``, or a module with ``features``, optional ``avgpool`` and
``classifier`` children run in that order with a flatten before any Linear (SqueezeNet v1.1,
the suite's AlexNet variants, torchvision's AlexNet). Leaves: Conv2d (groups 1, dilation
1, zero padding), ReLU (fused into the layer before it), MaxPool2d, AvgPool2d
(count_include_pad), AdaptiveAvgPool2d (to 1x1, identity, or an even division), Linear, LocalResponseNorm,
Dropout/Identity/Flatten (no-ops at inference), and fire modules (children ``squeeze``,
``expand1x1``, ``expand3x3``). Anything else is an :class:`UnsupportedLayerError` naming
the module path and type.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
from torch import nn


class UnsupportedLayerError(ValueError):
    """The network holds a layer the OpenCL engine has no kernel for."""


@dataclass
class Conv:
    name: str
    weight: np.ndarray          # (cout, cin, kh, kw)
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    relu: bool = False


@dataclass
class Fire:
    name: str
    squeeze: Conv
    expand1x1: Conv
    expand3x3: Conv
    relu: bool = True           # the expands' ReLUs are part of the module


@dataclass
class Pool:
    name: str
    op: str                     # maxpool2d | avgpool2d
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool
    relu: bool = False


@dataclass
class AdaptiveAvg:
    name: str
    output: tuple[int | None, int | None]
    relu: bool = False


@dataclass
class Linear:
    name: str
    weight: np.ndarray          # (out, in)
    bias: np.ndarray | None
    relu: bool = False


@dataclass
class LRN:
    name: str
    size: int
    alpha: float
    beta: float
    k: float
    relu: bool = False


Layer = Union[Conv, Fire, Pool, AdaptiveAvg, Linear, LRN]


@dataclass
class Network:
    layers: list[Layer] = field(default_factory=list)
    flatten_output: bool = True


def _pair(v: object) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)  # type: ignore[call-overload]


def _array(t: object) -> np.ndarray | None:
    if t is None:
        return None
    return np.ascontiguousarray(t.detach().cpu().float().numpy())  # type: ignore[attr-defined]


def _conv(name: str, m: nn.Conv2d) -> Conv:
    if m.groups != 1:
        raise UnsupportedLayerError(f"{name}: Conv2d with groups={m.groups} (only groups=1)")
    if _pair(m.dilation) != (1, 1):
        raise UnsupportedLayerError(f"{name}: Conv2d with dilation={m.dilation} (only 1)")
    if isinstance(m.padding, str) or m.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{name}: Conv2d padding={m.padding!r} mode={m.padding_mode!r} "
                                    "(only explicit zero padding)")
    return Conv(name, _array(m.weight), _array(m.bias), _pair(m.stride), _pair(m.padding))  # type: ignore[arg-type]


def _is_fire(m: nn.Module) -> bool:
    return all(isinstance(getattr(m, a, None), nn.Conv2d) for a in ("squeeze", "expand1x1", "expand3x3"))


def _children(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], bool]:
    if isinstance(model, nn.Sequential):
        return list(model.named_children()), False
    parts = [a for a in ("features", "avgpool", "classifier") if isinstance(getattr(model, a, None), nn.Module)]
    if "features" not in parts:
        raise UnsupportedLayerError(f"{type(model).__name__}: expected an nn.Sequential or a module "
                                    "with features/avgpool/classifier children")
    out: list[tuple[str, nn.Module]] = []
    for a in parts:
        sub = getattr(model, a)
        if isinstance(sub, nn.Sequential):
            out += [(f"{a}.{n}", m) for n, m in sub.named_children()]
        else:
            out.append((a, sub))
    return out, True


def network_of(model: nn.Module) -> Network:
    """The engine's layer list for ``model`` (read in eval semantics: dropout is a no-op)."""
    children, flatten = _children(model)
    net = Network(flatten_output=flatten)
    for name, m in children:
        last = net.layers[-1] if net.layers else None
        if isinstance(m, nn.ReLU):
            if last is None:
                raise UnsupportedLayerError(f"{name}: a ReLU on the network input")
            last.relu = True
        elif isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten)):
            continue
        elif isinstance(m, nn.Conv2d):
            net.layers.append(_conv(name, m))
        elif _is_fire(m):
            net.layers.append(Fire(name, _conv(f"{name}.squeeze", m.squeeze), _conv(f"{name}.expand1x1", m.expand1x1),
                                   _conv(f"{name}.expand3x3", m.expand3x3)))
        elif isinstance(m, nn.MaxPool2d):
            if _pair(m.dilation) != (1, 1) or m.return_indices:
                raise UnsupportedLayerError(f"{name}: MaxPool2d with dilation/return_indices")
            net.layers.append(Pool(name, "maxpool2d", _pair(m.kernel_size), _pair(m.stride or m.kernel_size),
                                   _pair(m.padding), bool(m.ceil_mode)))
        elif isinstance(m, nn.AvgPool2d):
            if not m.count_include_pad or m.divisor_override is not None:
                raise UnsupportedLayerError(f"{name}: AvgPool2d with count_include_pad=False or a divisor "
                                            "override")
            net.layers.append(Pool(name, "avgpool2d", _pair(m.kernel_size), _pair(m.stride or m.kernel_size),
                                   _pair(m.padding), bool(m.ceil_mode)))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            o = m.output_size
            net.layers.append(AdaptiveAvg(name, (o, o) if not isinstance(o, (tuple, list)) else (o[0], o[1])))
        elif isinstance(m, nn.LocalResponseNorm):
            net.layers.append(LRN(name, int(m.size), float(m.alpha), float(m.beta), float(m.k)))
        elif isinstance(m, nn.Linear):
            net.layers.append(Linear(name, _array(m.weight), _array(m.bias)))  # type: ignore[arg-type]
        else:
            raise UnsupportedLayerError(f"{name}: {type(m).__name__} has no OpenCL kernel in this engine")
    if not net.layers:
        raise UnsupportedLayerError(f"{type(model).__name__}: no layers to run")
    return net
