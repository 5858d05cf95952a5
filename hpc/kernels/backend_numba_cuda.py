"""numba.cuda backend: pooling in one launch for the whole (N, C, H, W) tensor, three matmuls.

Pooling design (why it should run at the memory-bandwidth limit):
- one thread per output element, the thread grid is 3-D: x runs along output columns
  (so a warp reads one contiguous stretch of an input row -> coalesced), y along output
  rows, z over the N*C planes; each dimension is a grid-stride loop, so one launch covers
  any tensor (a single 16384^2 plane or a 128x512x27x27 batch) and no integer division
  per element is needed;
- the window is clipped to the image instead of reading padding, which gives torch's
  -inf padding for max (and works for integer images, which have no -inf) and the
  ``count_include_pad`` divisor for avg; NaN propagates (``v != v`` wins);
- data stays on the device: CUDA arrays (numba device arrays, CuPy, torch CUDA) are
  viewed zero-copy through ``__cuda_array_interface__`` and the result is of the same
  kind; NumPy inputs are copied in and out (the benchmark passes device arrays so that
  transfer time is measured separately).

Matmul variants: ``naive`` (one thread per C element), ``shared`` (16x16 shared-memory
tiles, the study's matmul3 with bounds handling), ``regblock`` (128x128 block tile, BK=8,
256 threads each accumulating an 8x8 micro-tile in registers, interleaved so shared
memory reads are conflict-free and stores coalesced).

Kernels are built lazily (first use) so importing this module never touches CUDA.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from hpc.kernels import cuda_common
from hpc.kernels.cuda_common import select_device  # noqa: F401  (re-exported for hpc.parallel)
from hpc.kernels.geometry import PoolGeometry

NAME = "numba-cuda"
DEVICE_KIND = "cuda"
OPS = frozenset({"maxpool2d", "avgpool2d", "matmul"})
VARIANTS: dict[str, str] = {
    "naive": "matmul: one thread per output element, operands from global memory",
    "shared": "matmul: 16x16 shared-memory tiles (the study's matmul3, bounds-safe)",
    "regblock": "matmul: 128x128 block tile, 8x8 register micro-tile per thread",
}
DEFAULT_VARIANT = "regblock"
MATMUL_VARIANTS = VARIANTS
POOL_VARIANTS: dict[str, str] = {}  # pooling has one kernel per op

# pooling launch shape: 32 threads along W (one warp per row stretch), 8 rows
_POOL_BLOCK = (32, 8)
_POOL_BLOCK_SIM = (4, 2)  # the simulator runs every thread as a Python thread
_MAX_GRID_YZ = 65535

# register-blocked matmul tile sizes (compile-time constants)
_BM = 128
_BN = 128
_BK = 8
_TM = 8
_TN = 8
_TY = _BM // _TM  # 16 thread rows
_TX = _BN // _TN  # 16 thread columns
_NT = _TX * _TY   # 256 threads
_TPB = 16         # tile of the study-style shared-memory kernel

# numba.cuda, bound on first use. It must be a *module global* named ``cuda``: the CUDA
# simulator runs kernels by swapping every global that is numba.cuda for a fake module.
cuda: Any = None


def _cuda() -> Any:
    global cuda
    if cuda is None:
        from numba import cuda as numba_cuda
        cuda = numba_cuda
    return cuda


def probe() -> tuple[bool, str, str]:
    """Available when numba.cuda sees a GPU (or runs on its simulator)."""
    return cuda_common.numba_cuda_probe()


# --------------------------------------------------------------------------- pooling
def accumulator_dtype(dtype: Any) -> np.dtype:
    """Average-pooling accumulator: float32 for float32/float16 input, float64 for float64
    (float64 arithmetic runs at 1/2 to 1/64 of float32 speed on GPUs; a window of <= 9
    float32 terms loses < 5 ulp, far inside the reference tolerance)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


@functools.lru_cache(maxsize=None)
def _pool_kernels(acc_name: str = "float32") -> tuple[Any, Any]:
    """The two pooling kernels, the avg one accumulating in ``acc_name``."""
    _cuda()
    acc_t = getattr(np, acc_name)
    zero = acc_t(0)

    @cuda.jit
    def max_kernel(x, out, C, kh, kw, sh, sw, ph, pw):
        H = x.shape[2]
        W = x.shape[3]
        OH = out.shape[2]
        OW = out.shape[3]
        planes = out.shape[0] * out.shape[1]
        ox0 = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        oy0 = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
        xstep = cuda.gridDim.x * cuda.blockDim.x
        ystep = cuda.gridDim.y * cuda.blockDim.y
        for p in range(cuda.blockIdx.z, planes, cuda.gridDim.z):
            n = p // C
            c = p - n * C
            for oy in range(oy0, OH, ystep):
                h0 = oy * sh - ph
                hs = max(h0, 0)
                he = min(h0 + kh, H)
                for ox in range(ox0, OW, xstep):
                    w0 = ox * sw - pw
                    ws = max(w0, 0)
                    we = min(w0 + kw, W)
                    m = x[n, c, hs, ws]
                    for i in range(hs, he):
                        for j in range(ws, we):
                            v = x[n, c, i, j]
                            if v > m or v != v:
                                m = v
                    out[n, c, oy, ox] = m

    @cuda.jit
    def avg_kernel(x, out, C, kh, kw, sh, sw, ph, pw, include_pad, override):
        H = x.shape[2]
        W = x.shape[3]
        OH = out.shape[2]
        OW = out.shape[3]
        planes = out.shape[0] * out.shape[1]
        ox0 = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        oy0 = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
        xstep = cuda.gridDim.x * cuda.blockDim.x
        ystep = cuda.gridDim.y * cuda.blockDim.y
        for p in range(cuda.blockIdx.z, planes, cuda.gridDim.z):
            n = p // C
            c = p - n * C
            for oy in range(oy0, OH, ystep):
                h0 = oy * sh - ph
                hs = max(h0, 0)
                he = min(h0 + kh, H)
                hp = min(h0 + kh, H + ph) - h0  # rows counted with padding (torch)
                for ox in range(ox0, OW, xstep):
                    w0 = ox * sw - pw
                    ws = max(w0, 0)
                    we = min(w0 + kw, W)
                    acc = zero
                    for i in range(hs, he):
                        for j in range(ws, we):
                            acc += x[n, c, i, j]
                    if override != 0:
                        div = override
                    elif include_pad:
                        div = hp * (min(w0 + kw, W + pw) - w0)
                    else:
                        div = (he - hs) * (we - ws)
                    out[n, c, oy, ox] = acc / acc_t(div)

    return max_kernel, avg_kernel


def pool_launch_config(n_planes: int, out_h: int, out_w: int) -> tuple[tuple[int, int, int], tuple[int, int]]:
    """(grid, block) for the pooling kernels; pure so tests can check the capping."""
    block = _POOL_BLOCK_SIM if cuda_common.simulator_enabled() else _POOL_BLOCK
    gx = math.ceil(out_w / block[0])
    gy = min(math.ceil(out_h / block[1]), _MAX_GRID_YZ)
    gz = min(n_planes, _MAX_GRID_YZ)
    if cuda_common.simulator_enabled():  # exercise the grid-stride loops, keep it quick
        gx, gy, gz = min(gx, 2), min(gy, 2), min(gz, 2)
    return (gx, gy, gz), block


def pool_launcher(xd: Any, outd: Any, geom: PoolGeometry, op: str, count_include_pad: bool = True,
                  divisor_override: int | None = None) -> Any:
    """A zero-argument function launching the pooling kernel on these device views.

    The kernel is specialised to the arguments' types once, here (``Dispatcher.specialize``,
    cached by numba per signature), and the launch configuration is bound, so calling the
    result does no type dispatch or compilation: what the benchmark's timed loop needs."""
    if op not in ("max", "avg"):
        raise ValueError(f"op={op!r}: expected 'max' or 'avg'")
    max_kernel, avg_kernel = _pool_kernels(accumulator_dtype(xd.dtype).name)
    N, C = xd.shape[0], xd.shape[1]
    grid, block = pool_launch_config(N * C, geom.out_h, geom.out_w)
    args: tuple[Any, ...] = (xd, outd, C, geom.kernel[0], geom.kernel[1], geom.stride[0],
                             geom.stride[1], geom.padding[0], geom.padding[1])
    if op == "max":
        kernel = max_kernel
    else:
        kernel = avg_kernel
        args += (bool(count_include_pad), int(divisor_override or 0))
    configured = kernel.specialize(*args)[grid, block]
    return lambda: configured(*args)


def pool2d_device(xd: Any, outd: Any, geom: PoolGeometry, op: str, count_include_pad: bool,
                  divisor_override: int | None = None) -> None:
    """Launch one pooling kernel on numba device views (no allocation, no copies, async)."""
    pool_launcher(xd, outd, geom, op, count_include_pad, divisor_override)()


def pool2d(x: Any, geom: PoolGeometry, op: str, count_include_pad: bool = True,
           divisor_override: int | None = None) -> Any:
    """Pool a 4-D tensor; the result is the same array kind as ``x`` (see module doc)."""
    xd, kind = cuda_common.to_numba_device(x)
    dtype = np.dtype(xd.dtype)
    shape = (xd.shape[0], xd.shape[1], geom.out_h, geom.out_w)
    out, outd = cuda_common.empty_like_kind(kind, x, shape, dtype)
    pool2d_device(xd, outd, geom, op, count_include_pad, divisor_override)
    return cuda_common.finish(kind, out, outd)


# --------------------------------------------------------------------------- matmul
@functools.lru_cache(maxsize=None)
def _matmul_kernels(dtype_name: str) -> dict[str, Any]:
    """Build the three matmul kernels for one float dtype (shared arrays need it fixed)."""
    import numba
    _cuda()

    nbt = getattr(numba, dtype_name)
    zero = getattr(np, dtype_name)(0)
    TPB, BM, BN, BK, TM, TN, TX, TY, NT = _TPB, _BM, _BN, _BK, _TM, _TN, _TX, _TY, _NT
    A_LOADS = (BM * BK) // NT
    B_LOADS = (BK * BN) // NT
    ACC = TM * TN  # a plain constant: local/shared array shapes must be compile-time literals

    @cuda.jit
    def naive(A, B, C):
        j, i = cuda.grid(2)  # x along columns: coalesced reads of B and writes of C
        if i < C.shape[0] and j < C.shape[1]:
            acc = zero
            for k in range(A.shape[1]):
                acc += A[i, k] * B[k, j]
            C[i, j] = acc

    @cuda.jit
    def shared(A, B, C):
        sA = cuda.shared.array(shape=(TPB, TPB), dtype=nbt)
        sB = cuda.shared.array(shape=(TPB, TPB), dtype=nbt)
        x, y = cuda.grid(2)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        K = A.shape[1]
        acc = zero
        for t in range((K + TPB - 1) // TPB):
            k0 = t * TPB
            sA[ty, tx] = A[y, k0 + tx] if (y < A.shape[0] and k0 + tx < K) else zero
            sB[ty, tx] = B[k0 + ty, x] if (x < B.shape[1] and k0 + ty < K) else zero
            cuda.syncthreads()
            for j in range(TPB):
                acc += sA[ty, j] * sB[j, tx]
            cuda.syncthreads()
        if y < C.shape[0] and x < C.shape[1]:
            C[y, x] = acc

    @cuda.jit
    def regblock(A, B, C):
        As = cuda.shared.array(shape=(BK, BM), dtype=nbt)  # A tile, transposed
        Bs = cuda.shared.array(shape=(BK, BN), dtype=nbt)
        acc = cuda.local.array(ACC, dtype=nbt)
        a_reg = cuda.local.array(TM, dtype=nbt)
        b_reg = cuda.local.array(TN, dtype=nbt)
        M = A.shape[0]
        K = A.shape[1]
        N = B.shape[1]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        for r in range(ACC):
            acc[r] = zero
        for k0 in range(0, K, BK):
            for r in range(A_LOADS):
                idx = tid + r * NT
                ar = idx // BK
                ac = idx - ar * BK
                gr = row0 + ar
                gc = k0 + ac
                As[ac, ar] = A[gr, gc] if (gr < M and gc < K) else zero
            for r in range(B_LOADS):
                idx = tid + r * NT
                br = idx // BN
                bc = idx - br * BN
                gr = k0 + br
                gc = col0 + bc
                Bs[br, bc] = B[gr, gc] if (gr < K and gc < N) else zero
            cuda.syncthreads()
            for kk in range(BK):
                for i in range(TM):
                    a_reg[i] = As[kk, ty + i * TY]   # interleaved rows: broadcast reads
                for j in range(TN):
                    b_reg[j] = Bs[kk, tx + j * TX]   # interleaved cols: conflict-free
                for i in range(TM):
                    for j in range(TN):
                        acc[i * TN + j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()
        for i in range(TM):
            gr = row0 + ty + i * TY
            if gr < M:
                for j in range(TN):
                    gc = col0 + tx + j * TX
                    if gc < N:
                        C[gr, gc] = acc[i * TN + j]

    return {"naive": naive, "shared": shared, "regblock": regblock}


def matmul_launcher(ad: Any, bd: Any, cd: Any, variant: str = DEFAULT_VARIANT) -> Any:
    """A zero-argument function launching one matmul kernel (specialised once, see
    ``pool_launcher``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: numba-cuda matmul variants are {sorted(VARIANTS)}")
    kernels = _matmul_kernels(np.dtype(ad.dtype).name)
    M, N = cd.shape
    if variant == "regblock":
        grid, block = (math.ceil(N / _BN), math.ceil(M / _BM)), (_TX, _TY)
    else:
        grid, block = (math.ceil(N / _TPB), math.ceil(M / _TPB)), (_TPB, _TPB)
    configured = kernels[variant].specialize(ad, bd, cd)[grid, block]
    return lambda: configured(ad, bd, cd)


def matmul_device(ad: Any, bd: Any, cd: Any, variant: str = DEFAULT_VARIANT) -> None:
    """Launch one matmul kernel on numba device views (async, no allocation)."""
    matmul_launcher(ad, bd, cd, variant)()


def matmul(a: Any, b: Any, variant: str | None = None) -> Any:
    """C = A @ B for 2-D float32/float64 of the same dtype; result in ``a``'s array kind."""
    variant = variant or DEFAULT_VARIANT
    ad, kind = cuda_common.to_numba_device(a)
    bd, _ = cuda_common.to_numba_device(b)
    out, cd = cuda_common.empty_like_kind(kind, a, (ad.shape[0], bd.shape[1]), np.dtype(ad.dtype))
    matmul_device(ad, bd, cd, variant)
    return cuda_common.finish(kind, out, cd)
