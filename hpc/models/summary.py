"""Per-layer output shapes, parameters and multiply-accumulates (MACs) of a network.

Shapes come from one forward pass of a batch-1 zero tensor with forward hooks on the leaf
modules (so the figures follow the real layers, never a hand-kept table); MACs are then
pure arithmetic on those shapes:

* Conv2d: ``out_elements * (in_channels / groups) * kh * kw`` (+ ``out_elements`` if
  ``count_bias`` and the layer has a bias),
* Linear: ``out_features * in_features`` per sample (+ ``out_features`` with bias),
* everything else (ReLU, pooling, dropout, LRN): 0 MACs, as in the NetAdapt convention.

With ``count_bias=False`` the torchvision-layout AlexNet (10 classes, 224x224) counts
710,133,440 MACs, the figure the NetAdapt paper reports.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class LayerSummary:
    """One leaf layer: name (module path), type, output shape (batch 1), params, MACs."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    input_shape: tuple[int, ...]
    layers: tuple[LayerSummary, ...]
    count_bias: bool

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def layer_macs(module: nn.Module, output_shape: Sequence[int], count_bias: bool) -> int:
    """MACs of one layer for one sample, given its output shape (batch dimension first)."""
    out_elements = 1
    for d in output_shape[1:]:
        out_elements *= int(d)
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        macs = out_elements * (module.in_channels // module.groups) * kh * kw
        return macs + (out_elements if count_bias and module.bias is not None else 0)
    if isinstance(module, nn.Linear):
        rows = out_elements // module.out_features  # >1 only for Linear on N-d input
        macs = rows * module.out_features * module.in_features
        return macs + (out_elements if count_bias and module.bias is not None else 0)
    return 0


def summarize(model: nn.Module, input_shape: Sequence[int], count_bias: bool = False) -> ModelSummary:
    """Summarise ``model`` for one input of shape ``input_shape`` = (C, H, W).

    The model is run once in eval mode under ``torch.no_grad``; its training mode is restored.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape={tuple(input_shape)}: expected (channels, height, width)")
    records: list[LayerSummary] = []
    handles = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        def _hook(module: nn.Module, _inputs, output) -> None:  # type: ignore[no-untyped-def]
            shape = tuple(int(d) for d in output.shape)
            params = sum(p.numel() for p in module.parameters(recurse=False))
            records.append(LayerSummary(name=name, kind=type(module).__name__, output_shape=shape,
                                        params=params, macs=layer_macs(module, shape, count_bias)))
        return _hook

    for name, module in model.named_modules():
        if next(module.children(), None) is None:  # leaf
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return ModelSummary(input_shape=tuple(int(d) for d in input_shape), layers=tuple(records),
                        count_bias=count_bias)


def format_summary(summary: ModelSummary) -> str:
    """A fixed-width table: layer, type, output shape, parameters, MACs, and totals."""
    rows = [("layer", "type", "output shape", "params", "MACs")]
    for layer in summary.layers:
        rows.append((layer.name, layer.kind, "x".join(map(str, layer.output_shape[1:])),
                     f"{layer.params:,}", f"{layer.macs:,}"))
    rows.append(("total", "", "", f"{summary.total_params:,}", f"{summary.total_macs:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    bias = "with" if summary.count_bias else "without"
    lines.append(f"input {'x'.join(map(str, summary.input_shape))}; MACs {bias} bias terms")
    return "\n".join(lines)
