"""CuPy backend: pooling as one RawModule kernel launch, matmul via cuBLAS or a RawKernel.

Same pooling design as the numba-cuda backend (see its docstring): a 3-D grid of
grid-stride loops (x = output column, so a warp reads contiguous input, y = output row,
z = N*C plane), one thread per output element, windows clipped to the image (torch's -inf
padding for max, ``count_include_pad`` divisor for avg), NaN propagating, the whole tensor
in a single launch, data kept on the device. Kernels are C++ templates instantiated per
dtype through ``RawModule(name_expressions=...)``.

Matmul variants: ``cublas`` (``cupy.matmul``; TF32 stays off unless ``CUPY_TF32=1``) and
``rawkernel`` (128x128 block tile, BK=8, 8x8 register micro-tile per thread, the same
algorithm as numba-cuda's ``regblock``).

CuPy is the optional extra ``gpu`` (``pip install -e '.[gpu]'`` -> cupy-cuda12x); this
module imports without it and ``probe()`` says why it cannot run.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from hpc.kernels import arrays
from hpc.kernels.geometry import PoolGeometry

NAME = "cupy"
DEVICE_KIND = "cuda"
OPS = frozenset({"maxpool2d", "avgpool2d", "matmul"})
VARIANTS: dict[str, str] = {
    "cublas": "matmul: cupy.matmul -> cuBLAS GEMM (FP32 without TF32 by default)",
    "rawkernel": "matmul: RawKernel, 128x128 block tile with 8x8 register micro-tiles",
}
MATMUL_VARIANTS = VARIANTS
POOL_VARIANTS: dict[str, str] = {}
DEFAULT_VARIANT = "cublas"

_CTYPE = {
    "float16": "__half", "float32": "float", "float64": "double",
    "int8": "signed char", "uint8": "unsigned char", "int16": "short",
    "int32": "int", "int64": "long long",
}
_BLOCK = (32, 8, 1)
_MAX_GRID_YZ = 65535

# Pooling source: generic templates, plus the __half specialisations in the float16
# module only. Each dtype is its own RawModule, compiled on first use: float16 needs
# <cuda_fp16.h>, which NVRTC finds only where the CUDA headers are installed (the
# ``cupy-cuda12x[ctk]`` extra, or a CUDA toolkit with CUDA_PATH set); compiling every dtype
# in one module let a missing header break float32 pooling too.
_POOL_COMMON = r"""
template <typename T, typename A> __device__ __forceinline__ A to_acc(T v) { return (A)v; }
template <typename T, typename A> __device__ __forceinline__ T from_acc(A v) { return (T)v; }
template <typename T> __device__ __forceinline__ bool gt_or_nan(T v, T m) { return v > m || v != v; }
"""
_POOL_HALF = r"""
#include <cuda_fp16.h>
template <> __device__ __forceinline__ float to_acc<__half, float>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ __half from_acc<__half, float>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ bool gt_or_nan<__half>(__half v, __half m) {
    return __hgt(v, m) || __hisnan(v);
}
"""
_POOL_KERNELS = r"""
template <typename T>
__global__ void maxpool(const T* __restrict__ x, T* __restrict__ out, long long planes,
                        int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw) {
    for (long long p = blockIdx.z; p < planes; p += gridDim.z) {
        const T* xp = x + p * (long long)H * W;
        T* op = out + p * (long long)OH * OW;
        for (int oy = blockIdx.y * blockDim.y + threadIdx.y; oy < OH; oy += gridDim.y * blockDim.y) {
            int h0 = oy * sh - ph, hs = max(h0, 0), he = min(h0 + kh, H);
            for (int ox = blockIdx.x * blockDim.x + threadIdx.x; ox < OW; ox += gridDim.x * blockDim.x) {
                int w0 = ox * sw - pw, ws = max(w0, 0), we = min(w0 + kw, W);
                T m = xp[(long long)hs * W + ws];
                for (int i = hs; i < he; ++i) {
                    const T* row = xp + (long long)i * W;
                    for (int j = ws; j < we; ++j) {
                        T v = row[j];
                        if (gt_or_nan(v, m)) m = v;
                    }
                }
                op[(long long)oy * OW + ox] = m;
            }
        }
    }
}

// A: the accumulator, float for float/__half input, double for double (see accumulator_ctype).
template <typename T, typename A>
__global__ void avgpool(const T* __restrict__ x, T* __restrict__ out, long long planes,
                        int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
                        int include_pad, int override_div) {
    for (long long p = blockIdx.z; p < planes; p += gridDim.z) {
        const T* xp = x + p * (long long)H * W;
        T* op = out + p * (long long)OH * OW;
        for (int oy = blockIdx.y * blockDim.y + threadIdx.y; oy < OH; oy += gridDim.y * blockDim.y) {
            int h0 = oy * sh - ph, hs = max(h0, 0), he = min(h0 + kh, H);
            int hp = min(h0 + kh, H + ph) - h0;
            for (int ox = blockIdx.x * blockDim.x + threadIdx.x; ox < OW; ox += gridDim.x * blockDim.x) {
                int w0 = ox * sw - pw, ws = max(w0, 0), we = min(w0 + kw, W);
                A acc = (A)0;
                for (int i = hs; i < he; ++i) {
                    const T* row = xp + (long long)i * W;
                    for (int j = ws; j < we; ++j) acc += to_acc<T, A>(row[j]);
                }
                int div = override_div != 0 ? override_div
                        : include_pad ? hp * (min(w0 + kw, W + pw) - w0)
                        : (he - hs) * (we - ws);
                op[(long long)oy * OW + ox] = from_acc<T, A>(acc / (A)div);
            }
        }
    }
}
"""


def accumulator_ctype(dtype: Any) -> str:
    """C type of the average-pooling accumulator: double for float64, float otherwise."""
    return "double" if np.dtype(dtype) == np.float64 else "float"


def pool_source(dtype: Any) -> tuple[str, list[str]]:
    """(CUDA source, name expressions) of the pooling module for one dtype."""
    name = np.dtype(dtype).name
    if name not in _CTYPE:
        raise TypeError(f"dtype {name}: cupy pooling supports {', '.join(_CTYPE)}")
    ctype = _CTYPE[name]
    code = _POOL_COMMON + (_POOL_HALF if name == "float16" else "") + _POOL_KERNELS
    names = [f"maxpool<{ctype}>"]
    if np.dtype(dtype).kind == "f":
        names.append(f"avgpool<{ctype}, {accumulator_ctype(dtype)}>")
    return code, names


_BM, _BN, _BK, _TM, _TN = 128, 128, 8, 8, 8
_MATMUL_SOURCE = r"""
template <typename T>
__global__ void __launch_bounds__(256) regblock(const T* __restrict__ A, const T* __restrict__ B,
                                                T* __restrict__ C, int M, int N, int K) {
    const int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8, TX = 16, TY = 16, NT = 256;
    __shared__ T As[BK][BM];
    __shared__ T Bs[BK][BN];
    T acc[TM][TN];
    T a_reg[TM], b_reg[TN];
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * TX + tx;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = (T)0;
    for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
        for (int r = 0; r < (BM * BK) / NT; ++r) {
            int idx = tid + r * NT, ar = idx / BK, ac = idx % BK;
            int gr = row0 + ar, gc = k0 + ac;
            As[ac][ar] = (gr < M && gc < K) ? A[(long long)gr * K + gc] : (T)0;
        }
#pragma unroll
        for (int r = 0; r < (BK * BN) / NT; ++r) {
            int idx = tid + r * NT, br = idx / BN, bc = idx % BN;
            int gr = k0 + br, gc = col0 + bc;
            Bs[br][bc] = (gr < K && gc < N) ? B[(long long)gr * N + gc] : (T)0;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
#pragma unroll
            for (int i = 0; i < TM; ++i) a_reg[i] = As[kk][ty + i * TY];
#pragma unroll
            for (int j = 0; j < TN; ++j) b_reg[j] = Bs[kk][tx + j * TX];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] += a_reg[i] * b_reg[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int gr = row0 + ty + i * TY;
        if (gr >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            int gc = col0 + tx + j * TX;
            if (gc < N) C[(long long)gr * N + gc] = acc[i][j];
        }
    }
}
"""


def probe() -> tuple[bool, str, str]:
    """Available with CuPy installed and a CUDA GPU visible; never raises."""
    try:
        import cupy
    except ImportError:
        return False, "cupy not installed (optional extra 'gpu': pip install cupy-cuda12x)", ""
    except Exception as exc:
        return False, f"cupy import failed: {exc}", ""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no CUDA GPU ({type(exc).__name__}: {exc})", ""
    if count < 1:
        return False, "no CUDA GPU (cupy sees 0 devices)", ""
    try:
        dev = cupy.cuda.Device()
        name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"]
        return True, "", name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:
        return False, f"no usable CUDA GPU ({type(exc).__name__}: {exc})", ""


@functools.lru_cache(maxsize=None)
def _pool_module(dtype_name: str) -> Any:
    """The pooling module of one dtype, compiled by NVRTC on first use (see pool_source)."""
    import cupy
    code, names = pool_source(dtype_name)
    try:
        return cupy.RawModule(code=code, options=("--std=c++14",), name_expressions=names)
    except Exception as exc:
        hint = (" float16 needs <cuda_fp16.h>: pip install 'cupy-cuda12x[ctk]' or point CUDA_PATH "
                "at a CUDA toolkit" if dtype_name == "float16" else "")
        raise RuntimeError(f"cupy: compiling the {dtype_name} pooling kernels failed: {exc}.{hint}") from exc


@functools.lru_cache(maxsize=None)
def _matmul_module() -> Any:
    import cupy
    names = ["regblock<float>", "regblock<double>"]
    return cupy.RawModule(code=_MATMUL_SOURCE, options=("--std=c++14",), name_expressions=names)


def pool_launch_config(n_planes: int, out_h: int, out_w: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    grid = (math.ceil(out_w / _BLOCK[0]), min(math.ceil(out_h / _BLOCK[1]), _MAX_GRID_YZ),
            min(n_planes, _MAX_GRID_YZ))
    return grid, _BLOCK


def pool_launcher(x: Any, out: Any, geom: PoolGeometry, op: str, count_include_pad: bool = True,
                  divisor_override: int | None = None) -> Any:
    """A zero-argument function launching the pooling kernel on these arrays (the module
    compiled and the function looked up once, here, outside any timed loop)."""
    dname = np.dtype(x.dtype).name
    ctype = _CTYPE[dname]
    expr = f"maxpool<{ctype}>" if op == "max" else f"avgpool<{ctype}, {accumulator_ctype(dname)}>"
    if op not in ("max", "avg"):
        raise ValueError(f"op={op!r}: expected 'max' or 'avg'")
    kernel = _pool_module(dname).get_function(expr)
    n, c, h, w = x.shape
    grid, block = pool_launch_config(n * c, geom.out_h, geom.out_w)
    args = [np.int64(n * c), np.int32(h), np.int32(w), np.int32(geom.out_h), np.int32(geom.out_w),
            np.int32(geom.kernel[0]), np.int32(geom.kernel[1]), np.int32(geom.stride[0]),
            np.int32(geom.stride[1]), np.int32(geom.padding[0]), np.int32(geom.padding[1])]
    if op == "avg":
        args += [np.int32(bool(count_include_pad)), np.int32(divisor_override or 0)]
    full = (x, out, *args)
    return lambda: kernel(grid, block, full)


def pool2d_device(x: Any, out: Any, geom: PoolGeometry, op: str, count_include_pad: bool,
                  divisor_override: int | None = None) -> None:
    """Launch on C-contiguous CuPy arrays (x: N,C,H,W; out preallocated); asynchronous."""
    pool_launcher(x, out, geom, op, count_include_pad, divisor_override)()


def pool2d(x: Any, geom: PoolGeometry, op: str, count_include_pad: bool = True,
           divisor_override: int | None = None) -> Any:
    """Pool a 4-D array on the GPU; returns a CuPy array (api converts back to x's kind)."""
    import cupy
    xc = cupy.ascontiguousarray(arrays.to_cupy(x))
    out = cupy.empty((xc.shape[0], xc.shape[1], geom.out_h, geom.out_w), dtype=xc.dtype)
    pool2d_device(xc, out, geom, op, count_include_pad, divisor_override)
    return out


def matmul_device(a: Any, b: Any, c: Any, variant: str = DEFAULT_VARIANT) -> None:
    """C = A @ B on C-contiguous CuPy arrays, asynchronous."""
    import cupy
    if variant == "cublas":
        cupy.matmul(a, b, out=c)
        return
    if variant != "rawkernel":
        raise ValueError(f"variant={variant!r}: cupy matmul variants are {sorted(VARIANTS)}")
    ctype = _CTYPE[np.dtype(a.dtype).name]
    kernel = _matmul_module().get_function(f"regblock<{ctype}>")
    m, k = a.shape
    n = b.shape[1]
    grid = (math.ceil(n / _BN), math.ceil(m / _BM), 1)
    kernel(grid, (16, 16, 1), (a, b, c, np.int32(m), np.int32(n), np.int32(k)))


def matmul(a: Any, b: Any, variant: str | None = None) -> Any:
    import cupy
    ac = cupy.ascontiguousarray(arrays.to_cupy(a))
    bc = cupy.ascontiguousarray(arrays.to_cupy(b))
    c = cupy.empty((ac.shape[0], bc.shape[1]), dtype=ac.dtype)
    matmul_device(ac, bc, c, variant or DEFAULT_VARIANT)
    return c
