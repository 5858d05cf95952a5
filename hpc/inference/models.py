"""The networks of the inference sweep, built from ``hpc.models.alexnet``, and their weights.

* ``alexnet-imagenet``: the classic Krizhevsky layout (227x227x3 input, 1000 classes), the
  network the batch-size study profiled;
* ``alexnet-mri``: the suite's AlexNet for 32x32 single-channel MRI slices (3 classes).

Timing does not depend on weight values, so by default the weights are the models' own
initialisation under a fixed seed; real weights load from a PyTorch state dict, and a file
whose keys or shapes do not match the network is an error that names the file and the
offending keys (never a silent partial load).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hpc.models.alexnet import build_model


@dataclass(frozen=True)
class ModelSpec:
    """How to build one of the sweep's networks."""

    name: str
    arch: str
    input_shape: tuple[int, int, int]     # C, H, W of one image
    num_classes: int
    layout: str | None
    description: str


MODELS: dict[str, ModelSpec] = {
    "alexnet-imagenet": ModelSpec("alexnet-imagenet", "alexnet-imagenet", (3, 227, 227), 1000, "classic",
                                  "AlexNet, classic layout, 227x227x3, 1000 classes (the study's network)"),
    "alexnet-mri": ModelSpec("alexnet-mri", "alexnet-small", (1, 32, 32), 3, None,
                             "the suite's AlexNet for 32x32 MRI slices, 3 classes"),
}


class UnknownModelError(ValueError):
    """A model name that is not in MODELS."""


class WeightsError(ValueError):
    """A weights file that cannot be loaded into the network; the message names file and keys."""


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"model={name!r}: unknown model; expected one of {sorted(MODELS)}") from None


def build(name: str, seed: int = 0, weights: str | Path | None = None) -> tuple[nn.Module, str]:
    """The network in eval mode on the CPU, float32, and a label of where its weights came from."""
    spec = model_spec(name)
    torch.manual_seed(seed)
    model = build_model(spec.arch, num_classes=spec.num_classes, in_channels=spec.input_shape[0],
                        input_size=spec.input_shape[1], layout=spec.layout)
    label = f"random(seed={seed})"
    if weights is not None:
        load_weights(model, weights)
        label = str(weights)
    return model.eval(), label


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a state dict (optionally wrapped as ``{"model": ...}`` or ``{"state_dict": ...}``,
    as checkpoints store it); every key and shape must match the network."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"weights={path}: file not found") from None
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise WeightsError(f"weights={path}: not a PyTorch state dict: {exc}") from None
    if isinstance(obj, dict):
        for wrapper in ("model", "state_dict", "model_state"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights={path}: expected a mapping of parameter names to tensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(obj))
    unexpected = sorted(set(obj) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"weights={path}: keys do not match {type(model).__name__}: "
                           f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
                           f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    wrong = [f"{k}: file {tuple(obj[k].shape)} vs network {tuple(v.shape)}"
             for k, v in expected.items() if tuple(obj[k].shape) != tuple(v.shape)]
    if wrong:
        raise WeightsError(f"weights={path}: shapes do not match: " + "; ".join(wrong[:8]))
    model.load_state_dict(obj, strict=True)


def layer_type(module: nn.Module) -> str:
    """The component a leaf layer's time is booked to: conv, fc, pool, activation or other."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "fc"
    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                           nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        return "pool"
    if isinstance(module, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.Sigmoid, nn.Tanh)):
        return "activation"
    return "other"


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network as the ordered list of leaf layers its forward runs, with ``flatten``
    between features and classifier: both AlexNet variants are ``features -> [avgpool] ->
    flatten -> classifier``, which lets the profiler wrap each layer in its own range."""
    seq: list[tuple[str, nn.Module]] = []
    for prefix in ("features", "avgpool"):
        part = getattr(model, prefix, None)
        if isinstance(part, nn.Sequential):
            seq += [(f"{prefix}.{i}", m) for i, m in enumerate(part)]
        elif isinstance(part, nn.Module):
            seq.append((prefix, part))
    seq.append(("flatten", nn.Flatten(1)))
    seq += [(f"classifier.{i}", m) for i, m in enumerate(model.classifier)]
    return seq
