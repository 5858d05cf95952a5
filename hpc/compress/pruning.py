"""Channel pruning of the suite's sequential AlexNets by plain slicing.

Why no pruning library: both AlexNet variants are a ``features`` Sequential of convolutions
and a ``classifier`` Sequential of linear layers, with no batch norm, no residual and no
grouped convolutions. Removing output channel c of weighted layer k touches exactly two
tensors: row c of layer k (weight and bias) and the matching inputs of the next weighted
layer (input channel c of a convolution; for the first linear layer, the ``s*s`` flattened
columns of channel c). That coupling is fixed by the architecture, so slicing is a few
lines that can be checked exhaustively (``tests/test_compress_netadapt.py``); a dependency
graph (Torch-Pruning) would add a dependency to discover what is already known.

"Weighted layers" below are every Conv2d of ``features`` then every Linear of
``classifier``, in order; the last one (the class scores) is never pruned.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from hpc.models.summary import summarize


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(module path, module) of every Conv2d in ``features`` and Linear in ``classifier``."""
    out = []
    for prefix, container in (("features", model.features), ("classifier", model.classifier)):
        for name, m in container.named_children():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                out.append((f"{prefix}.{name}", m))
    return out


def channel_counts(model: nn.Module) -> list[int]:
    """Output channels/features of every weighted layer (conv widths, hidden widths, classes)."""
    return [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            for _, m in weighted_layers(model)]


def prunable(model: nn.Module) -> list[str]:
    """Names of the weighted layers whose outputs may be pruned (all but the last)."""
    return [name for name, _ in weighted_layers(model)[:-1]]


def smallest_l2(module: nn.Module, remove: int) -> torch.Tensor:
    """Indices (sorted) of the output channels to *keep*: all but the ``remove`` of smallest L2 norm."""
    w = module.weight.detach()
    norms = w.reshape(w.shape[0], -1).norm(dim=1)
    keep = torch.argsort(norms, descending=True, stable=True)[: w.shape[0] - remove]
    return torch.sort(keep).values


def _sub(module: nn.Module, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> nn.Module:
    w = module.weight.detach()
    b = module.bias.detach() if module.bias is not None else None
    if out_idx is not None:
        w = w[out_idx]
        b = b[out_idx] if b is not None else None
    if in_idx is not None:
        w = w[:, in_idx]
    if isinstance(module, nn.Conv2d):
        new: nn.Module = nn.Conv2d(w.shape[1] * module.groups, w.shape[0], module.kernel_size,
                                   module.stride, module.padding, module.dilation, module.groups,
                                   bias=b is not None)
    else:
        new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def prune_layer(model: nn.Module, layer: str, keep: Sequence[int] | torch.Tensor) -> nn.Module:
    """A copy of ``model`` keeping only output channels ``keep`` of weighted layer ``layer``."""
    layers = weighted_layers(model)
    names = [n for n, _ in layers]
    if layer not in names[:-1]:
        raise ValueError(f"layer {layer!r}: not a prunable layer; expected one of {names[:-1]}")
    k = names.index(layer)
    keep_t = torch.as_tensor(keep, dtype=torch.long)
    cur, nxt = layers[k][1], layers[k + 1][1]
    n_out = cur.out_channels if isinstance(cur, nn.Conv2d) else cur.out_features
    if keep_t.numel() == 0 or int(keep_t.max()) >= n_out or int(keep_t.min()) < 0:
        raise ValueError(f"{layer}: keep indices must be a non-empty subset of 0..{n_out - 1}")
    if isinstance(nxt, nn.Linear) and isinstance(cur, nn.Conv2d):
        per = nxt.in_features // n_out  # flattened spatial positions per channel
        in_idx = (keep_t[:, None] * per + torch.arange(per)[None, :]).reshape(-1)
    else:
        in_idx = keep_t
    new = copy.deepcopy(model)
    for idx, (name, _), (out_i, in_i) in ((k, layers[k], (keep_t, None)), (k + 1, layers[k + 1], (None, in_idx))):
        container_name, child = name.split(".")
        container = getattr(new, container_name)
        container._modules[child] = _sub(getattr(model, container_name)._modules[child], out_i, in_i)
    if hasattr(new, "flatten_size"):
        first_linear = next(m for _, m in weighted_layers(new) if isinstance(m, nn.Linear))
        new.flatten_size = first_linear.in_features
    return new


def mac_unit_table(model: nn.Module, input_shape: Sequence[int]) -> list[dict]:
    """Per weighted layer: MACs, out/in channel counts and the MACs per (out, in) channel pair.

    MACs of a conv/linear layer are ``unit * out * in_channels`` (unit = Ho*Wo*Kh*Kw for a
    convolution, 1 for a linear layer, whose ``in`` counts flattened columns), so the effect of
    removing channels can be computed without building the pruned model.
    """
    summary = {l.name: l for l in summarize(model, tuple(input_shape)).layers}
    rows = []
    for name, m in weighted_layers(model):
        out_c = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        in_c = m.in_channels if isinstance(m, nn.Conv2d) else m.in_features
        macs = summary[name].macs
        rows.append({"name": name, "macs": macs, "out": out_c, "in": in_c, "unit": macs / (out_c * in_c)})
    return rows


def macs_after_removing(table: list[dict], k: int, remove: int) -> int:
    """Total MACs (weighted layers) after removing ``remove`` output channels of layer k."""
    total = sum(r["macs"] for r in table)
    cur, nxt = table[k], table[k + 1]
    per = nxt["in"] // cur["out"]
    total -= round(cur["unit"] * remove * cur["in"])
    total -= round(nxt["unit"] * nxt["out"] * remove * per)
    return int(total)


def macs_for_channels(channels: Sequence[int], layout: str = "torchvision", input_size: int = 224,
                      in_channels: int = 3) -> int:
    """MACs (no bias terms) of the ImageNet AlexNet with the given 8 widths, counted by
    ``hpc.models.summary`` on a model built on the meta device (no weights allocated)."""
    from hpc.models.alexnet import AlexNetImageNet
    with torch.device("meta"):
        model = AlexNetImageNet(in_channels=in_channels, input_size=input_size, layout=layout,
                                channels=list(channels))
    return summarize(model, (in_channels, input_size, input_size)).total_macs
