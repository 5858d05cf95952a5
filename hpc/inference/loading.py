"""Networks from weights files for ``hpc infer``: which model, built to fit the weights.

A weights file is a torch state dict (``torch.save(model.state_dict(), path)``; torchvision's
``squeezenet1_1`` file loads as is) or an ``hpc train`` checkpoint (its ``model`` entry).
Hyper-parameters that only change widths (classes, input channels, the small AlexNet's width
and hidden size, the ImageNet AlexNet's channel list and layout) are read from the weight
shapes, so the file alone defines the network; every other key and shape must then match
the model exactly, and a mismatch names the keys.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

MODELS: tuple[str, ...] = ("squeezenet1_1", "alexnet-small", "alexnet-imagenet")


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model."""


class InputFileError(ValueError):
    """An input batch file of the wrong format, dtype or shape."""


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
        raise WeightsError(f"{path}: not a readable torch weights file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(obj, dict) and obj.get("format") == "hpc-train-checkpoint" and "model" in obj:
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"{path}: expected a state dict (parameter name -> tensor) or an hpc "
                           "training checkpoint")
    return obj


def _shape(state: dict[str, torch.Tensor], key: str, dim: int, default: int) -> int:
    t = state.get(key)
    return int(t.shape[dim]) if t is not None and t.dim() > dim else default


def build_for_weights(name: str, state: dict[str, torch.Tensor], input_size: int | None = None) -> nn.Module:
    """The ``name`` network with the widths the weights imply (eval mode, weights loaded)."""
    from hpc.models.alexnet import AlexNetImageNet, AlexNetSmall
    from hpc.models.squeezenet import SqueezeNet11

    try:
        if name == "squeezenet1_1":
            model: nn.Module = SqueezeNet11(num_classes=_shape(state, "classifier.1.weight", 0, 1000),
                                            in_channels=_shape(state, "features.0.weight", 1, 3))
        elif name == "alexnet-small":
            c1 = _shape(state, "features.0.weight", 0, 64)
            model = AlexNetSmall(num_classes=_shape(state, "classifier.6.weight", 0, 3),
                                 in_channels=_shape(state, "features.0.weight", 1, 1),
                                 input_size=input_size or 32, width=c1 / 64,
                                 hidden=_shape(state, "classifier.1.weight", 0, 4096))
        elif name == "alexnet-imagenet":
            classic = "features.4.weight" in state
            convs = (0, 4, 8, 10, 12) if classic else (0, 3, 6, 8, 10)
            channels = [_shape(state, f"features.{i}.weight", 0, 1) for i in convs]
            channels += [_shape(state, "classifier.1.weight", 0, 4096), _shape(state, "classifier.4.weight", 0, 4096),
                         _shape(state, "classifier.6.weight", 0, 1000)]
            model = AlexNetImageNet(in_channels=_shape(state, "features.0.weight", 1, 3),
                                    input_size=input_size, layout="classic" if classic else "torchvision",
                                    channels=channels)
        else:
            raise WeightsError(f"--model {name!r}: expected one of {', '.join(MODELS)}")
    except ValueError as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"{name}: the weights imply an invalid network: {exc}") from None
    check_state_dict(model, state, name)
    model.load_state_dict(state)
    return model.eval()


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Raise :class:`WeightsError` naming missing, unexpected and mis-shaped keys."""
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(want[k].shape)} in {name}"
              for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:6]))
    if problems:
        raise WeightsError(f"weights do not match {name}: " + "; ".join(problems))


def read_input(path: str | os.PathLike[str]) -> np.ndarray:
    """An NCHW float32 batch from a .npy file (no pickles, no silent conversion)."""
    path = Path(path)
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputFileError(f"{path}: input file not found") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a .npy array ({exc})") from None
    if x.dtype != np.float32:
        raise InputFileError(f"{path}: dtype {x.dtype}, expected float32 (save x.astype(np.float32))")
    if x.ndim != 4 or 0 in x.shape:
        raise InputFileError(f"{path}: shape {x.shape}, expected a non-empty 4-D NCHW batch")
    return np.ascontiguousarray(x)


def check_input_fits(x: np.ndarray, model: nn.Module, name: str, source: str) -> None:
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    if x.shape[1] != first.in_channels:
        raise InputFileError(f"{source}: shape {x.shape}: {name} with these weights expects "
                             f"{first.in_channels} input channels")
    if name == "alexnet-small" and (x.shape[2] != x.shape[3] or x.shape[2] != getattr(model, "input_size", x.shape[2])):
        raise InputFileError(f"{source}: shape {x.shape}: the small AlexNet takes square 32/64/128 px "
                             "images")
    if name == "alexnet-imagenet" and getattr(model, "input_size", None) not in (None, x.shape[2]):
        raise InputFileError(f"{source}: shape {x.shape}: built for {model.input_size} px input")  # type: ignore[attr-defined]


def input_size_of(path: str | os.PathLike[str]) -> int:
    """Height of the batch in ``path`` without loading it all (for building size-dependent nets)."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception:  # noqa: BLE001 - read_input reports it properly
        return 0
    return int(x.shape[2]) if x.ndim == 4 else 0
