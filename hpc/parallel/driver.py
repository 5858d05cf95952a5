"""The scaling driver behind ``python -m hpc scale`` (run under ``mpiexec -n P`` or ``srun``).

One *point* = (op, mode, size, data path[, matmul algorithm]) at the job's rank count. Per
point: build (once, untimed) the input HDF5 file, optionally calibrate per-rank throughput
for the weighted split, run ``warmup`` untimed repetitions (JIT compile, CUDA context,
page faults), then ``repeats`` timed ones with barrier-delimited phases (``PhaseTimer``):

  scatter:      read (rank 0 reads the whole input) | distribute (Scatterv/Isend; SUMMA's
                panel broadcasts too) | h2d | compute | d2h | gather (Gatherv) | write (rank 0
                writes the whole output)
  parallel-io:  read (own hyperslab per rank) | [distribute: SUMMA's panel broadcasts] |
                h2d | compute | d2h | write (own slab + virtual dataset)

``h2d``/``d2h``: host<->device copies of GPU ranks (pooling), so ``compute`` is kernel time.

Each point becomes one ``kind="scaling"`` record (median phase times, total, per-rank compute
times, load imbalance max/mean, devices, hosts, MPI library version, the node copy bandwidth
measured with the same ranks). Only rank 0 writes, and only after every rank succeeded;
an exception on any rank aborts the job (``failure.run_or_abort``).
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from hpc.records import Record, new_record, write_records

from . import bandwidth, calibration, devices, failure, parallel_io
from .api import distributed_avgpool2d, distributed_matmul, distributed_maxpool2d
from .decomposition import DecompositionError, process_grid
from .matmul import summa_layout
from .pooling import plan_job
from .timing import PhaseTimer

POOL_OPS: tuple[str, ...] = ("maxpool2d", "avgpool2d")
OPS: tuple[str, ...] = POOL_OPS + ("matmul",)
MODES: tuple[str, ...] = ("strong", "weak")
PATHS: tuple[str, ...] = ("scatter", "parallel-io")
SPLITS: tuple[str, ...] = ("even", "weighted")
PHASES: tuple[str, ...] = ("read", "distribute", "h2d", "compute", "d2h", "gather", "write")


@dataclass
class Settings:
    """A resolved scaling sweep (experiment file merged with command-line options)."""

    name: str = "scaling"
    modes: list[str] = field(default_factory=lambda: ["strong"])
    ops: list[str] = field(default_factory=lambda: ["maxpool2d"])
    sizes: list[int] = field(default_factory=lambda: [2048])
    weak_sizes: list[int] | None = None
    matmul_sizes: list[int] = field(default_factory=lambda: [512])
    matmul_algorithms: list[str] = field(default_factory=lambda: ["rows", "summa"])
    paths: list[str] = field(default_factory=lambda: ["scatter"])
    kernel_size: int = 2
    stride: int | None = None
    padding: int = 0
    ceil_mode: bool = False
    dtype: str = "float32"
    devices: str = "cpu"
    split: str = "even"
    repeats: int = 3
    warmup: int = 1
    threads_per_rank: int = 1
    copy_bandwidth: bool = True
    numpy_hugepages: bool = True
    workdir: str = "results/scaling/work"
    output: str | None = None


@dataclass(frozen=True)
class Point:
    op: str
    mode: str
    size: int
    path: str
    algorithm: str | None = None

    def shape(self, ranks: int) -> tuple[int, ...]:
        """Global problem shape: strong = size^2 total; weak = size^2 per rank (rows grow)."""
        rows = self.size * ranks if self.mode == "weak" else self.size
        if self.op == "matmul":
            return (rows, self.size, self.size)       # (M, K, N)
        return (rows, self.size)


def points(s: Settings) -> list[Point]:
    out = []
    for mode in s.modes:
        for op in s.ops:
            if op == "matmul":
                for size in s.matmul_sizes:
                    for path in s.paths:
                        for alg in s.matmul_algorithms:
                            out.append(Point(op, mode, size, path, alg))
            else:
                sizes = s.weak_sizes if (mode == "weak" and s.weak_sizes) else s.sizes
                for size in sizes:
                    for path in s.paths:
                        out.append(Point(op, mode, size, path))
    return out


def validate_points(s: Settings, ranks: int) -> None:
    """Raise DecompositionError/ValueError for a point this rank count cannot run (pure:
    every rank reaches the same verdict)."""
    for pt in points(s):
        shape = pt.shape(ranks)
        try:
            if pt.op == "matmul":
                m, k, n = shape
                if pt.algorithm == "summa":
                    summa_layout(m, k, n, process_grid(ranks))
                elif m < ranks:
                    raise DecompositionError(f"more ranks ({ranks}) than rows of a ({m})")
            else:
                plan_job(shape, np.dtype(s.dtype), "max" if pt.op == "maxpool2d" else "avg",
                         s.kernel_size, s.stride, s.padding, s.ceil_mode, ranks, None)
        except (ValueError, TypeError) as exc:
            raise DecompositionError(f"{pt.op} {pt.mode} size {pt.size} at {ranks} ranks: {exc}") from None


def set_numpy_hugepages(enabled: bool) -> None:
    """NumPy madvises large arrays MADV_HUGEPAGE (its default, kept by default: 512x fewer
    page faults on fresh buffers). On a loaded machine whose THP defrag setting is
    ``madvise`` the first touch can then stall ~0.5 s in direct compaction; turning it off
    (``--no-numpy-hugepages``) trades those stalls for many more, smaller page faults."""
    try:
        np._core.multiarray._set_madvise_hugepage(bool(enabled))
    except AttributeError:  # pragma: no cover - older NumPy
        pass


def set_threads(n: int) -> None:
    """Threads per rank for numba and BLAS (1 = one core per rank, the MPI scaling model)."""
    try:
        import numba
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    except ImportError:  # pragma: no cover
        pass
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:  # pragma: no cover
        pass


# ------------------------------------------------------------------------- input files
def input_file(workdir: Path, shape: tuple[int, ...], dtype: str, tag: str = "x") -> Path:
    return workdir / f"input-{tag}-{'x'.join(map(str, shape))}-{dtype}.h5"


def dataset_seed(name: str, band: int) -> list[int]:
    """Seed of one band of one input dataset: every dataset name its own stream (a seed
    from ``len(name)`` made matmul's A and B identical)."""
    import zlib
    return [zlib.crc32(name.encode()), band]


def make_input(comm: Any, path: Path, datasets: dict[str, tuple[int, ...]], dtype: str) -> None:
    """Rank 0 writes (untimed, once) a contiguous, uncompressed HDF5 input with
    deterministic random data, band by band so it never holds more than 64 MiB of it."""
    if comm.Get_rank() == 0 and not path.exists():
        import h5py
        from hpc.atomic import atomic_path
        with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as fh:
            for name, shape in datasets.items():
                dset = fh.create_dataset(name, shape=shape, dtype=dtype)
                row_bytes = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
                band = max(1, (64 << 20) // max(row_bytes, 1))
                for i, r0 in enumerate(range(0, shape[0], band)):
                    rng = np.random.default_rng(dataset_seed(name, i))
                    r1 = min(shape[0], r0 + band)
                    dset[r0:r1] = rng.standard_normal((r1 - r0,) + tuple(shape[1:])).astype(dtype)
    comm.Barrier()


# ------------------------------------------------------------------------- one repetition
def _run_once(comm: Any, s: Settings, pt: Point, dev: devices.RankDevice, in_path: Path,
              out_path: Path, weights: list[float] | None, timer: PhaseTimer) -> None:
    rank = comm.Get_rank()
    if pt.op == "matmul":
        if pt.path == "scatter":
            a = b = None
            with timer.phase("read"):
                if rank == 0:
                    a = parallel_io.read_whole(f"{in_path}:/a")
                    b = parallel_io.read_whole(f"{in_path}:/b")
            c = distributed_matmul(a, b, comm, "scatter", dev.matmul_backend, algorithm=pt.algorithm, timer=timer)
            with timer.phase("write"):
                if rank == 0:
                    parallel_io.write_whole(f"{out_path}:/c", c)
        else:
            distributed_matmul(f"{in_path}:/a", f"{in_path}:/b", comm, "parallel-io", dev.matmul_backend,
                               algorithm=pt.algorithm, out=f"{out_path}:/c", timer=timer)
        return
    func = distributed_maxpool2d if pt.op == "maxpool2d" else distributed_avgpool2d
    kw = dict(kernel_size=s.kernel_size, stride=s.stride, padding=s.padding, ceil_mode=s.ceil_mode,
              comm=comm, backend=dev.pool_backend, weights=weights, timer=timer)
    if pt.path == "scatter":
        x = None
        with timer.phase("read"):
            if rank == 0:
                x = parallel_io.read_whole(f"{in_path}:/images")
        y = func(x, path="scatter", **kw)
        del x
        with timer.phase("write"):
            if rank == 0:
                parallel_io.write_whole(f"{out_path}:/pooled", y)
    else:
        func(f"{in_path}:/images", path="parallel-io", out=f"{out_path}:/pooled", **kw)


def _cleanup(comm: Any, out_path: Path) -> None:
    comm.Barrier()
    if comm.Get_rank() == 0:
        out_path.unlink(missing_ok=True)
        shutil.rmtree(out_path.parent / f"{out_path.name}.parts", ignore_errors=True)
    comm.Barrier()


def run_point(comm: Any, s: Settings, pt: Point, dev: devices.RankDevice,
              rank_devices: list[dict[str, Any]], copy_bw: dict[str, Any] | None) -> Record | None:
    """Measure one point on every rank; returns the record on rank 0."""
    ranks, rank = comm.Get_size(), comm.Get_rank()
    workdir = Path(s.workdir)
    shape = pt.shape(ranks)
    if pt.op == "matmul":
        m, k, n = shape
        in_path = input_file(workdir, shape, s.dtype, "mm")
        make_input(comm, in_path, {"a": (m, k), "b": (k, n)}, s.dtype)
    else:
        in_path = input_file(workdir, shape, s.dtype, "img")
        make_input(comm, in_path, {"images": shape}, s.dtype)
    job_tag = comm.bcast(os.getpid() if rank == 0 else None, root=0)   # concurrent jobs may share workdir
    out_path = workdir / f"out-{pt.op}-{pt.path}-{ranks}-{job_tag}.h5"
    weights = None
    if s.split == "weighted" and pt.op != "matmul":
        weights = calibration.calibrate(comm, "max" if pt.op == "maxpool2d" else "avg", dev.pool_backend,
                                        shape[1], s.kernel_size, s.stride, s.padding, np.dtype(s.dtype))
    for _ in range(s.warmup):
        _run_once(comm, s, pt, dev, in_path, out_path, weights, PhaseTimer(comm))
    runs: list[PhaseTimer] = []
    for _ in range(s.repeats):
        timer = PhaseTimer(comm)
        _run_once(comm, s, pt, dev, in_path, out_path, weights, timer)
        runs.append(timer)
    _cleanup(comm, out_path)
    local_compute = float(np.median([t.local.get("compute", 0.0) for t in runs]))
    all_local = comm.gather(local_compute, root=0)
    if rank != 0:
        return None
    return _record(s, pt, ranks, shape, runs, all_local, weights, rank_devices, copy_bw)


def _record(s: Settings, pt: Point, ranks: int, shape: tuple[int, ...], runs: list[PhaseTimer],
            rank_compute: list[float], weights: list[float] | None, rank_devices: list[dict[str, Any]],
            copy_bw: dict[str, Any] | None) -> Record:
    med = {p: float(np.median([t.phases.get(p, 0.0) for t in runs])) for p in PHASES}
    totals = [sum(t.phases.values()) for t in runs]
    itemsize = np.dtype(s.dtype).itemsize
    metrics: dict[str, Any] = {f"{p}_s": med[p] for p in PHASES}
    metrics.update(total_s=float(np.median(totals)), total_s_repeats=totals,
                   compute_s_repeats=[t.phases.get("compute", 0.0) for t in runs],
                   compute_s_min=min(t.phases.get("compute", 0.0) for t in runs),
                   rank_compute_s=rank_compute,
                   load_imbalance=max(rank_compute) / max(np.mean(rank_compute), 1e-12))
    params: dict[str, Any] = {
        "op": pt.op, "mode": pt.mode, "size": pt.size, "path": pt.path, "ranks": ranks,
        "dtype": s.dtype, "split": s.split, "weights": weights, "repeats": s.repeats,
        "warmup": s.warmup, "threads_per_rank": s.threads_per_rank,
        "numpy_hugepages": s.numpy_hugepages,
        "devices": [d["kind"] for d in rank_devices],
        "backends": [d["matmul_backend"] if pt.op == "matmul" else d["pool_backend"] for d in rank_devices],
        "device_names": [d["device_name"] for d in rank_devices],
        "emulated": [d["emulated"] for d in rank_devices],
        "hosts": [d["host"] for d in rank_devices],
        "device": rank_devices[0]["device"],
        "rank_devices": [d["device"] for d in rank_devices],
        "mpi_library_version": MPI.Get_library_version().strip().splitlines()[0],
        "mpi_version": "%d.%d" % MPI.Get_version(),
        "h5py_mpi": bool(__import__("h5py").get_config().mpi),
        "experiment": s.name,
    }
    if pt.op == "matmul":
        m, k, n = shape
        params.update(shape=[m, k, n], algorithm=pt.algorithm,
                      grid=list(process_grid(ranks)) if pt.algorithm == "summa" else [ranks, 1])
        metrics["gflops"] = 2.0 * m * k * n / max(med["compute"], 1e-12) / 1e9
    else:
        h, w = shape
        job = plan_job(shape, np.dtype(s.dtype), "max", s.kernel_size, s.stride, s.padding,
                       s.ceil_mode, ranks, weights)
        geom = job.geom
        params.update(shape=[h, w], kernel_size=s.kernel_size, stride=s.stride or s.kernel_size,
                      padding=s.padding, ceil_mode=s.ceil_mode,
                      rows_per_rank=[b - a for a, b in job.split.bounds])
        moved = (h * w + geom.out_h * geom.out_w) * itemsize
        metrics.update(bytes_moved=moved, bandwidth_gbs=moved / max(med["compute"], 1e-12) / 1e9)
        if copy_bw:
            metrics.update(copy_bandwidth_gbs=copy_bw["copy_bandwidth_gbs"],
                           rank_copy_bandwidth_gbs=copy_bw["rank_copy_bandwidth_gbs"],
                           rank_copy_kind=copy_bw["rank_copy_kind"],
                           bound_gbs=copy_bw["copy_bandwidth_gbs"],
                           bound_fraction=metrics["bandwidth_gbs"] / copy_bw["copy_bandwidth_gbs"])
    name = f"{pt.op} {pt.path} {pt.mode} {'x'.join(map(str, shape))} P={ranks}"
    if pt.algorithm:
        name += f" {pt.algorithm}"
    return new_record("scaling", name, params, metrics)


# ------------------------------------------------------------------------- the sweep
def run(comm: Any, s: Settings) -> list[Record]:
    """The whole sweep on every rank; returns the records on rank 0 (others: [])."""
    ranks = comm.Get_size()
    rank_kinds = failure.collective_check(comm, lambda: devices.parse_devices(s.devices, ranks))
    failure.collective_check(comm, lambda: validate_points(s, ranks))
    dev = failure.collective_check(comm, lambda: devices.select_device(comm, rank_kinds[comm.Get_rank()]))
    if "matmul" in s.ops:
        def need_matmul() -> None:
            if not dev.matmul_backend:
                raise devices.DeviceError(f"device {dev.kind!r} has no matmul backend here")
        failure.collective_check(comm, need_matmul)
    set_threads(s.threads_per_rank)
    set_numpy_hugepages(s.numpy_hugepages)
    rank_devices = comm.allgather(dev.as_dict())
    records: list[Record] = []
    copy_cache: dict[int, dict[str, Any]] = {}
    todo = points(s)
    for i, pt in enumerate(todo, 1):
        copy_bw = None
        if s.copy_bandwidth and pt.op != "matmul":
            shape = pt.shape(ranks)
            share = shape[0] * shape[1] * np.dtype(s.dtype).itemsize // ranks
            if share not in copy_cache:
                copy_cache[share] = bandwidth.copy_bandwidth(comm, share, dev.kind)
            copy_bw = copy_cache[share]
        if comm.Get_rank() == 0:
            print(f"[{i}/{len(todo)}] {pt.op} {pt.mode} size={pt.size} path={pt.path}"
                  f"{' ' + pt.algorithm if pt.algorithm else ''} ranks={ranks}", file=sys.stderr, flush=True)
        rec = run_point(comm, s, pt, dev, rank_devices, copy_bw)
        if rec is not None:
            records.append(rec)
            print(summary_line(rec), flush=True)
    return records


def summary_line(rec: Record) -> str:
    m = rec.metrics
    phases = " ".join(f"{p}={m[p + '_s']:.4f}" for p in PHASES if m.get(p + "_s"))
    if "bandwidth_gbs" in m:
        extra = f" bw={m['bandwidth_gbs']:.2f}GB/s"
        if "copy_bandwidth_gbs" in m:
            extra += f" copy={m['copy_bandwidth_gbs']:.2f}GB/s ({m['bound_fraction']:.0%})"
    else:
        extra = f" gflops={m.get('gflops', 0):.1f}"
    return (f"{rec.name}: total={m['total_s']:.4f}s {phases} imbalance={m['load_imbalance']:.3f}{extra}")


def finish(comm: Any, records: list[Record], output: str | None) -> None:
    """Write the records (rank 0) once every rank has reached this point without error."""
    comm.Barrier()                          # every rank succeeded (failures abort the job)
    if comm.Get_rank() == 0 and output:
        write_records(output, records)
        print(f"wrote {len(records)} scaling records to {output}", file=sys.stderr, flush=True)
    comm.Barrier()

