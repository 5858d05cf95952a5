"""Compile every CUDA kernel to PTX for real GPUs (sm_80, sm_90) without needing a GPU.

The simulator checks what the kernels compute but not that numba can *compile* them
(typing of shared/local array shapes, float16 conversions, ...), nor the CuPy CUDA C
sources. This does, whenever the CUDA compiler libraries (NVVM for numba, NVRTC for the
CuPy sources) can be found, e.g. from the nvidia-nvvm / nvidia-cuda-nvrtc wheels with
CUDA_HOME and LD_LIBRARY_PATH pointing at them; otherwise it skips with the reason.
"""
from __future__ import annotations

import numpy as np
import pytest

from hpc.kernels import backend_cupy, backend_numba_cuda as nc, backend_study, cuda_common

if cuda_common.simulator_enabled():
    pytest.skip("the CUDA simulator cannot compile PTX", allow_module_level=True)


def _nvvm_reason() -> str:
    import numba
    from numba import cuda

    def probe(x):
        x[0] = 1.0
    try:
        cuda.compile_ptx(probe, (numba.float32[::1],), cc=(8, 0))
        return ""
    except Exception as exc:
        return f"numba cannot compile PTX here ({type(exc).__name__}: {str(exc)[:120]})"


NVVM_REASON = _nvvm_reason()
needs_nvvm = pytest.mark.skipif(bool(NVVM_REASON), reason=NVVM_REASON or "ok")


@needs_nvvm
@pytest.mark.parametrize("cc", [(8, 0), (9, 0)])
def test_numba_cuda_kernels_compile(cc) -> None:
    import numba
    from numba import cuda
    i64 = numba.int64
    for dt in ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64"):
        max_k, avg_k = nc._pool_kernels(nc.accumulator_dtype(dt).name)
        arr = numba.from_dtype(np.dtype(dt))[:, :, :, ::1]
        cuda.compile_ptx(max_k.py_func, (arr, arr) + (i64,) * 7, cc=cc)
        if dt.startswith("float"):
            cuda.compile_ptx(avg_k.py_func, (arr, arr) + (i64,) * 7 + (numba.boolean, i64), cc=cc)
    for dt in ("float32", "float64"):
        mat = numba.from_dtype(np.dtype(dt))[:, ::1]
        for name, kernel in {**nc._matmul_kernels(dt), **backend_study._kernels(dt)}.items():
            ptx, _ = cuda.compile_ptx(kernel.py_func, (mat, mat, mat), cc=cc)
            if name == "regblock":  # the 8x8 accumulators must live in registers
                assert ".local" not in ptx


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
        err, _, _ = nvrtc.nvrtcVersion()
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            return None, f"NVRTC unusable: {err}"
        return nvrtc, ""
    except Exception as exc:
        return None, f"NVRTC not found ({type(exc).__name__}: {str(exc)[:120]})"


@pytest.mark.parametrize("source,names", [
    *[backend_cupy.pool_source(dt) for dt in backend_cupy._CTYPE],
    (backend_cupy._MATMUL_SOURCE, ["regblock<float>", "regblock<double>"]),
], ids=[f"pool-{dt}" for dt in backend_cupy._CTYPE] + ["matmul"])
def test_cupy_sources_compile_with_nvrtc(source, names) -> None:
    import os
    nvrtc, reason = _nvrtc()
    if nvrtc is None:
        pytest.skip(reason)
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"k.cu", 0, [], [])
    for n in names:
        nvrtc.nvrtcAddNameExpression(prog, n.encode())
    opts = [b"--std=c++14", b"-arch=compute_90"]
    if os.environ.get("CUDA_HOME"):
        opts.append(f"-I{os.environ['CUDA_HOME']}/include".encode())
    (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    _, size = nvrtc.nvrtcGetProgramLogSize(prog)
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, log)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS and b"cuda_fp16.h" in log and b"cannot open" in log:
        assert "cuda_fp16.h" in source, "only the float16 module may need the CUDA headers"
        pytest.skip("NVRTC found but not the CUDA headers (set CUDA_HOME)")
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, log.decode(errors="replace")


def test_only_the_float16_pool_module_includes_cuda_headers() -> None:
    """A missing <cuda_fp16.h> must not break float32 pooling (each dtype compiles alone)."""
    for dt in backend_cupy._CTYPE:
        code, names = backend_cupy.pool_source(dt)
        assert ("#include" in code) == (dt == "float16"), dt
        assert names[0].startswith("maxpool<")
        assert any(n.startswith("avgpool<") for n in names) == dt.startswith("float")
    assert backend_cupy.pool_source("float16")[1][1] == "avgpool<__half, float>"
    assert backend_cupy.pool_source("float64")[1][1] == "avgpool<double, double>"
