"""The ``parallel-io`` data path: every rank reads and writes only its own hyperslabs.

Reading: each rank opens the input HDF5 file read-only and reads the rows it needs
(``read_direct`` into its own buffer); no rank ever holds the whole image.

Writing: with an MPI-enabled h5py (``h5py.get_config().mpi``) all ranks open one output
file with the ``mpio`` driver and write their slabs into one dataset. Without it (PyPI's
h5py, as here) each rank writes its slab to its own file ``<out>.parts/part-<rank>.h5`` and
rank 0 writes, from metadata only, the output file holding an HDF5 *virtual dataset* that
maps every slab into place: readers see one dataset, and no root ever gathers the data.
Source paths in the virtual dataset are relative to the output file's directory, so the
output stays valid when the directory is moved.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from hpc.atomic import atomic_path, ensure_writable_dir

ROOT = 0
Piece = tuple[tuple[tuple[int, int], ...], np.ndarray]   # (per-dim [lo, hi) ranges, data)


class DatasetSpecError(ValueError):
    """An HDF5 dataset argument is malformed, or the file/dataset does not exist."""


def parse_spec(spec: str | os.PathLike[str] | tuple[str, str], default_dataset: str) -> tuple[Path, str]:
    """``"file.h5:/name"``, ``("file.h5", "name")`` or ``"file.h5"`` (dataset
    ``default_dataset``) -> (file path, dataset name)."""
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise DatasetSpecError(f"dataset spec {spec!r}: expected (file, dataset)")
        return Path(spec[0]), str(spec[1]).lstrip("/") or default_dataset
    text = os.fspath(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head and tail.startswith("/"):
        return Path(head), tail.lstrip("/") or default_dataset
    return Path(text), default_dataset


def spec_str(path: Path, name: str) -> str:
    return f"{path}:/{name}"


def dataset_meta(spec: Any, default_dataset: str = "images") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an HDF5 dataset; a clear error naming file and dataset if absent."""
    path, name = parse_spec(spec, default_dataset)
    if not path.is_file():
        raise DatasetSpecError(f"{path}: input HDF5 file not found")
    with h5py.File(path, "r") as fh:
        if name not in fh or not isinstance(fh[name], h5py.Dataset):
            raise DatasetSpecError(f"{path}: has no dataset {name!r} (datasets: {list(fh)})")
        dset = fh[name]
        return tuple(int(d) for d in dset.shape), dset.dtype


def read_rows(spec: Any, planes: int, row_range: tuple[int, int], lead: int,
              default_dataset: str = "images") -> np.ndarray:
    """Rows ``[a, b)`` of every plane of a (..., H, W) dataset as a (planes, lead + b - a, W)
    array (the first ``lead`` rows uninitialised filler)."""
    path, name = parse_spec(spec, default_dataset)
    a, b = row_range
    with h5py.File(path, "r") as fh:
        dset = fh[name]
        width = dset.shape[-1]
        local = np.empty(tuple(dset.shape[:-2]) + (lead + b - a, width), dtype=dset.dtype)
        if b > a:
            dset.read_direct(local, np.s_[..., a:b, :], np.s_[..., lead:, :])
    local = local.reshape(planes, lead + b - a, width)
    return local


def read_items(spec: Any, lead_shape: tuple[int, ...], axis: str, item_range: tuple[int, int],
               default_dataset: str = "images") -> np.ndarray:
    """Whole samples (``axis="n"``: (n, C, H, W)) or whole planes of the (N*C, H, W) view
    (``axis="nc"``: (n, H, W)) ``[a, b)`` of a 4-D dataset."""
    path, name = parse_spec(spec, default_dataset)
    a, b = item_range
    with h5py.File(path, "r") as fh:
        dset = fh[name]
        if axis == "n":
            out = np.empty((b - a,) + tuple(dset.shape[1:]), dtype=dset.dtype)
            if b > a:
                dset.read_direct(out, np.s_[a:b])
            return out
        c = lead_shape[-1]
        out = np.empty((b - a,) + tuple(dset.shape[-2:]), dtype=dset.dtype)
        q = 0
        for sample, c0, c1 in plane_runs(a, b, c):
            src = np.s_[c0:c1] if dset.ndim == 3 else np.s_[sample, c0:c1]
            dset.read_direct(out, src, np.s_[q:q + c1 - c0])
            q += c1 - c0
        return out


def plane_runs(a: int, b: int, channels: int) -> list[tuple[int, int, int]]:
    """Planes ``[a, b)`` of the flattened (N*C) axis as runs (sample, c0, c1) within samples."""
    runs = []
    p = a
    while p < b:
        sample, c0 = divmod(p, channels)
        c1 = min(channels, c0 + (b - p))
        runs.append((sample, c0, c1))
        p += c1 - c0
    return runs


def _part_name(out: Path, rank: int) -> str:
    return f"{out.name}.parts/part-{rank:05d}.h5"


def write_pieces(comm: Any, out_spec: Any, shape: Sequence[int], dtype: np.dtype,
                 pieces: list[Piece], default_dataset: str = "pooled") -> str:
    """Collectively write one output dataset of ``shape``; each rank contributes its
    ``pieces`` (disjoint rectangles). Returns the output spec on every rank."""
    out, name = parse_spec(out_spec, default_dataset)
    shape = tuple(int(d) for d in shape)
    if h5py.get_config().mpi:
        return _write_mpio(comm, out, name, shape, dtype, pieces)
    return _write_virtual(comm, out, name, shape, dtype, pieces)


def _write_mpio(comm: Any, out: Path, name: str, shape: tuple[int, ...], dtype: np.dtype,
                pieces: list[Piece]) -> str:  # pragma: no cover - needs an MPI-enabled h5py
    tmp = None
    if comm.Get_rank() == ROOT:
        ensure_writable_dir(out.parent)
        tmp = str(out.parent / f".{out.name}.mpio.tmp")
    tmp = comm.bcast(tmp, root=ROOT)
    with h5py.File(tmp, "w", driver="mpio", comm=comm) as fh:
        dset = fh.create_dataset(name, shape=shape, dtype=dtype)
        for ranges, data in pieces:
            dset[tuple(slice(lo, hi) for lo, hi in ranges)] = data
    comm.Barrier()
    if comm.Get_rank() == ROOT:
        os.replace(tmp, out)
    comm.Barrier()
    return spec_str(out, name)


def _write_virtual(comm: Any, out: Path, name: str, shape: tuple[int, ...], dtype: np.dtype,
                   pieces: list[Piece]) -> str:
    rank, size = comm.Get_rank(), comm.Get_size()
    error = None
    if rank == ROOT:
        try:
            ensure_writable_dir(out.parent / f"{out.name}.parts")
        except OSError as exc:
            error = str(exc)
    error = comm.bcast(error, root=ROOT)
    if error:
        raise OSError(error)
    part = out.parent / _part_name(out, rank)
    with atomic_path(part, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as fh:
            for i, (_, data) in enumerate(pieces):
                fh.create_dataset(f"piece{i}", data=data)
    meta = [(ranges, tuple(data.shape)) for ranges, data in pieces]
    everything = comm.gather(meta, root=ROOT)
    if rank == ROOT:
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        for r, rank_meta in enumerate(everything):
            for i, (ranges, pshape) in enumerate(rank_meta):
                if 0 in pshape:
                    continue
                source = h5py.VirtualSource(_part_name(out, r), f"piece{i}", shape=pshape, dtype=dtype)
                target = tuple(slice(lo, hi) for lo, hi in ranges)
                layout[target] = source
        with atomic_path(out, suffix=".h5") as tmp:
            with h5py.File(tmp, "w", libver="latest") as fh:
                fh.create_virtual_dataset(name, layout, fillvalue=None)
                fh.attrs["parts"] = size
        parts_dir = out.parent / f"{out.name}.parts"
        for stale in parts_dir.glob("part-*.h5"):     # parts of an earlier run with more ranks
            try:
                if int(stale.stem.split("-")[1]) >= size:
                    stale.unlink()
            except (ValueError, IndexError, OSError):
                pass
    comm.Barrier()
    return spec_str(out, name)


def read_whole(spec: Any, default_dataset: str = "images") -> np.ndarray:
    """The whole dataset in memory (the scatter path's root read)."""
    path, name = parse_spec(spec, default_dataset)
    with h5py.File(path, "r") as fh:
        dset = fh[name]
        out = np.empty(dset.shape, dtype=dset.dtype)
        dset.read_direct(out)
    return out


def write_whole(spec: Any, data: np.ndarray, default_dataset: str = "pooled") -> str:
    """One process writes a whole dataset atomically (the scatter path's root write)."""
    path, name = parse_spec(spec, default_dataset)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as fh:
            fh.create_dataset(name, data=data)
    return spec_str(path, name)
