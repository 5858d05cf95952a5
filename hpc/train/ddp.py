"""Data-parallel set-up: rank/world size from the launcher's environment, torch.distributed.

Launchers and the variables they set (first match wins):

* Open MPI ``mpiexec``: OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK
* MPICH/Hydra ``mpiexec`` (the PyPI ``mpich`` here): PMI_RANK / PMI_SIZE (MPI_LOCALRANKID)
* SLURM ``srun``: SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID
* torchrun: RANK / WORLD_SIZE / LOCAL_RANK

MASTER_ADDR/MASTER_PORT, when not already set: under SLURM, the first host of
SLURM_JOB_NODELIST and a port derived from the job id (so concurrent jobs on a node do not
collide); under mpiexec, rank 0's host name and a free port it picks, broadcast to the
others with mpi4py (works across nodes without the user knowing which host is first).
gloo on CPU, nccl on GPU. Only rank 0 writes files (``is_main``).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import re
import socket
from typing import Mapping

import torch
import torch.distributed as dist


class DistributedSetupError(RuntimeError):
    """The distributed environment is missing or inconsistent; message names the variables."""


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    launcher: str  # "openmpi", "mpich", "slurm", "torchrun" or "single"


_LAUNCHERS: tuple[tuple[str, str, str, str], ...] = (
    ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
)


def detect_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Rank, world size and local rank from the launcher's variables (pure function of env)."""
    env = os.environ if environ is None else environ
    for launcher, rank_var, size_var, local_var in _LAUNCHERS:
        if rank_var in env and size_var in env:
            try:
                rank, size = int(env[rank_var]), int(env[size_var])
                local = int(env.get(local_var, rank))
            except ValueError:
                raise DistributedSetupError(f"{rank_var}={env[rank_var]!r}, {size_var}={env[size_var]!r}: "
                                            "not integers") from None
            if not 0 <= rank < size:
                raise DistributedSetupError(f"{rank_var}={rank} outside 0..{size - 1} ({size_var}={size})")
            return DistEnv(rank, size, local, launcher)
    return DistEnv(0, 1, 0, "single")


def first_slurm_host(nodelist: str) -> str:
    """First host of a SLURM node list: 'node[003-005,9],gpu1' -> 'node003'."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise DistributedSetupError(f"SLURM_JOB_NODELIST={nodelist!r}: cannot parse")
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def rendezvous(env: DistEnv, environ: dict[str, str] | None = None) -> tuple[str, int]:
    """Choose MASTER_ADDR/MASTER_PORT (respecting ones already set) and export them."""
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    addr = environ.get("MASTER_ADDR")
    port = environ.get("MASTER_PORT")
    if addr is None or port is None:
        if env.launcher == "slurm":
            addr = addr or first_slurm_host(environ.get("SLURM_JOB_NODELIST", "") or "127.0.0.1")
            port = port or str(15000 + int(environ.get("SLURM_JOB_ID", "0")) % 20000)
        elif env.launcher in ("openmpi", "mpich"):
            from mpi4py import MPI  # only under an MPI launcher
            comm = MPI.COMM_WORLD
            if comm.Get_size() != env.world_size:
                raise DistributedSetupError(f"mpi4py sees {comm.Get_size()} ranks, the environment "
                                            f"says {env.world_size}")
            mine = (socket.gethostname(), _free_port()) if env.rank == 0 else None
            host, free = comm.bcast(mine, root=0)
            same_host = all(h == host for h in comm.allgather(socket.gethostname()))
            addr = addr or ("127.0.0.1" if same_host else host)
            port = port or str(free)
        else:
            addr, port = addr or "127.0.0.1", port or str(_free_port())
    environ["MASTER_ADDR"], environ["MASTER_PORT"] = addr, str(port)
    if addr in ("127.0.0.1", "localhost"):
        environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return addr, int(port)


def init_distributed(env: DistEnv, device: torch.device, timeout_s: float = 300.0) -> None:
    """Initialise the default process group: nccl for CUDA devices, gloo otherwise."""
    rendezvous(env)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank,
                            world_size=env.world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity when not distributed)."""
    if is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is set on any rank: ranks agree to stop at the same step."""
    if not is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_hosts() -> list[str]:
    """The host name of every rank, in rank order (recorded with DDP results)."""
    host = socket.gethostname()
    if not is_initialized():
        return [host]
    hosts: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(hosts, host)
    return [str(h) for h in hosts]


def broadcast_state(module: torch.nn.Module, src: int = 0) -> None:
    """Overwrite every rank's parameters and buffers with rank ``src``'s (in place)."""
    if not is_initialized():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=src)


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def shutdown() -> None:
    if is_initialized():
        dist.destroy_process_group()


def time_allreduce(numel: int, repeats: int, device: torch.device) -> list[float]:
    """Seconds per ``all_reduce`` (sum) of a float32 tensor of ``numel`` elements, the
    traffic DDP generates per step for a model with that many parameters (DDP splits it
    into ~25 MB buckets and overlaps them with the backward pass; this is the unoverlapped
    cost). Two untimed warm-up calls first."""
    import time
    t = torch.ones(numel, dtype=torch.float32, device=device)
    times = []
    for i in range(repeats + 2):
        barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return times
