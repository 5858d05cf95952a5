"""Deep Compression's fine-tuning of shared centroids (Han et al. 2016, section 3).

The indices stay fixed; each layer's codebook becomes the trainable parameter and the
weight is ``codebook[indices]``. Gathering with an index tensor has exactly the backward
pass the method asks for: the gradient of a centroid is the *sum* of the gradients of all
weights that share it (autograd's ``index`` backward is a scatter-add). The forward goes
through ``torch.func.functional_call``, so the model itself is not modified until the end,
when the tuned codebooks are written back into the ``LayerClusters``.

Biases and any layer not clustered stay frozen, so the result is still exactly
"indices + codebooks + original biases", storable in the packed file.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from hpc.compress.evaluation import Split, fit
from hpc.compress.kmeans import LayerClusters, apply_clusters


class _SharedWeights(nn.Module):
    """The model with its clustered weights replaced by ``codebook[indices]`` in forward."""

    def __init__(self, model: nn.Module, layers: list[LayerClusters]) -> None:
        super().__init__()
        self.model = model
        self.names = [l.name for l in layers]
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.from_numpy(np.asarray(l.codebook, dtype=np.float32).copy())) for l in layers])
        for i, l in enumerate(layers):
            self.register_buffer(f"idx{i}", torch.from_numpy(l.indices.astype(np.int64)).view(l.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = {f"{name}.weight": cb[getattr(self, f"idx{i}")]
                   for i, (name, cb) in enumerate(zip(self.names, self.codebooks))}
        return functional_call(self.model, weights, (x,), strict=False)


def finetune_centroids(model: nn.Module, layers: list[LayerClusters], train: Split, epochs: float,
                       lr: float = 1e-4, batch_size: int = 64, seed: int = 0,
                       log: Callable[[str], Any] | None = None,
                       label: str = "centroid fine-tune") -> tuple[list[LayerClusters], dict]:
    """Fine-tune the codebooks on ``train``; return new LayerClusters (same indices) and fit stats.

    ``model`` is left with the tuned decoded weights written in; ``log``/``label``: progress
    lines, as :func:`hpc.compress.evaluation.fit` writes them.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    wrapper = _SharedWeights(model, layers)
    stats = fit(wrapper, train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                params=list(wrapper.codebooks), log=log, label=label)
    tuned = [LayerClusters(l.name, l.shape, l.bits, l.indices, cb.detach().numpy().astype(np.float32).copy())
             for l, cb in zip(layers, wrapper.codebooks)]
    for p in model.parameters():
        p.requires_grad_(True)
    apply_clusters(model, tuned)
    model.eval()
    return tuned, stats
