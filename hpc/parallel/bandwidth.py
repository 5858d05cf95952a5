"""The node's copy bandwidth measured with the same ranks as the kernels.

Pooling reads every input byte once and writes a quarter as much: it is memory-bandwidth
bound. The honest bound for N ranks is what N ranks achieve together with the simplest
streaming kernel, ``np.copyto`` of each rank's share, run concurrently (barrier before and
after, time = slowest rank). Bytes are counted as read + written, like the kernels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI


def copy_bandwidth(comm: Any, nbytes_per_rank: int, repeats: int = 5) -> dict[str, Any]:
    """Aggregate GB/s (1e9 bytes/s, read + write) of concurrent per-rank copies: median
    over ``repeats`` after one warm-up; also each rank's own median GB/s."""
    n = max(1, nbytes_per_rank // 4)
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)                      # warm-up: page faults, caches
    totals, own = [], []
    for _ in range(repeats):
        comm.Barrier()
        t0 = MPI.Wtime()
        np.copyto(dst, src)
        mine = MPI.Wtime() - t0
        comm.Barrier()
        totals.append(MPI.Wtime() - t0)
        own.append(mine)
    moved = 2 * src.nbytes * comm.Get_size()
    total = float(np.median(totals))
    per_rank = comm.allgather(2 * src.nbytes / float(np.median(own)) / 1e9)
    return {"copy_bandwidth_gbs": moved / total / 1e9, "copy_s": total,
            "copy_bytes": moved, "rank_copy_bandwidth_gbs": per_rank}
