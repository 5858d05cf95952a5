"""Distributed pooling over MPI ranks, both data paths (called on every rank)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hpc.kernels import arrays
from hpc.kernels.geometry import PoolGeometry, pool_geometry

from . import parallel_io, scatter
from .compute import pool_planes, pool_row_block, to_device, to_host
from .decomposition import BatchSplit, DecompositionError, batch_split, local_plan, split
from .timing import PhaseTimer, maybe_phase

PATHS: tuple[str, ...] = ("scatter", "parallel-io")


@dataclass(frozen=True)
class PoolJob:
    """Everything every rank agrees on before any data moves."""

    shape: tuple[int, ...]
    dtype: np.dtype
    n: int
    c: int
    geom: PoolGeometry
    split: BatchSplit

    @property
    def planes(self) -> int:
        return self.n * self.c

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.shape[:-2] + (self.geom.out_h, self.geom.out_w)


def plan_job(shape: tuple[int, ...], dtype: np.dtype, op: str, kernel_size: Any, stride: Any,
             padding: Any, ceil_mode: bool, ranks: int, weights: Sequence[float] | None) -> PoolJob:
    """Validate and decompose; pure, so every rank raises the same error for bad arguments."""
    if len(shape) not in (2, 3, 4):
        raise ValueError(f"x must be 2-D (H, W), 3-D (C, H, W) or 4-D (N, C, H, W), got shape {shape}")
    allowed = arrays.FLOAT_DTYPES if op == "avg" else arrays.POOL_DTYPES
    if np.dtype(dtype).name not in allowed:
        raise TypeError(f"x has dtype {np.dtype(dtype).name}; {op}pool2d supports {', '.join(allowed)}")
    lead = shape[:-2]
    n, c = (1, 1) if not lead else (1, lead[0]) if len(lead) == 1 else lead
    if n * c == 0:
        raise DecompositionError(f"x has an empty batch (shape {shape}): nothing to distribute")
    if weights is not None and len(weights) != ranks:
        raise DecompositionError(f"weights has {len(weights)} entries for {ranks} ranks")
    geom = pool_geometry(shape[-2], shape[-1], kernel_size, stride, padding, bool(ceil_mode))
    if len(shape) == 2:      # one plane: rows are the only axis to split
        how = BatchSplit("rows", split(geom.out_h, ranks, weights, "output rows"))
    elif len(shape) == 3:    # (C, H, W): planes, else rows
        how = (BatchSplit("nc", split(c, ranks, weights, "planes")) if c >= ranks else
               BatchSplit("rows", split(geom.out_h, ranks, weights, "output rows")))
    else:
        how = batch_split(n, c, geom.out_h, ranks, weights)
    return PoolJob(tuple(shape), np.dtype(dtype), n, c, geom, how)


def _compute(job: PoolJob, local: np.ndarray, rank: int, op: str, backend: str,
             count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """This rank's output block in the (P, R, U) layout its split gathers."""
    a, b = job.split.bounds[rank]
    g = job.geom
    if job.split.axis == "rows":
        return pool_row_block(local, g, local_plan(g, a, b), op, backend, count_include_pad,
                              divisor_override)
    planes = local.reshape(-1, g.in_h, g.in_w)
    return pool_planes(planes, g, op, backend, count_include_pad, divisor_override)


def _timed_compute(job: PoolJob, local: np.ndarray, rank: int, op: str, backend: str,
                   count_include_pad: bool, divisor_override: int | None,
                   timer: PhaseTimer | None) -> np.ndarray:
    """h2d | compute | d2h phases (see hpc.parallel.compute), host result in gather layout."""
    with maybe_phase(timer, "h2d"):
        staged = to_device(local, backend)
    with maybe_phase(timer, "compute"):
        out = _compute(job, staged, rank, op, backend, count_include_pad, divisor_override)
    with maybe_phase(timer, "d2h"):
        host = to_host(out)
    if job.split.axis == "rows":
        return host
    a, b = job.split.bounds[rank]
    return host.reshape(1, b - a, -1)


def _layout(job: PoolJob, out: bool) -> tuple[int, int, int]:
    """(planes, items, unit) of the whole input or output in this split's layout."""
    g = job.geom
    h, w = (g.out_h, g.out_w) if out else (g.in_h, g.in_w)
    if job.split.axis == "rows":
        return job.planes, h, w
    if job.split.axis == "n":
        return 1, job.n, job.c * h * w
    return 1, job.planes, h * w


def pool_scatter(comm: Any, x: np.ndarray | None, op: str, kernel_size: Any, stride: Any,
                 padding: Any, ceil_mode: bool, count_include_pad: bool,
                 divisor_override: int | None, backend: str, weights: Sequence[float] | None,
                 timer: PhaseTimer | None) -> np.ndarray | None:
    rank, size = comm.Get_rank(), comm.Get_size()
    shape, dtype = scatter.broadcast_meta(comm, x)
    job = plan_job(shape, dtype, op, kernel_size, stride, padding, ceil_mode, size, weights)
    a, b = job.split.bounds[rank]
    planes, items, unit = _layout(job, out=False)
    if job.split.axis == "rows":
        plans = [local_plan(job.geom, lo, hi) for lo, hi in job.split.bounds]
        in_bounds = [(p.in_start, p.in_stop) for p in plans]
        lead = plans[rank].lead
    else:
        in_bounds, lead = job.split.bounds, 0
    root_x = np.ascontiguousarray(x) if rank == scatter.ROOT else None
    with maybe_phase(timer, "distribute"):
        local = scatter.scatter_blocks(comm, root_x, planes, items, unit, dtype, in_bounds, lead)
    out_local = _timed_compute(job, local, rank, op, backend, count_include_pad, divisor_override, timer)
    del local
    oplanes, oitems, ounit = _layout(job, out=True)
    with maybe_phase(timer, "gather"):
        out = scatter.gather_blocks(comm, out_local, oplanes, oitems, ounit, dtype, job.split.bounds)
    return None if out is None else out.reshape(job.out_shape)


def _pieces(job: PoolJob, rank: int, block: np.ndarray) -> list[parallel_io.Piece]:
    """This rank's output block as rectangles of the output dataset."""
    a, b = job.split.bounds[rank]
    g = job.geom
    lead = job.shape[:-2]
    if job.split.axis == "rows":
        data = block.reshape(lead + (b - a, g.out_w))
        ranges = tuple((0, d) for d in lead) + ((a, b), (0, g.out_w))
        return [(ranges, data)]
    if job.split.axis == "n":
        return [(((a, b), (0, job.c), (0, g.out_h), (0, g.out_w)),
                 block.reshape(b - a, job.c, g.out_h, g.out_w))]
    planes = block.reshape(b - a, g.out_h, g.out_w)
    pieces, q = [], 0
    for sample, c0, c1 in parallel_io.plane_runs(a, b, job.c):
        sub = planes[q:q + c1 - c0]
        q += c1 - c0
        if len(lead) == 2:
            pieces.append((((sample, sample + 1), (c0, c1), (0, g.out_h), (0, g.out_w)), sub[None]))
        else:
            pieces.append((((c0, c1), (0, g.out_h), (0, g.out_w)), sub))
    return pieces


def pool_parallel_io(comm: Any, x: Any, out: Any, op: str, kernel_size: Any, stride: Any,
                     padding: Any, ceil_mode: bool, count_include_pad: bool,
                     divisor_override: int | None, backend: str, weights: Sequence[float] | None,
                     timer: PhaseTimer | None) -> str:
    rank, size = comm.Get_rank(), comm.Get_size()
    if out is None:
        raise ValueError("path='parallel-io' needs out='file.h5:/dataset' for the result")
    shape, dtype = parallel_io.dataset_meta(x)
    job = plan_job(shape, dtype, op, kernel_size, stride, padding, ceil_mode, size, weights)
    a, b = job.split.bounds[rank]
    with maybe_phase(timer, "read"):
        if job.split.axis == "rows":
            plan = local_plan(job.geom, a, b)
            local = parallel_io.read_rows(x, job.planes, (plan.in_start, plan.in_stop), plan.lead)
        else:
            local = parallel_io.read_items(x, job.shape[:-2], job.split.axis, (a, b))
    block = _timed_compute(job, local, rank, op, backend, count_include_pad, divisor_override, timer)
    del local
    with maybe_phase(timer, "write"):
        result = parallel_io.write_pieces(comm, out, job.out_shape, dtype, _pieces(job, rank, block))
    return result
