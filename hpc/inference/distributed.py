"""Distributed heterogeneous inference: ``mpiexec -n P python -m hpc infer ... --devices D``.

Each rank runs one backend (``hpc.inference.backends``) on its device (``cpu``: torch on
the CPU; ``opencl``: the OpenCL engine with ``--style``; ``cuda``: torch on a GPU). The
batch is split into contiguous ranges of images: weighted by a calibration (every rank
times its backend on one image, one rank after the other, and the throughputs are
all-gathered so every rank derives the same split, as the pooling driver does) or evenly.
Rank 0 reads the input and scatters the images (Scatterv), every rank runs its share, rank
0 gathers the scores (Gatherv) and writes them. Per-image results do not depend on which
other images share a batch, so with the same backend on every rank the result equals the
single-process one bit for bit; with mixed backends each image is within the engines'
golden tolerance of the single-process result.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from hpc.cli import CliError


def check_expected_ranks(expected: int | None, size: int) -> None:
    """The suite's launch check (hpc.parallel.launch), as a CLI error on every rank."""
    from hpc.parallel.launch import rank_count_problem
    problem = rank_count_problem(size, expected)
    if problem:
        raise CliError(f"--expect-ranks {expected}: {problem}")


def split_images(n: int, weights: list[float] | None, ranks: int) -> list[tuple[int, int]]:
    """Contiguous image ranges per rank (some may be empty when n < ranks)."""
    from hpc.parallel.decomposition import weighted_split
    return weighted_split(n, weights if weights is not None else [1.0] * ranks, min_items=0)


def _calibrate(comm: Any, backend: Any, sample: np.ndarray, repeats: int = 2) -> list[float]:
    """Images per second of every rank's backend on ``sample`` (one image), measured in turn."""
    mine = 0.0
    for turn in range(comm.Get_size()):
        if turn == comm.Get_rank():
            backend.forward(sample)                         # warm-up (buffers, first launch)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                backend.forward(sample)
                best = min(best, time.perf_counter() - t0)
            mine = sample.shape[0] / max(best, 1e-9)
        comm.Barrier()
    return [float(v) for v in comm.allgather(mine)]


def main(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from hpc.inference.infer_cli import load_network, make_backend, print_results, save_output
    from hpc.parallel import failure
    from hpc.parallel.devices import DeviceError, parse_devices

    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    check_expected_ranks(args.expect_ranks, size)
    spec = args.devices or ("opencl" if args.backend == "opencl" else "cpu")
    try:
        kinds = parse_devices(spec, size)
        if "cuda" in kinds and size and not _cuda_available():
            raise DeviceError("device 'cuda' requested but torch sees no CUDA device here")
    except DeviceError as exc:
        raise CliError(str(exc)) from None
    kind = kinds[rank]

    def setup() -> tuple[Any, np.ndarray | None]:
        model, x = load_network(args)
        backend = make_backend(kind, args)
        backend.prepare(model)
        return backend, (x if rank == 0 else None)

    try:
        backend, x = failure.collective_check(comm, setup, errors=(Exception,))
    except failure.CollectiveError as exc:
        raise CliError(str(exc)) from None

    def compute() -> None:
        shape = comm.bcast(x.shape if rank == 0 else None, root=0)
        n, per_image = shape[0], int(np.prod(shape[1:]))
        sample = np.empty((1, *shape[1:]), np.float32)
        if rank == 0:
            sample[...] = x[:1]
        comm.Bcast(sample, root=0)
        weights = _calibrate(comm, backend, sample) if args.split == "weighted" and size > 1 else None
        classes = int(backend.forward(sample).shape[1])
        bounds = split_images(n, weights, size)
        counts = [b - a for a, b in bounds]
        local = np.empty((counts[rank], *shape[1:]), np.float32)
        comm.Barrier()
        t0 = MPI.Wtime()
        comm.Scatterv([x, [c * per_image for c in counts], [a * per_image for a, _ in bounds], MPI.FLOAT]
                      if rank == 0 else None, local, root=0)
        t_compute = time.perf_counter()
        out_local = (backend.forward(local) if counts[rank] else np.empty((0, classes), np.float32))
        t_compute = time.perf_counter() - t_compute
        scores = np.empty((n, classes), np.float32) if rank == 0 else None
        comm.Gatherv(np.ascontiguousarray(out_local, np.float32),
                     [scores, [c * classes for c in counts], [a * classes for a, _ in bounds], MPI.FLOAT]
                     if rank == 0 else None, root=0)
        elapsed = MPI.Wtime() - t0
        compute_s = comm.gather(t_compute, root=0)
        device = backend.device()
        names = comm.gather(f"{kind}:{device.name}{' (emulated)' if device.emulated else ''}", root=0)
        if rank == 0:
            assert scores is not None
            print_results(scores, args.top, elapsed, f"{size} rank(s)")
            for r in range(size):
                w = f", calibrated {weights[r]:.2f} images/s" if weights else ""
                print(f"rank {r}: {names[r]}, images {bounds[r][0]}:{bounds[r][1]}{w}, "
                      f"compute {compute_s[r]:.4f} s")
            save_output(args.output, scores)

    failure.run_or_abort(comm, compute)
    return 0


def _cuda_available() -> bool:
    import torch
    return bool(torch.cuda.is_available())
