"""Every kernel of every style against torch on random shapes (hypothesis).

Tolerance rtol = atol = 1e-4 for all kernels and styles. The single-task convolutions sum
in 16 interleaved partial sums (the shift register) and the tiled/linear kernels in other
orders than torch's; with inputs and weights of order 1 and at most a few hundred terms per
output the float32 rounding differences stay near 1e-5, inside the tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_opencl_util import ATOL, RTOL, opencl_device_or_skip

STYLES = ("single-task", "ndrange", "tiled")
EXAMPLES = settings(max_examples=20, deadline=None)


@pytest.fixture(scope="module", autouse=True)
def _device() -> None:
    opencl_device_or_skip()


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@st.composite
def conv_cases(draw):  # type: ignore[no-untyped-def]
    """Square kernels mostly (so the 1x1 and 3x3 specialisations are hit), rectangular ones
    with their own strides and paddings for the generic kernel."""
    def one_side():  # type: ignore[no-untyped-def]
        k = draw(st.sampled_from([1, 1, 2, 3, 3, 5]))
        return k, draw(st.integers(1, 3)), draw(st.integers(0, k // 2 + (1 if k == 3 else 0)))
    kh, sh, ph = one_side()
    kw, sw, pw = (kh, sh, ph) if draw(st.booleans()) else one_side()
    return dict(n=draw(st.integers(1, 3)), cin=draw(st.integers(1, 9)), cout=draw(st.integers(1, 19)),
                h=draw(st.integers(max(1, kh - 2 * ph), 17)), w=draw(st.integers(max(1, kw - 2 * pw), 17)),
                k=(kh, kw), stride=(sh, sw), pad=(ph, pw), relu=draw(st.booleans()),
                seed=draw(st.integers(0, 2**31 - 1)))


def _torch_conv(x, w, b, stride, pad, relu):  # type: ignore[no-untyped-def]
    y = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=stride, padding=pad)
    return (F.relu(y) if relu else y).numpy()


@pytest.mark.parametrize("style", STYLES)
@EXAMPLES
@given(case=conv_cases())
def test_conv2d_matches_torch(style: str, case: dict) -> None:
    from hpc.inference.opencl import ops
    rng = np.random.default_rng(case["seed"])
    x = _rand(rng, case["n"], case["cin"], case["h"], case["w"])
    w = _rand(rng, case["cout"], case["cin"], *case["k"])
    b = _rand(rng, case["cout"])
    got = ops.conv2d(x, w, b, case["stride"], case["pad"], relu=case["relu"], style=style)
    np.testing.assert_allclose(got, _torch_conv(x, w, b, case["stride"], case["pad"], case["relu"]),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("style", STYLES)
@settings(max_examples=8, deadline=None)
@given(k=st.sampled_from([1, 3]), cout=st.integers(1, 11), extra=st.integers(1, 9),
       offset=st.integers(0, 5), seed=st.integers(0, 2**31 - 1))
def test_conv2d_writes_at_a_channel_offset_and_keeps_other_channels(style, k, cout, extra, offset, seed):
    from hpc.inference.opencl import ops
    rng = np.random.default_rng(seed)
    x, w, b = _rand(rng, 2, 4, 9, 7), _rand(rng, cout, 4, k, k), _rand(rng, cout)
    offset = min(offset, extra)
    out = _rand(rng, 2, cout + extra, 9, 7)
    expected = out.copy()
    expected[:, offset:offset + cout] = _torch_conv(x, w, b, 1, k // 2, True)
    got = ops.conv2d(x, w, b, 1, k // 2, relu=True, style=style, out=out, channel_offset=offset)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("style", STYLES)
@EXAMPLES
@given(n=st.integers(1, 4), fin=st.integers(1, 300), fout=st.integers(1, 21), relu=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_linear_matches_torch(style, n, fin, fout, relu, seed):
    from hpc.inference.opencl import ops
    rng = np.random.default_rng(seed)
    x, w, b = _rand(rng, n, fin), (_rand(rng, fout, fin) / np.sqrt(fin)).astype(np.float32), _rand(rng, fout)
    ref = F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))
    ref = (F.relu(ref) if relu else ref).numpy()
    np.testing.assert_allclose(ops.linear(x, w, b, relu=relu, style=style), ref, rtol=RTOL, atol=ATOL)


@st.composite
def pool_cases(draw):  # type: ignore[no-untyped-def]
    k = draw(st.integers(1, 4))
    pad = draw(st.integers(0, k // 2))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 6)), h=draw(st.integers(k, 19)),
                w=draw(st.integers(k, 19)), k=k, stride=draw(st.integers(1, 3)), pad=pad,
                ceil=draw(st.booleans()), relu=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
@EXAMPLES
@given(case=pool_cases())
def test_pooling_matches_torch(style, op, case):
    from hpc.inference.opencl import ops
    x = _rand(np.random.default_rng(case["seed"]), case["n"], case["c"], case["h"], case["w"])
    fn = F.max_pool2d if op == "maxpool2d" else F.avg_pool2d
    ref = fn(torch.from_numpy(x), case["k"], case["stride"], case["pad"], ceil_mode=case["ceil"])
    ref = (F.relu(ref) if case["relu"] else ref).numpy()
    got = ops.pool2d(x, op, case["k"], case["stride"], case["pad"], ceil_mode=case["ceil"],
                     relu=case["relu"], style=style)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("style", STYLES)
@EXAMPLES
@given(n=st.integers(1, 3), c=st.integers(1, 30), h=st.integers(1, 15), w=st.integers(1, 15),
       relu=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_global_avgpool_matches_torch(style, n, c, h, w, relu, seed):
    from hpc.inference.opencl import ops
    x = _rand(np.random.default_rng(seed), n, c, h, w)
    ref = F.adaptive_avg_pool2d(torch.from_numpy(x), 1)
    ref = (F.relu(ref) if relu else ref).numpy()
    np.testing.assert_allclose(ops.global_avgpool(x, relu=relu, style=style), ref, rtol=RTOL, atol=ATOL)


def test_every_style_uses_the_specialised_kernels() -> None:
    from hpc.inference.opencl.geometry import ConvGeom, conv_launch
    for style in STYLES:
        assert conv_launch(style, ConvGeom(1, 8, 13, 13, 16, 1, 1), True).kernel == "conv2d_1x1"
        assert conv_launch(style, ConvGeom(1, 8, 13, 13, 16, 3, 3, 2, 2, 1, 1), True).kernel == "conv2d_3x3"
        assert conv_launch(style, ConvGeom(1, 8, 13, 13, 16, 1, 1, 2, 2), True).kernel == "conv2d"
        assert conv_launch(style, ConvGeom(1, 8, 13, 13, 16, 5, 5), True).kernel == "conv2d"
    # the study's launch shapes: single work-item, one row of one filter per work-item
    assert conv_launch("single-task", ConvGeom(1, 3, 224, 224, 64, 3, 3, 2, 2), True).global_size == (1,)
    assert conv_launch("ndrange", ConvGeom(1, 3, 224, 224, 64, 3, 3, 2, 2), True).global_size == (64, 111)


def test_pool_output_sizes_follow_torch_ceil_mode() -> None:
    from hpc.inference.opencl.geometry import pool_out
    for size in range(3, 40):
        for k, s, p in [(3, 2, 0), (3, 2, 1), (2, 2, 0), (4, 3, 2)]:
            for ceil in (False, True):
                ref = F.max_pool2d(torch.zeros(1, 1, size, size), k, s, p, ceil_mode=ceil).shape[-1]
                assert pool_out(size, k, s, p, ceil) == ref, (size, k, s, p, ceil)


@pytest.mark.parametrize("style", STYLES)
@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 12), h=st.integers(1, 9), w=st.integers(1, 9),
       size=st.integers(1, 6), relu=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_local_response_norm_matches_torch(style, n, c, h, w, size, relu, seed):
    from hpc.inference.opencl import ops
    x = _rand(np.random.default_rng(seed), n, c, h, w) * 3
    ref = F.local_response_norm(torch.from_numpy(x), size, alpha=1e-2, beta=0.75, k=2.0)
    ref = (F.relu(ref) if relu else ref).numpy()
    got = ops.local_response_norm(x, size, alpha=1e-2, beta=0.75, k=2.0, relu=relu, style=style)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
