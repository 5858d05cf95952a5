"""The study's method, re-created faithfully so the report can show it next to fast kernels.

The study this suite grew from computed 2x2 max pooling like this: for every window,
extract it, multiply it by an identity matrix (a matmul), take the max of the product.
Serially on a CPU that is NumPy per window inside Python loops; on the GPU every window
was copied to the device, multiplied by one of three hand-written numba.cuda kernels
(matmul1 naive, matmul2 branchy, matmul3 shared-memory tiles), copied back, and the max
taken on the CPU. That is slow *on purpose*: per-window Python and transfer overhead
dominates, and time grows 4x per doubling of the image side. Do not use this backend for
anything but side-by-side tables.

Variants (``variant=`` on pool2d and matmul):
- ``serial``: NumPy per window (``window @ I``, then ``max``), Python loops;
- ``gpu-roundtrip-matmul1|2|3``: per window host->device copy of the window and the
  identity, one kernel launch, device->host copy, max on the CPU. Needs a CUDA GPU (or
  numba's simulator, which the tests use on tiny shapes).

Generalisations beyond the study (which did k=2, s=2, no padding): any k x k / stride,
padding handled by clipping the window to the image (identical to -inf padding for max,
and it keeps integer images exact), ``ceil_mode`` via the shared geometry.

Two numerical notes, both documented rather than hidden: ``0 * inf`` is NaN, so the
literal identity product turns a window containing +-inf into NaN; we keep the product
(its cost is the point) but return the window's true max when the product is NaN and the
window has no NaN, so the backend agrees with torch. The GPU variants compute in float64
for dtypes other than float32/float64 (exact for every integer below 2**53 and float16).

The study's kernel sources are not part of this repository; matmul1 and matmul3 follow
the numba documentation's naive and shared-memory examples (which the study's
descriptions match), matmul2 is the naive kernel with per-element branches (bounds
checks and a zero-skip inside the k loop), as its name in the study says.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from hpc.kernels import arrays, cuda_common
from hpc.kernels.geometry import PoolGeometry
from hpc.kernels.registry import BackendUnavailableError

NAME = "study"
DEVICE_KIND = "cpu"  # the serial default; GPU variants use the CUDA device
OPS = frozenset({"maxpool2d", "matmul"})
VARIANTS: dict[str, str] = {
    "serial": "per-window NumPy identity matmul + max in Python loops (the study's CPU run)",
    "gpu-roundtrip-matmul1": "per-window copy to GPU, naive numba.cuda matmul, copy back, CPU max",
    "gpu-roundtrip-matmul2": "per-window copy to GPU, branchy numba.cuda matmul, copy back, CPU max",
    "gpu-roundtrip-matmul3": "per-window copy to GPU, shared-memory tiled matmul, copy back, CPU max",
}
DEFAULT_VARIANT = "serial"
GPU_VARIANTS = tuple(v for v in VARIANTS if v.startswith("gpu-"))
TPB = 16  # the study's shared-memory tile / threads per block side

cuda: Any = None  # numba.cuda, bound lazily; a module global so the simulator can swap it


def probe() -> tuple[bool, str, str]:
    """The serial variant always runs; GPU variants are checked by ``probe_variant``."""
    # the backend's device is the CPU (serial variant); a GPU variant's records name its
    # numba.cuda device (hpc.kernels.device_record), so the probe never says GPU here
    return True, "", "CPU (serial NumPy per window)"


def probe_variant(variant: str) -> tuple[bool, str]:
    """(available, reason) for one variant: GPU round-trip variants need numba.cuda."""
    if variant not in VARIANTS:
        return False, f"variant={variant!r} is not a study variant; choose from {', '.join(VARIANTS)}"
    if variant in GPU_VARIANTS:
        ok, reason, _ = cuda_common.numba_cuda_probe()
        return ok, reason
    return True, ""


def _require(variant: str) -> None:
    ok, reason = probe_variant(variant)
    if not ok:
        if variant in VARIANTS:
            raise BackendUnavailableError(f"backend='study' variant={variant!r} is not available here: {reason}")
        raise ValueError(reason)


# --------------------------------------------------------------------------- GPU kernels
@functools.lru_cache(maxsize=None)
def _kernels(dtype_name: str) -> dict[str, Any]:
    """The study's three matmul kernels for one float dtype."""
    global cuda
    import numba
    from numba import cuda as numba_cuda
    cuda = numba_cuda
    nbt = getattr(numba, dtype_name)

    @cuda.jit
    def matmul1(A, B, C):
        """Naive: one thread per C[i, j]."""
        i, j = cuda.grid(2)
        if i < C.shape[0] and j < C.shape[1]:
            tmp = 0.
            for k in range(A.shape[1]):
                tmp += A[i, k] * B[k, j]
            C[i, j] = tmp

    @cuda.jit
    def matmul2(A, B, C):
        """Branchy: early exits and a branch per term inside the k loop."""
        i, j = cuda.grid(2)
        if i >= C.shape[0]:
            return
        if j >= C.shape[1]:
            return
        tmp = 0.
        for k in range(A.shape[1]):
            if k < B.shape[0]:
                a = A[i, k]
                if a != 0:
                    tmp += a * B[k, j]
        C[i, j] = tmp

    @cuda.jit
    def matmul3(A, B, C):
        """Shared-memory tiles of TPB x TPB (numba docs' fast_matmul, bounds-safe)."""
        sA = cuda.shared.array(shape=(TPB, TPB), dtype=nbt)
        sB = cuda.shared.array(shape=(TPB, TPB), dtype=nbt)
        x, y = cuda.grid(2)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tmp = 0.
        for i in range((A.shape[1] + TPB - 1) // TPB):
            sA[ty, tx] = 0
            sB[ty, tx] = 0
            if y < A.shape[0] and (tx + i * TPB) < A.shape[1]:
                sA[ty, tx] = A[y, tx + i * TPB]
            if x < B.shape[1] and (ty + i * TPB) < B.shape[0]:
                sB[ty, tx] = B[ty + i * TPB, x]
            cuda.syncthreads()
            for j in range(TPB):
                tmp += sA[ty, j] * sB[j, tx]
            cuda.syncthreads()
        if y < C.shape[0] and x < C.shape[1]:
            C[y, x] = tmp

    return {"matmul1": matmul1, "matmul2": matmul2, "matmul3": matmul3}


def _gpu_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.name in ("float32", "float64") else np.dtype(np.float64)


def _launch(kernel_name: str, da: Any, db: Any, dc: Any) -> None:
    kernel = _kernels(np.dtype(da.dtype).name)[kernel_name]
    M, N = dc.shape
    blocks = (math.ceil(N / TPB), math.ceil(M / TPB))
    if kernel_name == "matmul3":  # x along columns
        kernel[blocks, (TPB, TPB)](da, db, dc)
    else:  # matmul1/2 index (i, j) = grid(2): x along rows, as in the docs example
        kernel[(blocks[1], blocks[0]), (TPB, TPB)](da, db, dc)


def gpu_roundtrip_matmul(a: np.ndarray, b: np.ndarray, kernel_name: str) -> np.ndarray:
    """Host arrays in, host array out: copy both operands, launch, copy the product back."""
    from numba import cuda as numba_cuda
    da = numba_cuda.to_device(np.ascontiguousarray(a))
    db = numba_cuda.to_device(np.ascontiguousarray(b))
    dc = numba_cuda.device_array((a.shape[0], b.shape[1]), dtype=a.dtype)
    _launch(kernel_name, da, db, dc)
    return dc.copy_to_host()


# --------------------------------------------------------------------------- pooling
def _window_max(window: np.ndarray, product: np.ndarray) -> Any:
    m = product.max()
    if m != m and not np.isnan(window).any():  # 0 * inf = NaN in the identity product
        m = window.max()
    return m


def pool_study(a: np.ndarray, geom: PoolGeometry, variant: str = DEFAULT_VARIANT) -> np.ndarray:
    """Max pooling of a 4-D NumPy array, one window at a time (see module docstring)."""
    _require(variant)
    n_, c_ = a.shape[:2]
    out = np.empty((n_, c_, geom.out_h, geom.out_w), dtype=a.dtype)
    gpu_kernel = variant.rsplit("-", 1)[1] if variant in GPU_VARIANTS else None
    work_dtype = _gpu_dtype(a.dtype) if gpu_kernel else a.dtype
    eyes: dict[int, np.ndarray] = {}
    with np.errstate(invalid="ignore"):  # 0 * inf in the identity product, see above
        _pool_loops(a, out, geom, gpu_kernel, work_dtype, eyes)
    return out


def _pool_loops(a: np.ndarray, out: np.ndarray, geom: PoolGeometry, gpu_kernel: str | None,
                work_dtype: np.dtype, eyes: dict[int, np.ndarray]) -> None:
    n_, c_, h, w = a.shape
    (kh, kw), (sh, sw), (ph, pw) = geom.kernel, geom.stride, geom.padding
    for n in range(n_):
        for c in range(c_):
            plane = a[n, c]
            for oy in range(geom.out_h):
                r0 = oy * sh - ph
                rs, re_ = max(r0, 0), min(r0 + kh, h)
                for ox in range(geom.out_w):
                    c0 = ox * sw - pw
                    cs, ce = max(c0, 0), min(c0 + kw, w)
                    window = plane[rs:re_, cs:ce]
                    cols = window.shape[1]
                    eye = eyes.get(cols)
                    if eye is None:
                        eye = eyes[cols] = np.identity(cols, dtype=work_dtype)
                    if gpu_kernel is None:
                        product = window @ eye
                    else:
                        product = gpu_roundtrip_matmul(window.astype(work_dtype), eye, gpu_kernel)
                    out[n, c, oy, ox] = _window_max(window, product)


def pool2d(x: Any, geom: PoolGeometry, op: str, count_include_pad: bool = True,
           variant: str | None = None) -> np.ndarray:
    """Backend entry point: max pooling only (the study did max); NumPy result."""
    if op != "max":
        raise ValueError(f"op={op!r}: backend='study' implements max pooling only")
    return pool_study(arrays.to_numpy(x), geom, variant or DEFAULT_VARIANT)


# --------------------------------------------------------------------------- matmul
def matmul_serial(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One dot product per output element in Python loops (no BLAS blocking)."""
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n), dtype=np.result_type(a, b))
    bt = np.ascontiguousarray(b.T)
    for i in range(m):
        row = a[i]
        for j in range(n):
            out[i, j] = np.dot(row, bt[j])
    return out


def matmul(a: Any, b: Any, variant: str | None = None) -> np.ndarray:
    """The study's matmul: serial loops, or one GPU kernel with host round trip."""
    variant = variant or DEFAULT_VARIANT
    _require(variant)
    a_np, b_np = arrays.to_numpy(a), arrays.to_numpy(b)
    if variant == "serial":
        return matmul_serial(a_np, b_np)
    return gpu_roundtrip_matmul(a_np, b_np, variant.rsplit("-", 1)[1])
