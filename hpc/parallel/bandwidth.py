"""The node's copy bandwidth measured with the same ranks as the kernels.

Pooling reads every input byte once and writes a quarter as much: it is memory-bandwidth
bound. The honest bound for N ranks is what N ranks achieve together with the simplest
streaming kernel on the memory each rank's kernel works in, run concurrently (barrier
before and after, time = slowest rank): ``np.copyto`` of each rank's share for host ranks,
a device-to-device copy of it for GPU ranks (their kernel reads device memory; the
host<->device copies are timed as their own phases). Bytes are counted as read + written,
like the kernels.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from mpi4py import MPI


def copy_kind(device_kind: str) -> str:
    """What a rank of ``device_kind`` copies to measure its bound."""
    return "device memcpy" if device_kind == "cuda" else "np.copyto"


def _copier(nbytes: int, device_kind: str) -> Callable[[], None]:
    n = max(1, nbytes // 4)
    if device_kind == "cuda":
        from numba import cuda
        src = cuda.to_device(np.ones(n, dtype=np.float32))
        dst = cuda.device_array(n, dtype=np.float32)

        def copy() -> None:
            dst.copy_to_device(src)
            cuda.synchronize()
        return copy
    src_h = np.ones(n, dtype=np.float32)
    dst_h = np.empty_like(src_h)
    return lambda: np.copyto(dst_h, src_h)


def copy_bandwidth(comm: Any, nbytes_per_rank: int, device_kind: str = "cpu",
                   repeats: int = 5) -> dict[str, Any]:
    """Aggregate GB/s (1e9 bytes/s, read + write) of concurrent per-rank copies: median
    over ``repeats`` after one warm-up; also each rank's own median GB/s and copy kind."""
    nbytes = max(4, (nbytes_per_rank // 4) * 4)
    copy = _copier(nbytes, device_kind)
    copy()                                   # warm-up: page faults, caches, CUDA context
    totals, own = [], []
    for _ in range(repeats):
        comm.Barrier()
        t0 = MPI.Wtime()
        copy()
        mine = MPI.Wtime() - t0
        comm.Barrier()
        totals.append(MPI.Wtime() - t0)
        own.append(mine)
    moved = 2 * nbytes * comm.Get_size()
    total = float(np.median(totals))
    per_rank = comm.allgather(2 * nbytes / float(np.median(own)) / 1e9)
    kinds = comm.allgather(copy_kind(device_kind))
    return {"copy_bandwidth_gbs": moved / total / 1e9, "copy_s": total,
            "copy_bytes": moved, "rank_copy_bandwidth_gbs": per_rank, "rank_copy_kind": kinds}
