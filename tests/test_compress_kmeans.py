"""k-means weight clustering: codebooks, compression arithmetic, the packed file, fine-tuning."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from hpc.compress.evaluation import Split, predict, wilson
from hpc.compress.finetune import _SharedWeights, finetune_centroids
from hpc.compress.kmeans import (INITS, apply_clusters, cluster_model, cluster_weights, compression_ratio,
                                 initial_centroids, nearest, overall_ratio)
from hpc.compress.packed import PackedModelError, load_clustered, pack_indices, save_clustered, unpack_indices
from hpc.models.alexnet import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"arch": "alexnet-small", "num_classes": 3, "in_channels": 1, "input_size": 32, "width": 0.125,
        "hidden": 32}


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(**TINY).eval()


def test_compression_ratio_is_the_studys_formula() -> None:
    # Table 7.3: 5-bit codebooks give 6.4x for large layers, 8 bits 4x, 1 bit 32x
    assert compression_ratio(10**9, 32) == pytest.approx(6.4, rel=1e-5)
    assert compression_ratio(10**9, 256) == pytest.approx(4.0, rel=1e-5)
    assert compression_ratio(1000, 2) == pytest.approx(32000 / (1000 + 64))


@pytest.mark.parametrize("init,bits", [(i, 2) for i in INITS] + [("linear", 1), ("linear", 5)])
def test_codebook_has_at_most_2_to_bits_entries_and_indices_are_nearest(init: str, bits: int) -> None:
    w = np.random.default_rng(1).standard_normal(2000).astype(np.float32)
    idx, cb = cluster_weights(w, bits, init)
    assert idx.dtype == np.uint8 and cb.dtype == np.float32 and cb.size <= 2 ** bits
    assert int(idx.max()) < cb.size
    dist = np.abs(w[:, None] - cb[None, :])
    assert np.allclose(dist[np.arange(w.size), idx], dist.min(1))
    # 32 linearly initialised centroids over a N(0,1) sample: every weight within 0.2
    if bits == 5:
        assert np.abs(cb[idx] - w).max() < 0.2


def test_initialisations_span_the_weights() -> None:
    w = np.random.default_rng(0).standard_normal(1000)
    lin = initial_centroids(w, 8, "linear")
    assert lin[0] == w.min() and lin[-1] == w.max() and np.allclose(np.diff(lin), np.diff(lin)[0])
    dens = initial_centroids(w, 8, "density")
    assert np.all(np.diff(dens) > 0) and np.abs(dens).max() < np.abs(lin).max()
    rnd = initial_centroids(w, 8, "random", seed=3)
    assert np.all((rnd >= w.min()) & (rnd <= w.max())) and np.all(np.diff(rnd) >= 0)
    with pytest.raises(ValueError, match="init="):
        initial_centroids(w, 8, "gaussian")


def test_layer_with_few_distinct_values_is_kept_exactly() -> None:
    w = np.array([0.5, -0.25, 0.5, 0.5, -0.25], dtype=np.float32)
    idx, cb = cluster_weights(w, 3)
    assert np.array_equal(cb[idx], w)


@given(st.integers(1, 8), st.integers(0, 300), st.integers(0, 2**31 - 1))
def test_pack_unpack_roundtrip_uses_bits_per_index(bits: int, n: int, seed: int) -> None:
    idx = np.random.default_rng(seed).integers(0, 2 ** bits, n).astype(np.uint8)
    packed = pack_indices(idx, bits)
    assert packed.size == (n * bits + 7) // 8
    assert np.array_equal(unpack_indices(packed, bits, n), idx)


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    c = rng.standard_normal(16)
    v = rng.standard_normal(500)
    assert np.array_equal(nearest(v, c), np.abs(v[:, None] - c[None]).argmin(1))


def test_packed_file_roundtrip_predicts_exactly_like_the_clustered_model(tmp_path) -> None:
    model = tiny_model()
    layers = cluster_model(model, bits=3)
    clustered = apply_clusters(copy.deepcopy(model), layers)
    path = tmp_path / "m.npz"
    size = save_clustered(path, clustered, layers, TINY)
    loaded, loaded_layers = load_clustered(path, build_model)
    x = torch.randn(16, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), clustered(x))
    assert torch.equal(predict(loaded, x), predict(clustered, x))
    assert [l.name for l in loaded_layers] == [l.name for l in layers]
    # indices really are packed: the file is smaller than one byte per index would need
    n = sum(l.n for l in layers)
    assert size < n + 4 * sum(p.numel() for p in model.parameters() if p.dim() == 1) + 20_000
    assert overall_ratio(layers) > 9  # ~32/3 for 3 bits


def test_loading_a_foreign_file_names_it(tmp_path) -> None:
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(PackedModelError, match="x.npz"):
        load_clustered(bad, build_model)


def test_centroid_gradient_is_the_sum_of_the_shared_weights_gradients() -> None:
    model = tiny_model()
    layers = cluster_model(model, bits=2)
    wrapper = _SharedWeights(model, layers)
    x = torch.randn(4, 1, 32, 32)
    wrapper(x).sum().backward()
    # reference: gradient w.r.t. the decoded weights, summed per index
    ref_model = apply_clusters(copy.deepcopy(model), layers)
    ref_model(x).sum().backward()
    modules = dict(ref_model.named_modules())
    for layer, cb in zip(layers, wrapper.codebooks):
        g = modules[layer.name].weight.grad.numpy().ravel()
        expected = np.bincount(layer.indices, weights=g, minlength=cb.numel())
        assert np.allclose(cb.grad.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_finetune_changes_only_codebooks_and_keeps_the_sharing() -> None:
    model = tiny_model()
    layers = cluster_model(model, bits=2)
    clustered = apply_clusters(copy.deepcopy(model), layers)
    biases = {k: v.clone() for k, v in clustered.state_dict().items() if k.endswith("bias")}
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(24, 1, 32, 32, generator=g), torch.randint(0, 3, (24,), generator=g))
    tuned, _ = finetune_centroids(clustered, layers, split, epochs=1, lr=1e-2, batch_size=8)
    modules = dict(clustered.named_modules())
    changed = False
    for before, after in zip(layers, tuned):
        assert np.array_equal(before.indices, after.indices)
        w = modules[after.name].weight.detach().numpy()
        assert np.array_equal(w, after.decode())
        assert len(np.unique(w)) <= 4
        changed |= not np.allclose(before.codebook, after.codebook)
    assert changed
    for k, v in clustered.state_dict().items():
        if k in biases:
            assert torch.equal(v, biases[k])


def test_wilson_interval_brackets_the_estimate() -> None:
    acc = wilson(30, 37)
    assert acc.low < acc.value < acc.high and acc.value == 30 / 37
    assert wilson(0, 10).low == 0.0
    with pytest.raises(ValueError):
        wilson(0, 0)
