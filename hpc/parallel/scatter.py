"""The ``scatter`` data path: rank 0 holds the array; blocks travel with the buffer API.

Arrays are viewed as ``(P, R, U)``: ``P`` outer planes, ``R`` items along the split axis,
``U`` elements per item. Row splits of a batch use ``P = N*C`` planes, rows of ``U = W``
elements; splits over samples or planes use ``P = 1`` and one item per sample/plane. One
MPI datatype per array describes "item ``r`` of every plane" (a vector resized to one
item's extent), so a block of items ``[a, b)`` is ``b - a`` of those types starting at
displacement ``a``: Scatterv/Gatherv move strided row blocks of a batch without packing.

Halo blocks of overlapping windows (k > s) share input rows. The MPI standard forbids a
Scatterv whose counts/displacements read a root location more than once (MPI_SCATTERV:
"should not cause any location on the root to be read more than once"; it often works
in practice, but is not portable), so overlapping
blocks go point-to-point (``Isend`` from root per rank, same datatypes, no packing) and
disjoint ones through one ``Scatterv``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from .decomposition import Bounds, ranges_overlap

ROOT = 0


def base_type(dtype: np.dtype) -> MPI.Datatype:
    """The MPI datatype of one NumPy element (bytes when MPI has no matching type)."""
    dtype = np.dtype(dtype)
    try:
        return MPI.Datatype.fromcode(dtype.char)
    except (KeyError, ValueError):
        return MPI.BYTE.Create_contiguous(dtype.itemsize).Commit()


def item_type(dtype: np.dtype, planes: int, items: int, unit: int) -> MPI.Datatype:
    """Committed datatype for one item of every plane of a C-contiguous (planes, items,
    unit) array, with the extent of one item (so displacements count items)."""
    base = base_type(dtype)
    if planes == 1:
        t = base.Create_contiguous(unit)
    else:
        vec = base.Create_vector(planes, unit, items * unit)
        t = vec.Create_resized(0, unit * np.dtype(dtype).itemsize)
        vec.Free()
    t.Commit()
    return t


def _from_item(flat: np.ndarray, item: int, unit: int) -> np.ndarray:
    """1-D view of a flat array starting at ``item`` (the buffer start of a block)."""
    return flat[item * unit:]


def scatter_blocks(comm: Any, x: np.ndarray | None, planes: int, items: int, unit: int,
                   dtype: np.dtype, bounds: Bounds, lead: int = 0) -> np.ndarray:
    """Send items ``bounds[r]`` of every plane of root's ``x`` ((planes, items, unit),
    C-contiguous) to rank ``r``; returns this rank's (planes, lead + n_r, unit) block,
    the ``lead`` filler rows left uninitialised (their outputs are discarded)."""
    rank = comm.Get_rank()
    a, b = bounds[rank]
    local = np.empty((planes, lead + b - a, unit), dtype=dtype)
    local_flat = local.reshape(-1)
    local_t = item_type(dtype, planes, lead + b - a, unit)
    root_t = item_type(dtype, planes, items, unit) if rank == ROOT else None
    try:
        if not ranges_overlap(bounds):
            counts = [hi - lo for lo, hi in bounds]
            displs = [lo for lo, _ in bounds]
            send = [x.reshape(-1), (counts, displs), root_t] if rank == ROOT else None
            comm.Scatterv(send, [_from_item(local_flat, lead, unit), b - a, local_t], root=ROOT)
        elif rank == ROOT:
            flat = x.reshape(-1)
            requests = [comm.Isend([_from_item(flat, lo, unit), hi - lo, root_t], dest=r, tag=11)
                        for r, (lo, hi) in enumerate(bounds) if r != ROOT and hi > lo]
            local[:, lead:, :] = x.reshape(planes, items, unit)[:, a:b, :]
            MPI.Request.Waitall(requests)
        elif b > a:
            comm.Recv([_from_item(local_flat, lead, unit), b - a, local_t], source=ROOT, tag=11)
    finally:
        local_t.Free()
        if root_t is not None:
            root_t.Free()
    return local


def gather_blocks(comm: Any, local: np.ndarray, planes: int, items: int, unit: int,
                  dtype: np.dtype, bounds: Bounds) -> np.ndarray | None:
    """Inverse of ``scatter_blocks`` for disjoint blocks: rank ``r``'s C-contiguous
    (planes, n_r, unit) block lands at items ``bounds[r]`` of root's (planes, items, unit)
    result (returned on root, ``None`` elsewhere). One Gatherv, no packing."""
    rank = comm.Get_rank()
    a, b = bounds[rank]
    local = np.ascontiguousarray(local, dtype=dtype)
    if local.shape != (planes, b - a, unit):
        raise AssertionError(f"rank {rank}: block shape {local.shape} != {(planes, b - a, unit)}")
    local_t = item_type(dtype, planes, b - a, unit)
    root_t = item_type(dtype, planes, items, unit) if rank == ROOT else None
    out = np.empty((planes, items, unit), dtype=dtype) if rank == ROOT else None
    try:
        counts = [hi - lo for lo, hi in bounds]
        displs = [lo for lo, _ in bounds]
        recv = [out.reshape(-1), (counts, displs), root_t] if rank == ROOT else None
        comm.Gatherv([local.reshape(-1), b - a, local_t], recv, root=ROOT)
    finally:
        local_t.Free()
        if root_t is not None:
            root_t.Free()
    return out


def broadcast_meta(comm: Any, x: np.ndarray | None, name: str = "x") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of root's array on every rank (a small pickled tuple; the array
    itself never goes through pickle). Raises the same TypeError on every rank when root
    passed something that is not a NumPy array."""
    rank = comm.Get_rank()
    meta: tuple[Any, ...] | None = None
    if rank == ROOT:
        if not isinstance(x, np.ndarray):
            meta = ("error", f"{name} must be a NumPy array on rank 0, got {type(x).__name__}")
        else:
            meta = ("ok", tuple(int(d) for d in x.shape), x.dtype.str)
    meta = comm.bcast(meta, root=ROOT)
    if meta[0] == "error":
        raise TypeError(meta[1])
    return meta[1], np.dtype(meta[2])
