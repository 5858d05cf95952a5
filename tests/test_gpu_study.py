"""The study's per-window GPU round trip (matmul1/2/3 kernels) vs the NumPy reference.

Needs numba.cuda in this process: a GPU, or the simulator subprocess started by
tests/test_gpu_sim.py. Tiny images: every window is a separate host->device->host trip
and, under the simulator, every CUDA thread a Python thread.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from hpc.kernels import api, backend_study, cuda_common
from hpc.kernels.backend_numpy import pool_numpy
from hpc.kernels.geometry import pool_geometry
from hpc.kernels.registry import BackendUnavailableError

AVAILABLE, REASON, _ = cuda_common.numba_cuda_probe()
needs_cuda = pytest.mark.skipif(
    not AVAILABLE, reason=f"numba.cuda cannot run in this process ({REASON}); "
                          "tests/test_gpu_sim.py runs this file under the CUDA simulator")


def _gpu_present() -> bool:
    from hpc.kernels.gpu_check import NoGpuError, find_gpu
    try:
        return bool(find_gpu())
    except NoGpuError:
        return False


def test_gpu_variants_report_why_they_cannot_run() -> None:
    for variant in backend_study.GPU_VARIANTS:
        ok, reason = backend_study.probe_variant(variant)
        simulated = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
        assert ok == (simulated or _gpu_present())  # evidence independent of the probes
        if not ok:
            with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
                api.maxpool2d(np.zeros((4, 4), np.float32), 2, backend="study", variant=variant)


@needs_cuda
@pytest.mark.parametrize("variant", backend_study.GPU_VARIANTS)
def test_study_gpu_roundtrip_pooling(variant) -> None:
    x = np.random.default_rng(0).integers(0, 10, (1, 1, 4, 4)).astype(np.float32)  # the study's images
    x[0, 0, 3, 3] = np.inf
    got = api.maxpool2d(x, 2, backend="study", variant=variant)
    np.testing.assert_array_equal(got, pool_numpy(x, pool_geometry(4, 4, 2), "max"))
    y = np.random.default_rng(1).integers(0, 10, (1, 1, 5, 5)).astype(np.int32)
    got = api.maxpool2d(y, 3, 2, 1, backend="study", variant=variant)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, pool_numpy(y, pool_geometry(5, 5, 3, 2, 1), "max"))


@needs_cuda
@pytest.mark.parametrize("variant", backend_study.GPU_VARIANTS)
def test_study_gpu_matmul(variant) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((20, 17)), rng.standard_normal((17, 19))
    np.testing.assert_allclose(api.matmul(a, b, backend="study", variant=variant), a @ b,
                               rtol=1e-12, atol=1e-12)
