"""Distributed matmul: 1-D row blocks and SUMMA on a 2-D process grid.

``rows``: rank r gets rows ``bounds[r]`` of A (Scatterv) and all of B (Bcast), computes its
rows of C, and C is gathered (Gatherv). Memory per rank grows with B, so it suits tall A.

``summa`` (van de Geijn & Watts): ranks form a ``pr x pc`` grid; rank (i, j) owns block
(i, j) of A (rows split over grid rows, the inner dimension over grid columns), of B (inner
dimension over grid rows, columns over grid columns) and of C. For each inner-dimension
panel the owner column broadcasts its A panel along the grid row and the owner row its B
panel along the grid column; every rank accumulates ``C_ij += A_panel @ B_panel``. Blocks
travel between root and grid with MPI subarray datatypes (no packing on root).

Phases (with a ``PhaseTimer``) mean the same for both: every transfer of operands between
ranks is ``distribute`` (``rows``: Scatterv of A + Bcast of B; ``summa``: block sends, the
communicator split and the panel broadcasts), local products are ``compute``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from hpc.kernels import api

from . import parallel_io, scatter
from .decomposition import (DecompositionError, even_split, grid_coords, process_grid, split,
                            summa_panels)
from .timing import PhaseTimer, maybe_phase

ALGORITHMS: tuple[str, ...] = ("rows", "summa")
ROOT = 0


def _check(shape_a: tuple[int, ...], shape_b: tuple[int, ...], dtype_a: np.dtype, dtype_b: np.dtype) -> None:
    if len(shape_a) != 2 or len(shape_b) != 2:
        raise ValueError(f"matmul: a and b must be 2-D, got shapes {shape_a} and {shape_b}")
    if shape_a[1] != shape_b[0]:
        raise ValueError(f"matmul: shapes cannot be multiplied ({shape_a[0]}x{shape_a[1]} and "
                         f"{shape_b[0]}x{shape_b[1]})")
    if dtype_a != dtype_b or dtype_a.name not in ("float32", "float64"):
        raise TypeError(f"matmul: a and b must both be float32 or both float64, got {dtype_a} and {dtype_b}")


def _local_matmul(a: np.ndarray, b: np.ndarray, backend: str) -> np.ndarray:
    if a.shape[0] == 0 or b.shape[1] == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=a.dtype)
    return np.asarray(api.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b), backend=backend))


def _subarray(dtype: np.dtype, shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> MPI.Datatype:
    t = scatter.base_type(dtype).Create_subarray(
        list(shape), [rows[1] - rows[0], cols[1] - cols[0]], [rows[0], cols[0]])
    t.Commit()
    return t


def _send_blocks(comm: Any, full: np.ndarray | None, shape: tuple[int, int], dtype: np.dtype,
                 blocks: list[tuple[tuple[int, int], tuple[int, int]]]) -> np.ndarray:
    """Root sends block ``blocks[r]`` (row range, col range) of ``full`` to rank r."""
    rank = comm.Get_rank()
    (r0, r1), (c0, c1) = blocks[rank]
    local = np.empty((r1 - r0, c1 - c0), dtype=dtype)
    if rank == ROOT:
        types, reqs = [], []
        for r, (rows, cols) in enumerate(blocks):
            if r == ROOT or rows[1] == rows[0] or cols[1] == cols[0]:
                continue
            t = _subarray(dtype, shape, rows, cols)
            types.append(t)
            reqs.append(comm.Isend([full, 1, t], dest=r, tag=21))
        local[...] = full[r0:r1, c0:c1]
        MPI.Request.Waitall(reqs)
        for t in types:
            t.Free()
    elif local.size:
        comm.Recv(local, source=ROOT, tag=21)
    return local


def _gather_blocks(comm: Any, local: np.ndarray, shape: tuple[int, int], dtype: np.dtype,
                   blocks: list[tuple[tuple[int, int], tuple[int, int]]]) -> np.ndarray | None:
    rank = comm.Get_rank()
    if rank != ROOT:
        if local.size:
            comm.Send(np.ascontiguousarray(local), dest=ROOT, tag=22)
        return None
    out = np.empty(shape, dtype=dtype)
    types, reqs = [], []
    for r, (rows, cols) in enumerate(blocks):
        if r == ROOT or rows[1] == rows[0] or cols[1] == cols[0]:
            continue
        t = _subarray(dtype, shape, rows, cols)
        types.append(t)
        reqs.append(comm.Irecv([out, 1, t], source=r, tag=22))
    (r0, r1), (c0, c1) = blocks[ROOT]
    out[r0:r1, c0:c1] = local
    MPI.Request.Waitall(reqs)
    for t in types:
        t.Free()
    return out


def summa_layout(m: int, k: int, n: int, grid: tuple[int, int]) -> dict[str, Any]:
    """Row/column splits of A, B, C over a ``grid`` (pure; shared by both data paths)."""
    pr, pc = grid
    if min(m, n) < 1 or k < 1:
        raise ValueError(f"matmul: empty operand ({m}x{k} @ {k}x{n})")
    if m < pr or n < pc or k < max(pr, pc):
        raise DecompositionError(f"cannot run SUMMA for {m}x{k} @ {k}x{n} on a {pr}x{pc} grid: "
                                 f"every grid row/column needs at least one row/column of A, B and C")
    return {"m": even_split(m, pr), "n": even_split(n, pc),
            "ka": even_split(k, pc), "kb": even_split(k, pr)}


def _summa_multiply(comm: Any, grid: tuple[int, int], lay: dict[str, Any], a_loc: np.ndarray,
                    b_loc: np.ndarray, k: int, backend: str, timer: PhaseTimer | None = None) -> np.ndarray:
    """The SUMMA loop on local blocks; returns this rank's C block.

    Phases mean what they mean for the row algorithm: moving operands between ranks (the
    communicator split and every panel broadcast) is ``distribute``, local products are
    ``compute`` (one pair of phases per panel; both accumulate)."""
    i, j = grid_coords(comm.Get_rank(), grid)
    with maybe_phase(timer, "distribute"):
        row_comm = comm.Split(color=i, key=j)
        col_comm = comm.Split(color=j, key=i)
    try:
        m_i = lay["m"][i][1] - lay["m"][i][0]
        n_j = lay["n"][j][1] - lay["n"][j][0]
        c_loc = np.zeros((m_i, n_j), dtype=a_loc.dtype)
        for k0, k1, owner_a, owner_b in summa_panels(k, lay["ka"], lay["kb"]):
            with maybe_phase(timer, "distribute"):
                if j == owner_a:
                    off = lay["ka"][j][0]
                    a_pan = np.ascontiguousarray(a_loc[:, k0 - off:k1 - off])
                else:
                    a_pan = np.empty((m_i, k1 - k0), dtype=a_loc.dtype)
                row_comm.Bcast(a_pan, root=owner_a)
                if i == owner_b:
                    off = lay["kb"][i][0]
                    b_pan = np.ascontiguousarray(b_loc[k0 - off:k1 - off, :])
                else:
                    b_pan = np.empty((k1 - k0, n_j), dtype=a_loc.dtype)
                col_comm.Bcast(b_pan, root=owner_b)
            with maybe_phase(timer, "compute"):
                c_loc += _local_matmul(a_pan, b_pan, backend)
        return c_loc
    finally:
        row_comm.Free()
        col_comm.Free()


def matmul_scatter(comm: Any, a: np.ndarray | None, b: np.ndarray | None, algorithm: str,
                   backend: str, grid: tuple[int, int] | None,
                   timer: PhaseTimer | None) -> np.ndarray | None:
    rank, size = comm.Get_rank(), comm.Get_size()
    shape_a, dtype_a = scatter.broadcast_meta(comm, a, "a")
    shape_b, dtype_b = scatter.broadcast_meta(comm, b, "b")
    _check(shape_a, shape_b, dtype_a, dtype_b)
    m, k = shape_a
    n = shape_b[1]
    if algorithm == "rows":
        bounds = split(m, size, None, "rows of a")
        with maybe_phase(timer, "distribute"):
            a_loc = scatter.scatter_blocks(comm, np.ascontiguousarray(a) if rank == ROOT else None,
                                           1, m, k, dtype_a, bounds)[0]
            b_all = np.ascontiguousarray(b) if rank == ROOT else np.empty((k, n), dtype=dtype_b)
            comm.Bcast(b_all, root=ROOT)
        with maybe_phase(timer, "compute"):
            c_loc = _local_matmul(a_loc, b_all, backend)
        with maybe_phase(timer, "gather"):
            c = scatter.gather_blocks(comm, c_loc[None], 1, m, n, dtype_a, bounds)
        return None if c is None else c[0]
    if algorithm != "summa":
        raise ValueError(f"algorithm={algorithm!r}: choose from {', '.join(ALGORITHMS)}")
    grid = _grid(grid, size)
    lay = summa_layout(m, k, n, grid)
    pc = grid[1]
    a_blocks = [(lay["m"][r // pc], lay["ka"][r % pc]) for r in range(size)]
    b_blocks = [(lay["kb"][r // pc], lay["n"][r % pc]) for r in range(size)]
    c_blocks = [(lay["m"][r // pc], lay["n"][r % pc]) for r in range(size)]
    with maybe_phase(timer, "distribute"):
        a_loc = _send_blocks(comm, np.ascontiguousarray(a) if rank == ROOT else None, (m, k), dtype_a, a_blocks)
        b_loc = _send_blocks(comm, np.ascontiguousarray(b) if rank == ROOT else None, (k, n), dtype_a, b_blocks)
    c_loc = _summa_multiply(comm, grid, lay, a_loc, b_loc, k, backend, timer)
    with maybe_phase(timer, "gather"):
        return _gather_blocks(comm, c_loc, (m, n), dtype_a, c_blocks)


def _grid(grid: tuple[int, int] | None, size: int) -> tuple[int, int]:
    if grid is None:
        return process_grid(size)
    pr, pc = (int(g) for g in grid)
    if pr * pc != size or pr < 1:
        raise DecompositionError(f"grid={grid!r} does not have {size} ranks")
    return pr, pc


def _read_block(spec: Any, rows: tuple[int, int], cols: tuple[int, int], default: str) -> np.ndarray:
    import h5py
    path, name = parallel_io.parse_spec(spec, default)
    with h5py.File(path, "r") as fh:
        dset = fh[name]
        out = np.empty((rows[1] - rows[0], cols[1] - cols[0]), dtype=dset.dtype)
        if out.size:
            dset.read_direct(out, np.s_[rows[0]:rows[1], cols[0]:cols[1]])
    return out


def matmul_parallel_io(comm: Any, a: Any, b: Any, out: Any, algorithm: str, backend: str,
                       grid: tuple[int, int] | None, timer: PhaseTimer | None) -> str:
    """Each rank reads its blocks of A and B from HDF5 and writes its block of C."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if out is None:
        raise ValueError("path='parallel-io' needs out='file.h5:/dataset' for the result")
    shape_a, dtype_a = parallel_io.dataset_meta(a, "a")
    shape_b, dtype_b = parallel_io.dataset_meta(b, "b")
    _check(shape_a, shape_b, dtype_a, dtype_b)
    m, k = shape_a
    n = shape_b[1]
    if algorithm == "rows":
        rows = split(m, size, None, "rows of a")[rank]
        with maybe_phase(timer, "read"):
            a_loc = _read_block(a, rows, (0, k), "a")
            b_loc = _read_block(b, (0, k), (0, n), "b")
        with maybe_phase(timer, "compute"):
            c_loc = _local_matmul(a_loc, b_loc, backend)
        c_range = (rows, (0, n))
    elif algorithm == "summa":
        grid = _grid(grid, size)
        lay = summa_layout(m, k, n, grid)
        i, j = grid_coords(rank, grid)
        with maybe_phase(timer, "read"):
            a_loc = _read_block(a, lay["m"][i], lay["ka"][j], "a")
            b_loc = _read_block(b, lay["kb"][i], lay["n"][j], "b")
        c_loc = _summa_multiply(comm, grid, lay, a_loc, b_loc, k, backend, timer)
        c_range = (lay["m"][i], lay["n"][j])
    else:
        raise ValueError(f"algorithm={algorithm!r}: choose from {', '.join(ALGORITHMS)}")
    with maybe_phase(timer, "write"):
        return parallel_io.write_pieces(comm, out, (m, n), dtype_a, [(c_range, c_loc)], "c")
