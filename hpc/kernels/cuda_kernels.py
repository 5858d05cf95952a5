"""Two tiny numba-cuda kernels the GPU timing needs: fill (the L2 flush) and copy (the
copy-kernel half of the device copy bound). Built on first use, like the backend's
kernels, so importing this never touches CUDA; 1-D grid-stride loops over flat views."""
from __future__ import annotations

import functools
from typing import Any

from hpc.kernels import cuda_common

cuda: Any = None  # module global, as the simulator requires (see backend_numba_cuda)


@functools.lru_cache(maxsize=None)
def _kernels() -> tuple[Any, Any]:
    global cuda
    from numba import cuda as numba_cuda
    cuda = numba_cuda

    @cuda.jit
    def fill_kernel(buf, value):
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for i in range(start, buf.size, step):
            buf[i] = value

    @cuda.jit
    def copy_kernel(dst, src):
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for i in range(start, src.size, step):
            dst[i] = src[i]

    return fill_kernel, copy_kernel


def _flat(a: Any) -> Any:
    return a.reshape(a.size) if len(a.shape) != 1 else a


def _blocks(n: int) -> tuple[int, int]:
    threads = 4 if cuda_common.simulator_enabled() else 256
    return cuda_common.launch_blocks((n + threads - 1) // threads, per_sm=8), threads


def fill(buf: Any, value: float) -> None:
    fill_kernel, _ = _kernels()
    flat = _flat(buf)
    blocks, threads = _blocks(flat.size)
    fill_kernel[blocks, threads](flat, value)


def copy(dst: Any, src: Any) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"copy: dst shape {tuple(dst.shape)} != src shape {tuple(src.shape)}")
    _, copy_kernel = _kernels()
    d, s = _flat(dst), _flat(src)
    blocks, threads = _blocks(s.size)
    copy_kernel[blocks, threads](d, s)
