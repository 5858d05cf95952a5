"""Binarised AlexNet and SqueezeNet: 1-bit weights with a per-output-channel scale, 8-bit activations.

Written as a few lines of autograd rather than with Brevitas: the whole method is one
``torch.autograd.Function`` (sign forward, straight-through backward) and one fake-quantiser,
and Brevitas would add a dependency (and its own torch pin to keep compatible with
``torch==2.13.0``) for layers this short.

* Weights: ``w_b = alpha * sign(w)`` with ``alpha[c] = mean(|w[c]|)`` per output channel
  (XNOR-Net's scale; per-tensor with ``per_channel=False``, the study's choice). Backward:
  the straight-through estimator with clipping, ``dL/dw = dL/dw_b * 1{|w| <= 1}``; the
  scale's own gradient flows through ``alpha`` as usual. ``sign(0)`` is taken as +1, so
  every weight is exactly one bit.
* Activations: quantised to **8 bits** (not binarised): after each ReLU of a binarised
  block, unsigned uniform quantisation with a per-batch scale ``max(x)/255`` and a
  straight-through rounding. Binary activations were the study's (unclear) choice and its
  network stayed at chance; 8-bit activations keep the experiment about the weights.
* The first and the last weighted layer stay in full precision (usual practice: they hold
  few weights and most of the accuracy loss): AlexNet's conv1 and class-score Linear,
  SqueezeNet's conv1 and 1x1 classifier convolution (see :func:`binarize_model`).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


class SignSTE(torch.autograd.Function):
    """sign (with sign(0) = +1) forward; gradient passed straight through where |x| <= 1."""

    # Scalars in torch.where, not ones_like tensors: on the 38 M-weight fc1 these element-wise
    # passes are memory-bound, and the two extra full-size tensors per call cost 8 % of a
    # binarised training step (measured: 1.18 -> 1.08 s per batch-32 step, one thread).

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.where(x.abs() <= 1, grad, 0.0)


def binary_scale(w: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """alpha = mean |w| per output channel (broadcastable to w), or one scalar per tensor."""
    if per_channel:
        return w.abs().reshape(w.shape[0], -1).mean(1).reshape(-1, *([1] * (w.dim() - 1)))
    return w.abs().mean()


def binarize(w: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    return binary_scale(w, per_channel) * SignSTE.apply(w)


class BinaryConv2d(nn.Conv2d):
    """Conv2d whose forward uses ``alpha * sign(weight)``; the float weight is the latent state."""

    per_channel = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, binarize(self.weight, self.per_channel), self.bias)


class BinaryLinear(nn.Linear):
    per_channel = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, binarize(self.weight, self.per_channel), self.bias)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


class ActQuant8(nn.Module):
    """Unsigned 8-bit fake quantisation of non-negative activations (per-batch max scale)."""

    levels = 255

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.detach().amax().clamp_min(1e-8) / self.levels
        return _RoundSTE.apply(x / scale).clamp(0, self.levels) * scale


def _binary_like(m: nn.Module, per_channel: bool) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        new: nn.Module = BinaryConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                      m.dilation, m.groups, bias=m.bias is not None)
    else:
        new = BinaryLinear(m.in_features, m.out_features, bias=m.bias is not None)
    new.per_channel = per_channel
    new.load_state_dict(m.state_dict())
    return new


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    (root.get_submodule(parent) if parent else root)._modules[name] = module


def binarize_model(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """A copy of ``model`` with every Conv2d/Linear binarised except the first and the last, and
    an 8-bit activation quantiser after every ReLU that comes before the last weighted layer.

    "First", "last" and "before" follow module registration order, which is the execution order
    in the suite's networks: AlexNet's ``features``/``classifier`` Sequentials, and SqueezeNet,
    whose fire modules register squeeze, expand1x1, expand3x3 with their ReLUs in the order they
    run. So in AlexNet conv1 and the class-score Linear stay in full precision; in SqueezeNet
    conv1 (``features.0``) and the 1x1 classifier convolution (``classifier.1``), and the ReLU
    after that classifier convolution (feeding only the average pool) is not quantised: every
    layer after the first receives 8-bit activations, the class scores stay float.
    Weights (and biases) are copied, so it can start from a trained full-precision model.
    """
    new = copy.deepcopy(model)
    modules = list(new.named_modules())
    weighted = [i for i, (_, m) in enumerate(modules) if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(weighted) < 3:
        raise ValueError(f"binarize_model: {type(model).__name__} has {len(weighted)} conv/linear layers; "
                         "need at least 3 (the first and the last stay in full precision)")
    for i in weighted[1:-1]:
        name, m = modules[i]
        _set_submodule(new, name, _binary_like(m, per_channel))
    for name, m in modules[:weighted[-1]]:
        if isinstance(m, nn.ReLU):
            _set_submodule(new, name, nn.Sequential(nn.ReLU(), ActQuant8()))
    return new


def binarised_layer_names(model: nn.Module) -> tuple[str, str, list[str]]:
    """(first full-precision layer, last full-precision layer, binarised layers) of a
    :func:`binarize_model` result, by module path."""
    weighted = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return (weighted[0][0], weighted[-1][0],
            [n for n, m in weighted if isinstance(m, (BinaryConv2d, BinaryLinear))])


def packed_size_bytes(model: nn.Module) -> dict[str, int]:
    """Storage of the binarised model: 1 bit per binarised weight (packed) + float32 scales,
    float32 for everything else. Also the full-precision size for comparison."""
    binary_bits = scale_floats = other_floats = 0
    binarised_weights = set()
    for name, m in model.named_modules():
        if isinstance(m, (BinaryConv2d, BinaryLinear)):
            binary_bits += m.weight.numel()
            scale_floats += m.weight.shape[0] if m.per_channel else 1
            binarised_weights.add(f"{name}.weight")
    for key, v in model.state_dict().items():
        if key not in binarised_weights:
            other_floats += v.numel()
    full = sum(v.numel() for v in model.state_dict().values()) * 4
    packed = (binary_bits + 7) // 8 + 4 * (scale_floats + other_floats)
    return {"packed_bytes": int(packed), "full_precision_bytes": int(full),
            "binary_weights": int(binary_bits)}


def pack_binary_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The arrays of the packed file: sign bits (np.packbits) and scales per binarised layer,
    float32 for every other state entry."""
    arrays: dict[str, np.ndarray] = {}
    binarised = set()
    for name, m in model.named_modules():
        if isinstance(m, (BinaryConv2d, BinaryLinear)):
            w = m.weight.detach()
            arrays[f"sign:{name}"] = np.packbits((w >= 0).numpy().ravel())
            arrays[f"scale:{name}"] = binary_scale(w, m.per_channel).reshape(-1).numpy().astype(np.float32)
            binarised.add(f"{name}.weight")
    for key, v in model.state_dict().items():
        if key not in binarised:
            arrays[f"raw:{key}"] = v.detach().numpy()
    return arrays
