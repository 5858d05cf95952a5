"""``python -m hpc scale``: strong/weak scaling of the distributed kernels.

Run it under MPI, one process per rank::

    mpiexec -n 4 python -m hpc scale --experiment experiments/scaling-laptop.yaml --output r.jsonl
    srun -n 32 python -m hpc scale --mode weak --ops maxpool2d --sizes 4096 --path parallel-io

Options given on the command line override the experiment file. The rank count is the
job's; the experiment's ``ranks`` list is for the workflow that launches the jobs.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hpc.cli import CliError


def _csv(kind: type = str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> list[Any]:
        try:
            return [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma list of {kind.__name__}, got {text!r}") from None
    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.add_argument("--experiment", type=Path, help="experiments/<name>.yaml (kind: scaling)")
    parser.add_argument("--mode", dest="modes", type=_csv(), help="strong, weak or strong,weak")
    parser.add_argument("--ops", type=_csv(), help="maxpool2d,avgpool2d,matmul")
    parser.add_argument("--sizes", type=_csv(int),
                        help="pooling image side: total (strong) or per rank (weak: (size*P) x size)")
    parser.add_argument("--weak-sizes", type=_csv(int), help="per-rank sizes for weak mode (default: --sizes)")
    parser.add_argument("--matmul-sizes", type=_csv(int), help="matmul n (strong: n^3; weak: (n*P) x n x n)")
    parser.add_argument("--algorithms", dest="matmul_algorithms", type=_csv(), help="matmul: rows,summa")
    parser.add_argument("--path", dest="paths", type=_csv(), help="scatter, parallel-io or both")
    parser.add_argument("--kernel-size", type=int)
    parser.add_argument("--stride", type=int)
    parser.add_argument("--padding", type=int)
    parser.add_argument("--ceil-mode", action="store_true", default=None)
    parser.add_argument("--dtype", choices=["float32", "float64"])
    parser.add_argument("--devices", help="device per rank: 'cpu', 'cpu,cpu,opencl', 'cuda:2,cpu:*'")
    parser.add_argument("--split", choices=["even", "weighted"],
                        help="rows per rank: even, or weighted by a per-rank throughput calibration")
    parser.add_argument("--repeats", type=int, help="timed repetitions per point (median reported)")
    parser.add_argument("--warmup", type=int, help="untimed repetitions first (JIT, contexts)")
    parser.add_argument("--threads-per-rank", type=int, help="numba/BLAS threads per rank (default 1)")
    parser.add_argument("--no-copy-bandwidth", dest="copy_bandwidth", action="store_false", default=None,
                        help="skip the node copy-bandwidth measurement")
    parser.add_argument("--no-numpy-hugepages", dest="numpy_hugepages", action="store_false", default=None,
                        help="turn off NumPy's MADV_HUGEPAGE on large arrays (avoids transparent-hugepage "
                             "compaction stalls on a loaded machine, at the price of more page faults)")
    parser.add_argument("--workdir", help="where input/output HDF5 files go (default results/scaling/work)")
    parser.add_argument("--output", help="JSONL records (written by rank 0 when every rank succeeded); "
                                         "default results/scaling/<name>-P<ranks>.jsonl")
    parser.add_argument("--expect-ranks", type=int, default=None, metavar="P",
                        help="exit non-zero on every rank unless the job has exactly P ranks "
                             "(catches an srun without MPI plugin starting P 1-rank programs)")
    parser.add_argument("--summarize", nargs="+", metavar="JSONL",
                        help="print a Markdown table (phases, efficiency vs 1 rank, bandwidth) of "
                             "existing scaling records and exit; runs nothing, needs no MPI")
    parser.set_defaults(func=main)


def resolve_settings(args: argparse.Namespace, ranks: int) -> Any:
    """Experiment file (validated, defaults filled) overridden by command-line options."""
    from hpc.config import ConfigError, load_experiment

    from .driver import MODES, OPS, PATHS, Settings
    from .matmul import ALGORITHMS

    s = Settings()
    if args.experiment is not None:
        try:
            exp = load_experiment(args.experiment, kind="scaling")
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        s.name = exp["name"]
        for key in ("modes", "ops", "sizes", "weak_sizes", "matmul_sizes", "matmul_algorithms", "paths",
                    "kernel_size", "stride", "padding", "ceil_mode", "dtype", "devices", "split",
                    "repeats", "warmup", "threads_per_rank", "copy_bandwidth", "numpy_hugepages", "workdir"):
            if key in exp:
                setattr(s, key, exp[key])
    for key in ("modes", "ops", "sizes", "weak_sizes", "matmul_sizes", "matmul_algorithms", "paths",
                "kernel_size", "stride", "padding", "ceil_mode", "dtype", "devices", "split", "repeats",
                "warmup", "threads_per_rank", "copy_bandwidth", "numpy_hugepages", "workdir", "output"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(s, key, value)
    for key, allowed in (("modes", MODES), ("ops", OPS), ("paths", PATHS),
                         ("matmul_algorithms", ALGORITHMS)):
        bad = [v for v in getattr(s, key) if v not in allowed]
        if bad or not getattr(s, key):
            raise CliError(f"--{key.replace('_', '-')}: {bad or 'empty'} not in {', '.join(allowed)}")
    for key in ("sizes", "matmul_sizes"):
        if any(v < 1 for v in getattr(s, key)):
            raise CliError(f"--{key.replace('_', '-')} must be positive, got {getattr(s, key)}")
    if s.repeats < 1 or s.warmup < 0 or s.threads_per_rank < 1:
        raise CliError("--repeats must be >= 1, --warmup >= 0, --threads-per-rank >= 1")
    if s.output is None:
        s.output = f"results/scaling/{s.name}-P{ranks}.jsonl"
    return s


def main(args: argparse.Namespace) -> int:
    if args.summarize:
        from hpc.records import read_records

        from .summary import summarize
        try:
            print(summarize(read_records(args.summarize)), end="")
        except (OSError, ValueError) as exc:
            raise CliError(str(exc)) from None
        return 0
    from mpi4py import MPI

    from . import driver, failure
    from .launch import LaunchError, check_rank_count

    comm = MPI.COMM_WORLD
    try:
        check_rank_count(comm.Get_size(), args.expect_ranks)
    except LaunchError as exc:
        raise CliError(f"rank {comm.Get_rank()}: {exc}") from None
    settings = resolve_settings(args, comm.Get_size())      # same verdict on every rank
    try:
        records = failure.run_or_abort(comm, lambda: driver.run(comm, settings),
                                       passthrough=(failure.CollectiveError,))
    except failure.CollectiveError as exc:
        raise CliError(str(exc)) from None
    failure.run_or_abort(comm, lambda: driver.finish(comm, records, settings.output))
    return 0

