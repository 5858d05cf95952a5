"""Short per-rank throughput calibration -> weights for the weighted row split.

Every rank times its own backend on the same small sample (a band of full-width rows of
the real image width, after one warm-up call that pays JIT compilation / CUDA context /
OpenCL build), and the throughputs (output rows per second) are all-gathered, so every rank
derives the same weights and the same split.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from hpc.kernels.geometry import pool_geometry

from .compute import pool_planes


def sample_throughput(op: str, backend: str, width: int, kernel_size: Any, stride: Any,
                      padding: Any, dtype: np.dtype, rows: int = 256, repeats: int = 3,
                      seed: int = 0) -> float:
    """Output rows per second of ``backend`` on a (rows, width) sample: best of ``repeats``."""
    geom = pool_geometry(rows, width, kernel_size, stride, padding, False)
    x = np.random.default_rng(seed).standard_normal((1, rows, width)).astype(dtype)
    pool_planes(x, geom, op, backend)          # warm-up: compile / build / context
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        pool_planes(x, geom, op, backend)
        best = min(best, time.perf_counter() - t0)
    return geom.out_h / max(best, 1e-9)


def calibrate(comm: Any, op: str, backend: str, width: int, kernel_size: Any, stride: Any,
              padding: Any, dtype: np.dtype, rows: int = 256, repeats: int = 3) -> list[float]:
    """Every rank's throughput (same list on every rank), usable as split weights.

    Ranks are calibrated one after another (barrier-separated) so that oversubscribed or
    node-sharing ranks do not slow each other's measurement down.
    """
    mine = 0.0
    for turn in range(comm.Get_size()):
        if turn == comm.Get_rank():
            mine = sample_throughput(op, backend, width, kernel_size, stride, padding, dtype, rows, repeats)
        comm.Barrier()
    return [float(v) for v in comm.allgather(mine)]
