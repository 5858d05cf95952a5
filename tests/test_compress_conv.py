"""Convolution on clustered weights: every numba variant equals torch conv2d on the decoded weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from hpc.compress.clustered_conv import VARIANTS, ClusteredConv, group_offsets, im2col_gemm, pad_input
from hpc.compress.conv_bench import ALEXNET_LAYERS, LARGE_LAYERS, bench_layer, resolve_layers


@st.composite
def conv_case(draw):
    k = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 4))
    padding = draw(st.integers(0, 3))
    h = draw(st.integers(max(1, k - 2 * padding), 14))
    w = draw(st.integers(max(1, k - 2 * padding), 14))
    return dict(cin=draw(st.integers(1, 6)), cout=draw(st.integers(1, 9)), h=h, w=w, k=k, stride=stride,
                padding=padding, bits=draw(st.integers(1, 8)), seed=draw(st.integers(0, 2**31 - 1)))


def _reference(c: ClusteredConv, x: np.ndarray, stride: int, padding: int) -> np.ndarray:
    return torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(c.weights),
                                      stride=stride, padding=padding)[0].numpy()


@settings(max_examples=40)
@given(conv_case())
def test_every_variant_matches_torch_conv2d(case) -> None:
    rng = np.random.default_rng(case["seed"])
    kk = 2 ** case["bits"]
    idx = rng.integers(0, kk, (case["cout"], case["cin"], case["k"], case["k"])).astype(np.uint8)
    cb = rng.standard_normal(kk).astype(np.float32)
    x = rng.standard_normal((case["cin"], case["h"], case["w"])).astype(np.float32)
    conv = ClusteredConv(idx, cb, case["stride"], case["padding"], (case["h"], case["w"]), blocks=(4, 3, 2))
    xp = pad_input(x, case["padding"])
    ref = _reference(conv, x, case["stride"], case["padding"])
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    for variant in VARIANTS:
        out = conv.run(variant, xp)
        assert out.shape == ref.shape, variant
        np.testing.assert_allclose(out, ref, atol=tol, rtol=1e-4, err_msg=variant)
        if variant != "grouped":
            np.testing.assert_allclose(conv.run(variant, xp, dense=True), ref, atol=tol, rtol=1e-4,
                                       err_msg=f"{variant} dense")
    np.testing.assert_allclose(im2col_gemm(xp, conv.weights, case["stride"]), ref, atol=tol, rtol=1e-4)


def test_group_offsets_partition_each_filter_by_index() -> None:
    idx = np.array([[[[2, 0], [0, 1]]]], dtype=np.uint8)  # 1x1x2x2
    offsets, ptr = group_offsets(idx, 4, hp=5, wp=5)
    assert ptr.tolist() == [[0, 2, 3, 4, 4]]
    # index 0 at (m,n) = (0,1), (1,0) -> offsets 1 and 5; index 1 at (1,1) -> 6; index 2 at (0,0) -> 0
    assert offsets.tolist() == [[1, 5, 6, 0]]


def test_bad_inputs_are_rejected_with_the_reason() -> None:
    idx = np.zeros((2, 1, 3, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="outside the codebook"):
        ClusteredConv(idx + 4, np.zeros(4, np.float32), 1, 0, (5, 5))
    conv = ClusteredConv(idx, np.zeros(2, np.float32), 1, 1, (5, 5))
    with pytest.raises(ValueError, match="padded input"):
        conv.run("vanilla", np.zeros((1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="variant="):
        conv.run("unrolled", pad_input(np.zeros((1, 5, 5), np.float32), 1))


def test_study_layers_have_the_papers_flop_counts() -> None:
    # Table 8.3 / 8.4 [derived] FLOPs in FIGURES.md (2*Ho*Wo*Cout*Cin*Kh*Kw)
    flops = {s.name: s.flops() for s in ALEXNET_LAYERS + LARGE_LAYERS}
    assert flops["conv1"] == 210_830_400 and flops["conv2"] == 895_795_200
    assert flops["conv3"] == 299_040_768 and flops["bench1"] == 28_991_029_248
    assert flops["bench7"] == 3_699_376_128
    assert resolve_layers(["bench1"], spatial_divisor=8)[0].h == 16
    assert resolve_layers(["conv1"], spatial_divisor=8)[0].h == 227


def test_benchmark_reports_every_implementation_against_the_same_run_gemm() -> None:
    shape = resolve_layers(["bench7"], spatial_divisor=4)[0]  # 512x7x7 -> 512, 3x3: ~0.2 GFLOP
    shape = type(shape)(shape.name, 16, 8, 24, 3, 1, 1)        # shrink channels for the test
    rows = list(bench_layer(shape, bits=5, threads=1, repeats=1, warmup=0))
    assert {r["impl"] for r in rows} >= {"vanilla-cl", "reordered-cl", "blocked-cl", "grouped-cl",
                                         "im2col-gemm", "torch-conv2d"}
    for r in rows:
        assert r["gflops"] > 0 and r["gemm_gflops"] > 0
        assert r["fraction_of_gemm"] == pytest.approx(r["gflops"] / r["gemm_gflops"])
    assert next(r for r in rows if r["impl"] == "vanilla-cl")["speedup_vs_vanilla_cl"] == pytest.approx(1.0)
