"""numba-cuda pooling and matmul kernels vs the NumPy reference.

These tests need numba.cuda to be usable *in this process*: on a GPU machine they run on
the GPU; in CI (no GPU) tests/test_gpu_sim.py re-runs this file in a subprocess with
NUMBA_ENABLE_CUDASIM=1. The simulator is chosen when numba.cuda is first imported, so
it cannot be switched on inside an ordinary pytest process without affecting every other
test there; a subprocess keeps it contained. Shapes are tiny because the simulator runs
every CUDA thread as a Python thread.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpc.kernels import api, backend_numba_cuda as nc, cuda_common
from hpc.kernels.backend_numpy import pool_numpy
from hpc.kernels.geometry import pool_geometry

AVAILABLE, REASON, DEVICE = cuda_common.numba_cuda_probe()
needs_cuda = pytest.mark.skipif(
    not AVAILABLE, reason=f"numba.cuda cannot run in this process ({REASON}); "
                          "tests/test_gpu_sim.py runs this file under the CUDA simulator")


def _gpu_present() -> bool:
    """Evidence independent of numba: the NVIDIA driver lists a GPU (nvidia-smi)."""
    from hpc.kernels.gpu_check import NoGpuError, find_gpu
    try:
        return bool(find_gpu())
    except NoGpuError:
        return False


def test_probe_agrees_with_independent_evidence() -> None:
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        assert AVAILABLE and DEVICE == "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    elif _gpu_present():
        from hpc.kernels.gpu_check import find_gpu
        assert AVAILABLE and DEVICE == find_gpu()["name"]
    else:
        assert not AVAILABLE and REASON.startswith("no CUDA GPU")


def test_launch_config_caps_grid_and_covers_width() -> None:
    grid, block = nc.pool_launch_config(200_000, 1_000_000, 333)
    if cuda_common.simulator_enabled():
        assert grid == (2, 2, 2)
    else:
        assert grid[1] == 65535 and grid[2] == 65535 and grid[0] * block[0] >= 333


CASES = [
    # (shape, kernel, stride, padding, ceil_mode, dtype)
    ((1, 1, 8, 8), 2, 2, 0, False, "float32"),
    ((2, 3, 9, 11), 3, 2, 1, False, "float32"),
    ((1, 2, 7, 10), 3, 2, 1, True, "float64"),
    ((2, 1, 5, 9), (3, 2), (2, 1), (1, 0), True, "float32"),
    ((1, 1, 6, 6), 3, 1, 1, False, "float16"),
    ((1, 1, 6, 7), 2, 2, 0, True, "float32"),
]


@needs_cuda
@pytest.mark.parametrize("shape,k,s,p,ceil,dtype", CASES)
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pool_matches_reference(shape, k, s, p, ceil, dtype, op) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    geom = pool_geometry(shape[2], shape[3], k, s, p, ceil)
    fn = api.maxpool2d if op == "max" else api.avgpool2d
    got = fn(x, k, s, p, ceil, backend="numba-cuda")
    assert isinstance(got, np.ndarray) and got.dtype == x.dtype
    want = pool_numpy(x, geom, op)
    tol = 2e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@needs_cuda
def test_avg_count_include_pad_false_and_divisor_override() -> None:
    x = np.arange(1 * 2 * 7 * 6, dtype=np.float64).reshape(1, 2, 7, 6)
    geom = pool_geometry(7, 6, 3, 2, 1, True)
    got = api.avgpool2d(x, 3, 2, 1, True, count_include_pad=False, backend="numba-cuda")
    np.testing.assert_allclose(got, pool_numpy(x, geom, "avg", False))
    got = api.avgpool2d(x, 3, 2, 1, True, divisor_override=5, backend="numba-cuda")
    np.testing.assert_allclose(got, pool_numpy(x, geom, "avg", True, 5))


@needs_cuda
@pytest.mark.parametrize("dtype", ["int32", "uint8", "int64", "int8"])
def test_integer_max_pool_is_exact(dtype) -> None:
    x = np.random.default_rng(1).integers(0, 10, (1, 2, 9, 8)).astype(dtype)
    got = api.maxpool2d(x, 3, 2, 1, backend="numba-cuda")
    np.testing.assert_array_equal(got, pool_numpy(x, pool_geometry(9, 8, 3, 2, 1), "max"))


@needs_cuda
def test_nan_propagates_and_inf_survives() -> None:
    x = np.zeros((1, 1, 4, 6), dtype=np.float32)
    x[0, 0, 0, 0] = np.nan   # window (0, 0)
    x[0, 0, 1, 3] = np.inf   # window (0, 1)
    x[0, 0, 2, 5] = -np.inf  # window (1, 2): max is still 0
    got = api.maxpool2d(x, 2, backend="numba-cuda")
    assert np.isnan(got[0, 0, 0, 0]) and got[0, 0, 0, 1] == np.inf and got[0, 0, 1, 2] == 0
    avg = api.avgpool2d(x, 2, backend="numba-cuda")
    assert np.isnan(avg[0, 0, 0, 0]) and avg[0, 0, 0, 1] == np.inf


@needs_cuda
def test_device_arrays_stay_on_device() -> None:
    from numba import cuda
    x = np.random.default_rng(3).random((2, 2, 6, 6)).astype(np.float32)
    xd = cuda.to_device(x)
    out = api.maxpool2d(xd, 2, backend="numba-cuda")
    assert hasattr(out, "copy_to_host") and not isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out.copy_to_host(), pool_numpy(x, pool_geometry(6, 6, 2), "max"))


@needs_cuda
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_pool_property_small_shapes(data) -> None:
    k = (data.draw(st.integers(1, 3), label="kh"), data.draw(st.integers(1, 3), label="kw"))
    s = (data.draw(st.integers(1, 3), label="sh"), data.draw(st.integers(1, 3), label="sw"))
    p = (data.draw(st.integers(0, k[0] // 2), label="ph"), data.draw(st.integers(0, k[1] // 2), label="pw"))
    h = data.draw(st.integers(max(1, k[0] - 2 * p[0]), 8), label="h")
    w = data.draw(st.integers(max(1, k[1] - 2 * p[1]), 8), label="w")
    ceil = data.draw(st.booleans(), label="ceil_mode")
    n, c = data.draw(st.integers(1, 2), label="n"), data.draw(st.integers(1, 2), label="c")
    dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    x = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed")).standard_normal((n, c, h, w)).astype(dtype)
    specials = data.draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=2), label="specials")
    for i, v in enumerate(specials):
        x.flat[(i * 7919) % x.size] = v
    geom = pool_geometry(h, w, k, s, p, ceil)
    got = api.maxpool2d(x, k, s, p, ceil, backend="numba-cuda")
    np.testing.assert_array_equal(got, pool_numpy(x, geom, "max"))
    got = api.avgpool2d(x, k, s, p, ceil, backend="numba-cuda")
    np.testing.assert_allclose(got, pool_numpy(x, geom, "avg"), rtol=1e-5, atol=1e-6)


@needs_cuda
@pytest.mark.parametrize("variant", sorted(nc.VARIANTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_variants(variant, dtype) -> None:
    rng = np.random.default_rng(11)
    a = rng.standard_normal((37, 21)).astype(dtype)
    b = rng.standard_normal((21, 45)).astype(dtype)
    got = api.matmul(a, b, backend="numba-cuda", variant=variant)
    assert got.dtype == a.dtype and got.shape == (37, 45)
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=tol, atol=tol)


@needs_cuda
def test_regblock_spans_several_tiles() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((130, 9))
    b = rng.standard_normal((9, 131))
    np.testing.assert_allclose(api.matmul(a, b, backend="numba-cuda", variant="regblock"), a @ b,
                               rtol=1e-12, atol=1e-12)


@needs_cuda
def test_bench_records_transfer_separately() -> None:
    from hpc.kernels import bench
    spec = bench.parse_backend("numba-cuda")
    params, m = bench.measure_pool(spec, "maxpool2d", (1, 2, 8, 8), 2, 2, 0, "float32", 2, 1, check=True)
    assert m["h2d_s"] > 0 and m["d2h_s"] > 0 and m["bytes_moved"] == (128 + 32) * 4
    assert m["bound_gbs"] > 0 and params["bound_kind"] in ("device memcpy", "device copy kernel")
    assert m["bound_memcpy_gbs"] > 0 and m["bound_copy_kernel_gbs"] > 0
    assert m["bound_gbs"] == pytest.approx(max(m["bound_memcpy_gbs"], m["bound_copy_kernel_gbs"]))
    params, m = bench.measure_matmul(bench.parse_backend("numba-cuda:shared"), 20, "float32", 1, 1, check=True)
    assert m["gflops"] > 0 and m["error_ratio"] <= 1.0 and params["tf32"]["cupy_tf32"] is False


@needs_cuda
def test_avg_pool_accumulates_in_float32_for_float16_and_float32() -> None:
    from hpc.kernels.backend_numba_cuda import accumulator_dtype
    assert accumulator_dtype("float16") == np.float32 and accumulator_dtype("float32") == np.float32
    assert accumulator_dtype("float64") == np.float64
    # float16: a float16 running sum of 1024 + 8 x 1.5 rounds at every step (1040 / 9 ->
    # 115.5); a float32 accumulator keeps 1036 (-> 115.125)
    x = np.full((1, 1, 3, 3), 1.5, dtype=np.float16)
    x[0, 0, 0, 0] = 1024
    assert api.avgpool2d(x, 3, backend="numba-cuda")[0, 0, 0, 0] == np.float16(115.125)
    # float32: 2^24 + 8 x 1 stays 2^24 in float32 (float64 would keep the 8)
    y = np.ones((1, 1, 3, 3), dtype=np.float32)
    y[0, 0, 0, 0] = 2.0**24
    assert api.avgpool2d(y, 3, backend="numba-cuda")[0, 0, 0, 0] == np.float32(2.0**24) / np.float32(9)


@needs_cuda
def test_fill_and_copy_kernels() -> None:
    from numba import cuda
    from hpc.kernels import cuda_kernels
    src = cuda.to_device(np.arange(37, dtype=np.float32))
    dst = cuda.device_array(37, dtype=np.float32)
    cuda_kernels.copy(dst, src)
    np.testing.assert_array_equal(dst.copy_to_host(), np.arange(37, dtype=np.float32))
    cuda_kernels.fill(dst, 0.0)
    assert not dst.copy_to_host().any()


@needs_cuda
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_shared_harness_cases(data) -> None:
    """The suite-wide hypothesis cases (all dtypes, NaN/inf, views, divisor_override)."""
    from kernel_cases import check_pool, pool_cases
    case = data.draw(pool_cases(max_extra=4, max_planes=2))
    check_pool(case, "max", "numba-cuda")
    check_pool(case, "avg", "numba-cuda")


@needs_cuda
def test_select_device_validates_index() -> None:
    from numba import cuda
    nc.select_device(0)
    count = 1 if cuda_common.simulator_enabled() else len(cuda.gpus)
    with pytest.raises(ValueError, match=f"index={count}"):
        nc.select_device(count)
