"""Every pooling/matmul backend available in this process against the NumPy reference
(property-based, tests/kernel_cases.py), plus array-kind round trips.

Backends that cannot run here (no GPU, no OpenCL device) are not collected; the GPU
backends run this same harness under the CUDA simulator (tests/test_gpu_*.py) and on a
GPU machine, where they are available and therefore collected here too."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_cases import FLOAT_DTYPES, check_pool, pool_backend_variants, pool_cases

from hpc.kernels import api, arrays, avgpool2d, matmul, maxpool2d
from hpc.kernels.registry import backend_info

SLOW = {"study"}  # per-window Python loops: fewer, smaller cases

# The simulator-only numba-cuda is tested in its own subprocess (test_gpu_sim.py).
MAX_PAIRS = pool_backend_variants("maxpool2d")
AVG_PAIRS = pool_backend_variants("avgpool2d")
MATMUL_PAIRS = pool_backend_variants("matmul")


def _ids(pairs):
    return [f"{b}-{v}" if v else b for b, v in pairs]


def test_cpu_backends_are_available_here() -> None:
    """The CPU backends are hard dependencies of the suite: they must probe available."""
    for name in ("numpy", "numba", "torch"):
        info = backend_info(name)
        assert info.available, f"{name}: {info.reason}"


def _pocl_installed() -> bool:
    """Evidence independent of the backend's probe: PoCL's ICD file is registered."""
    from pathlib import Path
    return any(Path(d).glob("*pocl*.icd") for d in ("/etc/OpenCL/vendors", "/usr/local/etc/OpenCL/vendors"))


@pytest.mark.skipif(not _pocl_installed(), reason="PoCL is not installed (`make setup` installs "
                                                  "pocl-opencl-icd as root on Debian)")
def test_opencl_is_available_where_pocl_is_installed() -> None:
    info = backend_info("opencl")
    assert info.available and info.device_name, f"opencl: {info.reason}"


@pytest.mark.parametrize("backend,variant", MAX_PAIRS, ids=_ids(MAX_PAIRS))
@given(data=st.data())
@settings(max_examples=40)
def test_maxpool_matches_reference(backend, variant, data) -> None:
    small = backend in SLOW or variant == "single-task"
    case = data.draw(pool_cases(max_extra=6 if small else 12, max_planes=2 if small else 3))
    check_pool(case, "max", backend, variant)


@pytest.mark.parametrize("backend,variant", AVG_PAIRS, ids=_ids(AVG_PAIRS))
@given(data=st.data())
@settings(max_examples=40)
def test_avgpool_matches_reference(backend, variant, data) -> None:
    case = data.draw(pool_cases(dtypes=FLOAT_DTYPES))
    check_pool(case, "avg", backend, variant)


@pytest.mark.parametrize("backend,variant", MATMUL_PAIRS, ids=_ids(MATMUL_PAIRS))
@given(m=st.integers(1, 70), k=st.integers(1, 70), n=st.integers(1, 70),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15)
def test_matmul_matches_numpy(backend, variant, m, k, n, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = matmul(a, b, backend=backend, variant=variant)
    assert isinstance(got, np.ndarray) and got.dtype == a.dtype and got.shape == (m, n)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = (1e-5 if dtype == "float32" else 1e-12) * np.sqrt(k) * (1 + np.abs(want))
    assert np.all(np.abs(got - want) <= tol), np.abs(got - want).max()


@pytest.mark.parametrize("backend,variant", MATMUL_PAIRS, ids=_ids(MATMUL_PAIRS))
@pytest.mark.parametrize("m,k,n", [(70, 300, 1100), (129, 257, 1025)])
def test_matmul_past_the_kernel_blocking(backend, variant, m, k, n) -> None:
    """Sizes beyond numba's blocking (64 rows, k-blocks of 128, n-blocks of 1024) and with
    ragged last blocks, which the small hypothesis sizes above never reach; checked with
    the float32-accumulation tolerance (hpc.kernels.tolerance)."""
    from hpc.kernels import tolerance
    rng = np.random.default_rng(m + k + n)
    a = (rng.random((m, k), dtype=np.float32) * 2 - 1)
    b = (rng.random((k, n), dtype=np.float32) * 2 - 1)
    got = matmul(a, b, backend=backend, variant=variant)
    assert got.shape == (m, n)
    assert tolerance.matmul_error_ratio(got, a, b) <= tolerance.MATMUL_TOL_FACTOR


@pytest.mark.parametrize("backend", [b for b, _ in MAX_PAIRS if b not in SLOW] or ["numpy"])
def test_large_single_plane_is_split_over_rows(backend) -> None:
    """A single plane larger than one task: exercises the row-block split of numba (and
    work-group tiling of OpenCL) including blocks that end mid-image."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((517, 389)).astype(np.float32)
    x[100, 200] = np.nan
    for k, s, p, cm in ((2, 2, 0, False), (3, 2, 1, True), (3, 1, 1, False)):
        want = api.maxpool2d(x, k, s, p, cm, backend="numpy")
        np.testing.assert_array_equal(maxpool2d(x, k, s, p, cm, backend=backend), want)


@pytest.mark.parametrize("backend", sorted({b for b, _ in MAX_PAIRS}))
def test_torch_in_torch_out(backend) -> None:
    x = torch.arange(2 * 3 * 9 * 7, dtype=torch.float32).reshape(2, 3, 9, 7)
    got = maxpool2d(x, 3, 2, 1, backend=backend)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    want = torch.nn.functional.max_pool2d(x, 3, 2, 1)
    assert torch.equal(got, want)


@pytest.mark.parametrize("shape", [(9, 7), (3, 9, 7), (2, 3, 9, 7)])
def test_output_rank_follows_input(shape) -> None:
    x = np.random.default_rng(0).standard_normal(shape)
    assert maxpool2d(x, 2).shape == shape[:-2] + (4, 3)
    assert avgpool2d(x, 2).shape == shape[:-2] + (4, 3)


def test_empty_batch_gives_empty_result() -> None:
    x = np.zeros((0, 3, 8, 8), dtype=np.float32)
    out = maxpool2d(x, 2)
    assert out.shape == (0, 3, 4, 4) and out.dtype == np.float32
    t = avgpool2d(torch.zeros(0, 1, 6, 6), 3)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == (0, 1, 2, 2)


def test_auto_backend_follows_the_array_kind() -> None:
    assert api.auto_backend(np.zeros((4, 4)), "maxpool2d") == "numba"
    assert api.auto_backend(torch.zeros(4, 4), "maxpool2d") == "torch"
    assert api.auto_backend(np.zeros((4, 4)), "matmul") == "numpy"


def test_arrays_kinds_and_zero_copy() -> None:
    t = torch.arange(6.0).reshape(2, 3)
    n = arrays.to_numpy(t)
    n[0, 0] = 42.0  # CPU tensor -> NumPy shares memory
    assert t[0, 0].item() == 42.0
    assert arrays.array_kind(t) == "torch" and arrays.array_kind(n) == "numpy"
    assert arrays.dtype_name(t) == "float32"
    back = arrays.convert_like(n, t)
    assert isinstance(back, torch.Tensor)
    with pytest.raises(TypeError, match="NumPy array, torch tensor"):
        arrays.array_kind([[1.0, 2.0]])


def test_import_does_not_pull_in_torch_or_cupy() -> None:
    """NumPy-only use must not import torch/CuPy (cost, and they may be absent)."""
    code = ("import sys, numpy as np; import hpc.kernels as k; "
            "k.maxpool2d(np.ones((6, 6), np.float32), 2); k.matmul(np.ones((2, 2)), np.ones((2, 2)));"
            "print(sorted(m for m in ('torch', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
