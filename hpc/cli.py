"""``python -m hpc``: one entry point, one subcommand per stage.

Stage modules are imported only when their subcommand runs, so ``hpc data info`` does not
pay for importing torch or numba. Each stage module exposes ``configure(parser)``, which
adds its options (and sub-subcommands) and sets ``func`` on the namespace; ``func(args)``
returns the process exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# subcommand -> (module with configure(parser), one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "data": ("hpc.data.cli", "NIfTI volumes -> 2-D slice dataset in HDF5 (build, info, png export)"),
    "bench": ("hpc.kernels.cli", "benchmark pooling/matmul backends (kernels) and AlexNet inference across batch sizes (inference)"),
    "gpu-check": ("hpc.kernels.gpu_check", "on one NVIDIA GPU: GPU tests, GPU benchmark, AMP training, report (<8 min)"),
    "backends": ("hpc.kernels.cli_backends", "list kernel backends and why unavailable ones cannot run here"),
    "scale": ("hpc.parallel.cli", "strong/weak scaling of distributed kernels (run under mpiexec/srun)"),
    "model": ("hpc.models.cli", "AlexNet variants and SqueezeNet v1.1: per-layer shapes, parameters, MACs"),
    "infer": ("hpc.inference.infer_cli", "classify a batch with SqueezeNet/AlexNet weights on torch or OpenCL"),
    "train": ("hpc.train.cli", "train AlexNet on a slice dataset: lr-find, run, ddp (resumable)"),
    "compress": ("hpc.compress.cli", "k-means weight clustering, clustered convolution, NetAdapt, binarised nets"),
    "report": ("hpc.analysis.cli", "aggregate JSONL records into tables, plots and an HTML report"),
    "compare": ("hpc.analysis.runs_cli:configure_compare", "compare two runs point by point; flag regressions"),
    "references": ("hpc.analysis.runs_cli:configure_references", "per-system reference values with tolerances"),
    "runs": ("hpc.analysis.runs_cli:configure_runs", "the history of runs: add a results directory, list"),
}


class CliError(Exception):
    """An error meant for the user: printed as one line, exit status 2."""


def _top_level_help() -> str:
    width = max(len(n) for n in STAGES)
    lines = ["usage: python -m hpc <command> [options]", "",
             "HPC experiment suite: parallel pooling and AlexNet training on MRI data.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in STAGES.items()]
    lines += ["", "Run 'python -m hpc <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in STAGES:
        print(f"hpc: unknown command {name!r}; choose from {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module_name, help_ = STAGES[name]
    module_name, _, configure = module_name.partition(":")
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"hpc {name}", description=help_)
    getattr(module, configure or "configure")(parser)
    args = parser.parse_args(rest)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except CliError as exc:
        print(f"hpc {name}: error: {exc}", file=sys.stderr)
        return 2
