"""CuPy and torch-CUDA kernels: run whenever a GPU (and CuPy) is present, skip with the
reason otherwise. Without CuPy the backend must still import and say why it cannot run."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from hpc.kernels import api, backend_cupy
from hpc.kernels.backend_numpy import pool_numpy
from hpc.kernels.geometry import pool_geometry
from hpc.kernels.registry import BackendUnavailableError, backend_info

CUPY_OK, CUPY_REASON, _ = backend_cupy.probe()
needs_cupy = pytest.mark.skipif(not CUPY_OK, reason=f"cupy backend unavailable: {CUPY_REASON}")


def _torch_cuda() -> tuple[bool, str]:
    import torch
    if not torch.cuda.is_available():
        return False, f"no CUDA GPU for torch {torch.__version__}"
    return True, ""


TORCH_CUDA_OK, TORCH_CUDA_REASON = _torch_cuda()
needs_torch_cuda = pytest.mark.skipif(not TORCH_CUDA_OK, reason=TORCH_CUDA_REASON)


def test_cupy_backend_explains_why_it_cannot_run() -> None:
    info = backend_info("cupy")
    assert info.ops == {"maxpool2d", "avgpool2d", "matmul"}
    if importlib.util.find_spec("cupy") is None:
        assert not info.available and "cupy not installed" in info.reason
    if not info.available:
        with pytest.raises(BackendUnavailableError, match="backend='cupy'"):
            api.maxpool2d(np.zeros((1, 1, 4, 4), np.float32), 2, backend="cupy")


POOLS = [((2, 3, 17, 19), 2, 2, 0, False), ((1, 4, 33, 31), 3, 2, 1, True), ((3, 2, 9, 9), (3, 2), (1, 2), (1, 1), False)]


@pytest.mark.gpu
@needs_cupy
@pytest.mark.parametrize("shape,k,s,p,ceil", POOLS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32", "uint8"])
def test_cupy_pool_matches_reference(shape, k, s, p, ceil, dtype) -> None:
    import cupy
    x = np.random.default_rng(0).integers(0, 10, shape).astype(dtype) if dtype[0] in "iu" \
        else np.random.default_rng(0).standard_normal(shape).astype(dtype)
    geom = pool_geometry(shape[2], shape[3], k, s, p, ceil)
    got = api.maxpool2d(cupy.asarray(x), k, s, p, ceil, backend="cupy")
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(got.get(), pool_numpy(x, geom, "max"))
    if dtype.startswith("float"):
        tol = 2e-3 if dtype == "float16" else 1e-6
        got = api.avgpool2d(x, k, s, p, ceil, backend="cupy")
        np.testing.assert_allclose(got, pool_numpy(x, geom, "avg"), rtol=tol, atol=tol)


@pytest.mark.gpu
@needs_cupy
@pytest.mark.parametrize("variant", sorted(backend_cupy.VARIANTS))
def test_cupy_matmul(variant) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 129)).astype(np.float32)
    b = rng.standard_normal((129, 257)).astype(np.float32)
    got = api.matmul(a, b, backend="cupy", variant=variant)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.gpu
@needs_torch_cuda
def test_torch_cuda_pool_and_numba_cuda_keep_torch_tensors() -> None:
    import torch
    x = np.random.default_rng(2).standard_normal((2, 3, 21, 22)).astype(np.float32)
    t = torch.from_numpy(x).cuda()
    geom = pool_geometry(21, 22, 3, 2, 1)
    for backend in ("torch", "numba-cuda") + (("cupy",) if CUPY_OK else ()):
        got = api.maxpool2d(t, 3, 2, 1, backend=backend)
        assert isinstance(got, torch.Tensor) and got.is_cuda
        np.testing.assert_array_equal(got.cpu().numpy(), pool_numpy(x, geom, "max"))
