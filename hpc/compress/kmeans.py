"""Per-layer scalar k-means clustering of convolution and linear weights.

Each layer's weights (flattened, 1-D) are replaced by ``2**bits`` shared values (the
codebook) and one ``bits``-bit index per weight, as in the k-means study (002) and in
Deep Compression. The clustering itself is scikit-learn's ``KMeans`` (Lloyd's algorithm,
maintained and tested), not a home-made loop; what this module adds is the centroid
initialisation the study compared and the bookkeeping around it.

Initialisations (``INITS``):

* ``linear``  - evenly spaced over [min, max] of the layer (the default; Han et al. found it
  keeps the rare large weights, which matter most);
* ``random``  - uniform draws over [min, max] (seeded), sorted;
* ``density`` - the weight distribution's quantiles at (i + 0.5)/k, i.e. linear spacing of
  the CDF (Han et al.'s density-based initialisation).

Large layers (the 4096x4096 classifier holds 16.8 M weights) are fitted on a seeded random
sample of at most ``max_fit_samples`` weights; then every centroid is moved to the mean of
*all* the weights nearest to it (one full-data Lloyd step) and every weight is assigned to
its nearest centroid of that final codebook, so decoding is always nearest-centroid
quantisation of the layer.

``KMeans`` runs with one OpenMP thread: on 1-D data of at most ``max_fit_samples`` points it
takes well under a second, while its OpenMP team on a busy shared machine was measured 50x
slower (17 s instead of 0.37 s for the tiny test network at load 14 on 2 cores).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np
import torch
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits
from torch import nn

INITS: tuple[str, ...] = ("linear", "random", "density")
MAX_BITS = 8
FLOAT_BITS = 32


@dataclasses.dataclass
class LayerClusters:
    """One layer's clustered weights: ``codebook[indices]`` reshaped to ``shape`` is the weight."""

    name: str
    shape: tuple[int, ...]
    bits: int
    indices: np.ndarray   # uint8 (bits <= 8), flattened, values < len(codebook)
    codebook: np.ndarray  # float32, length <= 2**bits

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

    def decode(self) -> np.ndarray:
        return self.codebook[self.indices].reshape(self.shape)

    def theoretical_ratio(self) -> float:
        return compression_ratio(self.n, 2 ** self.bits)


def compression_ratio(n: int, k: int, float_bits: int = FLOAT_BITS) -> float:
    """The study's Eq. 7.2: r = n*s / (n*log2(k) + k*s) for n weights and a k-entry codebook."""
    return n * float_bits / (n * math.log2(k) + k * float_bits)


def overall_ratio(layers: list[LayerClusters], float_bits: int = FLOAT_BITS) -> float:
    """Compression of all clustered weights together: sum of n*s over sum of (n*log2 k + k*s)."""
    num = sum(l.n * float_bits for l in layers)
    den = sum(l.n * l.bits + (2 ** l.bits) * float_bits for l in layers)
    return num / den


def clusterable_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The Conv2d and Linear modules whose weights are clustered, in definition order."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            yield name, module


def initial_centroids(weights: np.ndarray, k: int, init: str, seed: int = 0) -> np.ndarray:
    """k starting centroids for one layer's flattened weights (see the module docstring)."""
    lo, hi = float(weights.min()), float(weights.max())
    if init == "linear":
        return np.linspace(lo, hi, k)
    if init == "random":
        return np.sort(np.random.default_rng(seed).uniform(lo, hi, k))
    if init == "density":
        return np.quantile(weights, (np.arange(k) + 0.5) / k)
    raise ValueError(f"init={init!r}: expected one of {INITS}")


def nearest(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each value (exact, O(n log k) via sorted midpoints)."""
    order = np.argsort(centroids, kind="stable")
    s = centroids[order]
    mids = (s[1:] + s[:-1]) / 2
    return order[np.searchsorted(mids, values, side="left")]


def cluster_weights(weights: np.ndarray, bits: int, init: str = "linear", seed: int = 0,
                    max_fit_samples: int = 100_000, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """(indices uint8, codebook float32) for one flattened weight vector."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits={bits}: expected 1..{MAX_BITS}")
    w = np.asarray(weights, dtype=np.float64).ravel()
    k = 2 ** bits
    distinct = np.unique(w)
    if distinct.size <= k:  # already at most k values: the codebook is exact
        codebook = distinct
        return nearest(w, codebook).astype(np.uint8), codebook.astype(np.float32)
    fit_on = w
    if w.size > max_fit_samples:
        fit_on = np.random.default_rng(seed).choice(w, size=max_fit_samples, replace=False)
    init_c = initial_centroids(fit_on, k, init, seed)
    km = KMeans(n_clusters=k, init=init_c.reshape(-1, 1), n_init=1, max_iter=max_iter,
                random_state=seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        km.fit(fit_on.reshape(-1, 1))
    centroids = km.cluster_centers_.ravel().astype(np.float64)
    idx = nearest(w, centroids)
    sums = np.bincount(idx, weights=w, minlength=k)
    counts = np.bincount(idx, minlength=k)
    used = counts > 0
    centroids[used] = sums[used] / counts[used]
    centroids = centroids.astype(np.float32)
    return nearest(w, centroids.astype(np.float64)).astype(np.uint8), centroids


def cluster_model(model: nn.Module, bits: int, init: str = "linear", seed: int = 0,
                  max_fit_samples: int = 100_000) -> list[LayerClusters]:
    """Cluster every Conv2d/Linear weight of ``model`` with the same bit width (the study's rule)."""
    out = []
    for i, (name, module) in enumerate(clusterable_layers(model)):
        w = module.weight.detach().cpu().numpy()
        idx, cb = cluster_weights(w, bits, init, seed + i, max_fit_samples)
        out.append(LayerClusters(name, tuple(w.shape), bits, idx, cb))
    return out


@torch.no_grad()
def apply_clusters(model: nn.Module, layers: list[LayerClusters]) -> nn.Module:
    """Write the decoded (codebook[index]) weights into ``model`` in place; returns it."""
    modules = dict(model.named_modules())
    for layer in layers:
        module = modules.get(layer.name)
        if module is None or tuple(module.weight.shape) != layer.shape:
            raise ValueError(f"layer {layer.name!r}: not in the model or shape differs from {layer.shape}")
        module.weight.copy_(torch.from_numpy(layer.decode()))
    return model
