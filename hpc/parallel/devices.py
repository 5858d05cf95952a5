"""Which device, and so which kernel backend, each rank uses.

Device kinds: ``cpu`` (numba; NumPy/BLAS for matmul), ``cuda`` (numba-cuda or CuPy, GPU
chosen by the rank's index among the CUDA ranks of its node), ``opencl`` (the FPGA-style
kernels; on PoCL's CPU device the result is labelled *emulated*).

A device spec is a comma list, one entry per rank in rank order: ``cpu,cpu,opencl``; an
entry may carry a count (``cuda:2``) and one entry may be ``kind:*`` (fill the remaining
ranks). A single entry without a count applies to every rank (``cpu``).
"""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from hpc.kernels.registry import backend_info

DEVICE_KINDS: tuple[str, ...] = ("cpu", "cuda", "opencl")
# device kind -> op family -> backends to try, in order
BACKENDS: dict[str, dict[str, tuple[str, ...]]] = {
    "cpu": {"pool": ("numba",), "matmul": ("numpy",)},
    "cuda": {"pool": ("numba-cuda", "cupy"), "matmul": ("cupy", "numba-cuda")},
    "opencl": {"pool": ("opencl",), "matmul": ("opencl",)},
}


class DeviceError(ValueError):
    """A device spec is malformed, or this rank cannot use the device it was given."""


def parse_devices(spec: str, ranks: int) -> list[str]:
    """Expand a device spec into one device kind per rank (pure)."""
    entries = [e.strip() for e in str(spec).split(",") if e.strip()]
    if not entries:
        raise DeviceError("--devices is empty; give e.g. 'cpu' or 'cuda:2,cpu:*'")
    parsed: list[tuple[str, int | None]] = []
    for entry in entries:
        kind, _, count = entry.partition(":")
        kind = kind.strip().lower()
        if kind not in DEVICE_KINDS:
            raise DeviceError(f"--devices: unknown device {kind!r} in {spec!r}; choose from "
                              f"{', '.join(DEVICE_KINDS)}")
        if not count:
            parsed.append((kind, 1))
        elif count == "*":
            parsed.append((kind, None))
        elif count.isdigit() and int(count) > 0:
            parsed.append((kind, int(count)))
        else:
            raise DeviceError(f"--devices: bad count {count!r} in {entry!r} (a positive integer or *)")
    if len(parsed) == 1 and ":" not in entries[0]:
        return [parsed[0][0]] * ranks
    stars = [i for i, (_, c) in enumerate(parsed) if c is None]
    if len(stars) > 1:
        raise DeviceError(f"--devices: at most one 'kind:*' entry, got {spec!r}")
    fixed = sum(c for _, c in parsed if c is not None)
    if stars:
        if fixed > ranks:
            raise DeviceError(f"--devices {spec!r} names {fixed} ranks but the job has {ranks}")
        parsed[stars[0]] = (parsed[stars[0]][0], ranks - fixed)
    elif fixed != ranks:
        raise DeviceError(f"--devices {spec!r} names {fixed} ranks but the job has {ranks} "
                          f"(add 'kind:*' to fill the rest)")
    return [kind for kind, count in parsed for _ in range(count or 0)]


#: Launcher variables holding a process's rank on its node (SLURM, MPICH Hydra, Open MPI,
#: torchrun), first match wins.
LOCAL_RANK_VARS: tuple[str, ...] = ("SLURM_LOCALID", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK",
                                    "LOCAL_RANK")


def local_rank_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """This process's rank on its node as its launcher says, or None (no launcher)."""
    environ = os.environ if environ is None else environ
    for var in LOCAL_RANK_VARS:
        value = environ.get(var, "")
        if value.isdigit():
            return int(value)
    return None


def _gpu_ids_without_context() -> list[str]:
    """GPU ids this process may use, found without initialising CUDA (which would fix the
    visible set and could open a context on GPU 0): CUDA_VISIBLE_DEVICES, else
    ``nvidia-smi -L``; [] when neither says anything."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v.strip() for v in visible.split(",") if v.strip()]
    import shutil
    import subprocess
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def cuda_initialized() -> bool:
    """Whether torch or numba already initialised CUDA in this process (too late to bind)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return True
    driver = sys.modules.get("numba.cuda.cudadrv.driver")
    return bool(driver is not None and getattr(getattr(driver, "driver", None), "is_initialized", False))


def bind_gpu_to_local_rank(local_index: int, environ: dict[str, str] | None = None,
                           gpu_ids: list[str] | None = None) -> str | None:
    """Give this rank one GPU, chosen by its node-local index, *before* any CUDA context.

    Sets CUDA_VISIBLE_DEVICES to that one GPU (``ids[local_index % len(ids)]``), so numba,
    CuPy and torch all see it as device 0 and none of them can open a context on another
    GPU (a context on GPU 0 costs every rank ~300-500 MiB there and serialises them).
    Must run before CUDA is initialised; returns the GPU id, or None when no GPU is known
    (then nothing changes). Under SLURM with --gpus-per-task/--ntasks-per-gpu the visible
    set is already one GPU per task, and that one is kept.
    """
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    if environ is os.environ and cuda_initialized():
        raise DeviceError("CUDA was initialised before the rank chose its GPU; bind first")
    ids = _gpu_ids_without_context() if gpu_ids is None else gpu_ids
    if not ids:
        return None
    chosen = ids[local_index % len(ids)]
    environ["CUDA_VISIBLE_DEVICES"] = chosen
    return chosen


def node_local_rank(comm: Any) -> tuple[int, int]:
    """(rank within this node, ranks on this node): from an MPI shared-memory split, else
    SLURM_LOCALID/SLURM_NTASKS_PER_NODE, else (0, 1)."""
    from mpi4py import MPI
    try:
        local = comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return local.Get_rank(), local.Get_size()
        finally:
            local.Free()
    except (MPI.Exception, NotImplementedError):
        if "SLURM_LOCALID" in os.environ:
            return int(os.environ["SLURM_LOCALID"]), int(os.environ.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0])
        return 0, 1


@dataclass(frozen=True)
class RankDevice:
    """What one rank runs on (recorded per rank in every scaling record)."""

    rank: int
    host: str
    local_rank: int
    kind: str
    pool_backend: str
    matmul_backend: str          # "" when the device has no matmul backend
    device_name: str
    device_index: int | None
    emulated: bool
    device: dict[str, Any] | None = None   # hpc.schema.Device, asked of the runtime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pick_backend(kind: str, family: str, override: str | None) -> str:
    candidates = (override,) if override else BACKENDS[kind][family]
    reasons = []
    for name in candidates:
        info = backend_info(name)
        if info.available:
            return name
        reasons.append(f"{name}: {info.reason}")
    raise DeviceError(f"device {kind!r} requested but no backend for it can run here "
                      f"({'; '.join(reasons)})")


def _cuda_index(comm: Any, kind: str) -> tuple[int, int]:
    """(index among this node's CUDA ranks, number of them): collective over ``comm``."""
    from mpi4py import MPI
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        cuda = local.Split(0 if kind == "cuda" else MPI.UNDEFINED, local.Get_rank())
        if cuda == MPI.COMM_NULL:
            return -1, 0
        try:
            return cuda.Get_rank(), cuda.Get_size()
        finally:
            cuda.Free()
    finally:
        local.Free()


def _select_gpu(index: int, backend: str) -> int:
    """Make GPU ``index % gpu_count`` current for ``backend``; returns the GPU used."""
    if backend == "cupy":
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(index % count).use()
        return index % count
    from numba import cuda
    count = len(cuda.gpus)
    cuda.select_device(index % count)
    return index % count


def select_device(comm: Any, kind: str, pool_backend: str | None = None,
                  matmul_backend: str | None = None) -> RankDevice:
    """This rank's device (collective: every rank must call it). Raises DeviceError with
    the reason when the device cannot be used here (e.g. ``cuda`` on a node without GPU)."""
    rank, host = comm.Get_rank(), socket.gethostname()
    cuda_index, _ = _cuda_index(comm, kind)    # collective: before anything can raise
    local_rank, _ = node_local_rank(comm)
    if kind not in DEVICE_KINDS:
        raise DeviceError(f"unknown device {kind!r}; choose from {', '.join(DEVICE_KINDS)}")
    bound = None
    if kind == "cuda":
        # before any backend is asked whether it can run (that opens a CUDA context)
        bound = bind_gpu_to_local_rank(cuda_index)
    pool = _pick_backend(kind, "pool", pool_backend)
    try:  # a device without a matmul backend can still pool; the driver checks before matmul
        mm = _pick_backend(kind, "matmul", matmul_backend)
    except DeviceError:
        mm = ""
    index = None
    if kind == "cuda":
        index = _select_gpu(0 if bound is not None else cuda_index, pool)
        if bound is not None and bound.isdigit():
            index = int(bound)          # the GPU's id on the node, not its visible index
    name = backend_info(pool).device_name
    from hpc.kernels import device_record
    record = device_record.for_backend(pool)
    return RankDevice(rank, host, local_rank, kind, pool, mm, name, index, record.emulated,
                      record.model_dump())
