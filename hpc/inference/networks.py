"""The networks inference runs, built by name, and their weights files.

One place builds every network that ``hpc infer``, distributed inference, the batch sweep
(``hpc bench inference``) and the OpenCL benchmark run:

* ``squeezenet1_1``: SqueezeNet v1.1 (torchvision's layout; its weights file loads as is);
* ``alexnet-small``: the suite's AlexNet for small images (32/64/128 px);
* ``alexnet-imagenet``: the ImageNet AlexNet, classic Krizhevsky layout at 227 px (the
  network the batch-size study profiled) or torchvision's at other sizes;
* ``alexnet-mri``: ``alexnet-small`` as trained on the MRI slices (1x32x32, 3 classes).

Without a weights file the weights are the model's own initialisation under a fixed seed
(timing does not depend on weight values). A weights file is a torch state dict
(``torch.save(model.state_dict(), path)``) or a checkpoint wrapping one (``hpc train``'s, or
any ``{"model" | "state_dict" | "model_state": ...}``). Hyper-parameters that only change
widths (classes, input channels, the small AlexNet's width and hidden size, the ImageNet
AlexNet's channel list and layout) are read from the weight shapes, so the file alone
defines the network; every other key and shape must then match exactly, and a mismatch is
a :class:`WeightsError` naming the file and the keys (never a silent partial load).

The name -> constructor dispatch belongs in ``hpc.models`` once it has a registry; it is
kept here, small, until then.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A network by name: its architecture and the input and classes it has by default."""

    name: str
    arch: str                              # squeezenet1_1 | alexnet-small | alexnet-imagenet
    input_shape: tuple[int, int, int]      # C, H, W of one image
    num_classes: int
    description: str


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("squeezenet1_1", "squeezenet1_1", (3, 224, 224), 1000, "SqueezeNet v1.1, 224x224x3, 1000 classes"),
    ModelSpec("alexnet-small", "alexnet-small", (1, 32, 32), 3, "the suite's AlexNet for 32/64/128 px images"),
    ModelSpec("alexnet-imagenet", "alexnet-imagenet", (3, 227, 227), 1000,
              "AlexNet, classic layout, 227x227x3, 1000 classes (the batch-size study's network)"),
    ModelSpec("alexnet-mri", "alexnet-small", (1, 32, 32), 3, "the suite's AlexNet for 32x32 MRI slices, 3 classes"),
)}

#: Keys under which checkpoints wrap the state dict (``hpc train`` stores it under ``model``).
CHECKPOINT_KEYS: tuple[str, ...] = ("model", "state_dict", "model_state")


class UnknownModelError(ValueError):
    """A model name that is not in MODELS."""


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the network; the message names the
    file and, for a mismatch, the missing, unexpected and mis-shaped keys."""


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"model={name!r}: unknown model; expected one of {sorted(MODELS)}") from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (unwrapped from a checkpoint), loaded without pickled code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
        raise WeightsError(f"{path}: not a readable torch weights file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(obj, dict):
        obj = next((obj[k] for k in CHECKPOINT_KEYS if isinstance(obj.get(k), dict)), obj)
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"{path}: expected a state dict (parameter name -> tensor) or a checkpoint "
                           f"holding one under {' / '.join(CHECKPOINT_KEYS)}")
    return obj


def build(name: str, seed: int = 0, weights: str | os.PathLike[str] | None = None,
          input_size: int | None = None, num_classes: int | None = None) -> tuple[nn.Module, str]:
    """The ``name`` network in eval mode on the CPU, float32, and where its weights came from
    (``random(seed=N)`` or the file). ``input_size`` and ``num_classes`` replace the spec's
    defaults; with ``weights`` the file's shapes decide the widths and classes."""
    spec = model_spec(name)
    state = read_state_dict(weights) if weights is not None else {}
    torch.manual_seed(seed)
    try:
        model = _construct(spec, state, input_size or spec.input_shape[1], num_classes or spec.num_classes)
    except ValueError as exc:
        if not state:
            raise
        raise WeightsError(f"{weights}: the weights imply an invalid {name} network: {exc}") from None
    if not state:
        return model.eval(), f"random(seed={seed})"
    check_state_dict(model, state, name, weights)
    model.load_state_dict(state)
    return model.eval(), str(weights)


def _dim(state: dict[str, torch.Tensor], key: str, dim: int, default: int) -> int:
    t = state.get(key)
    return int(t.shape[dim]) if t is not None and t.dim() > dim else default


def _construct(spec: ModelSpec, state: dict[str, torch.Tensor], input_size: int, classes: int) -> nn.Module:
    """The spec's architecture with the widths ``state`` implies (the spec's where it is empty)."""
    from hpc.models.alexnet import AlexNetImageNet, AlexNetSmall
    from hpc.models.squeezenet import SqueezeNet11

    in_channels = _dim(state, "features.0.weight", 1, spec.input_shape[0])
    if spec.arch == "squeezenet1_1":
        return SqueezeNet11(num_classes=_dim(state, "classifier.1.weight", 0, classes), in_channels=in_channels)
    if spec.arch == "alexnet-small":
        return AlexNetSmall(num_classes=_dim(state, "classifier.6.weight", 0, classes), in_channels=in_channels,
                            input_size=input_size, width=_dim(state, "features.0.weight", 0, 64) / 64,
                            hidden=_dim(state, "classifier.1.weight", 0, 4096))
    if state:
        classic = "features.4.weight" in state
        convs = (0, 4, 8, 10, 12) if classic else (0, 3, 6, 8, 10)
        channels: list[int] | None = [_dim(state, f"features.{i}.weight", 0, 1) for i in convs] + [
            _dim(state, "classifier.1.weight", 0, 4096), _dim(state, "classifier.4.weight", 0, 4096),
            _dim(state, "classifier.6.weight", 0, classes)]
    else:
        classic, channels = input_size == 227, None
    return AlexNetImageNet(num_classes=classes, in_channels=in_channels, input_size=input_size,
                           layout="classic" if classic else "torchvision", channels=channels)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], name: str,
                     path: str | os.PathLike[str]) -> None:
    """Raise :class:`WeightsError` naming the file and its missing, unexpected and mis-shaped keys."""
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
        raise WeightsError(f"{path}: weights do not match {name}: " + "; ".join(problems))
