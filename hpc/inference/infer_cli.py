"""``python -m hpc infer``: classify a batch with a network from a weights file.

    python -m hpc infer --model squeezenet1_1 --weights W.pt --input X.npy \
        --backend opencl --style tiled [--device N] [--two-queues] [--binary kernels.bin] \
        --output Y.npy

Prints the top-5 classes of every image and the time of the forward pass (after one
warm-up pass that builds the kernels and device buffers). The network is built by
``hpc.inference.networks`` (widths read from the weights) and runs on a backend of
``hpc.inference.backends`` (``--backend torch`` is the golden model). Under ``mpiexec -n P`` with
``--devices cpu,opencl,...`` the batch is split over the ranks (see
``hpc.inference.distributed``); ``--expect-ranks P`` makes a wrong launch fail loudly.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpc.cli import CliError

STYLE_CHOICES = ("single-task", "ndrange", "tiled")
MODEL_CHOICES = ("squeezenet1_1", "alexnet-small", "alexnet-imagenet")


class InputFileError(ValueError):
    """An input batch file of the wrong format, dtype or shape."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=MODEL_CHOICES, required=True)
    parser.add_argument("--weights", required=True, help="torch state dict (.pt) or hpc training checkpoint")
    parser.add_argument("--input", required=True, help=".npy float32 NCHW batch")
    parser.add_argument("--output", required=True, help=".npy file for the float32 scores (N, classes)")
    parser.add_argument("--backend", choices=("opencl", "torch"), default="opencl")
    parser.add_argument("--style", choices=STYLE_CHOICES, default="tiled",
                        help="OpenCL kernel style (default tiled)")
    parser.add_argument("--device", type=int, default=None,
                        help="OpenCL device index over all platforms (default: accelerator, GPU, CPU)")
    parser.add_argument("--two-queues", action="store_true",
                        help="run each fire module's expand1x1 on a second command queue")
    parser.add_argument("--binary", default=None,
                        help="precompiled program for --style (clCreateProgramWithBinary; FPGA .aocx)")
    parser.add_argument("--save-binary", default=None,
                        help="write the built program's device binary here (reload it with --binary)")
    parser.add_argument("--repeats", type=int, default=1, help="timed forward passes (default 1)")
    parser.add_argument("--top", type=int, default=5, help="classes printed per image (default 5)")
    parser.add_argument("--devices", default=None,
                        help="distributed: one device per MPI rank, e.g. cpu,opencl,opencl "
                             "(cpu = torch on the CPU, opencl = the OpenCL engine)")
    parser.add_argument("--split", choices=("weighted", "even"), default="weighted",
                        help="distributed: split the batch by calibrated throughput or evenly")
    parser.add_argument("--expect-ranks", type=int, default=None,
                        help="fail unless running on exactly this many MPI ranks")
    parser.set_defaults(func=main)


def _launched_under_mpi() -> int:
    """Ranks of the MPI job this process belongs to, from the launcher's environment
    (MPICH/hydra: PMI_SIZE, Open MPI: OMPI_COMM_WORLD_SIZE); 1 outside MPI."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def read_input(path: str | os.PathLike[str]) -> np.ndarray:
    """An NCHW float32 batch from a .npy file (no pickles, no silent conversion)."""
    path = Path(path)
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputFileError(f"{path}: input file not found") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a .npy array ({exc})") from None
    if x.dtype != np.float32:
        raise InputFileError(f"{path}: dtype {x.dtype}, expected float32 (save x.astype(np.float32))")
    if x.ndim != 4 or 0 in x.shape:
        raise InputFileError(f"{path}: shape {x.shape}, expected a non-empty 4-D NCHW batch")
    return np.ascontiguousarray(x)


def input_size_of(path: str | os.PathLike[str]) -> int:
    """Height of the batch in ``path`` without loading it all (for building size-dependent nets)."""
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception:  # noqa: BLE001 - read_input reports it properly
        return 0
    return int(x.shape[2]) if x.ndim == 4 else 0


def check_input_fits(x: np.ndarray, model: Any, name: str, source: str) -> None:
    """Raise InputFileError when the batch does not fit the network built from the weights."""
    from torch import nn
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    if x.shape[1] != first.in_channels:
        raise InputFileError(f"{source}: shape {x.shape}: {name} with these weights expects "
                             f"{first.in_channels} input channels")
    if name == "alexnet-small" and (x.shape[2] != x.shape[3] or x.shape[2] != model.input_size):
        raise InputFileError(f"{source}: shape {x.shape}: the small AlexNet takes square 32/64/128 px "
                             "images")
    if name == "alexnet-imagenet" and model.input_size != x.shape[2]:
        raise InputFileError(f"{source}: shape {x.shape}: built for {model.input_size} px input")


def load_network(args: argparse.Namespace) -> tuple[Any, np.ndarray]:
    """(model, input batch) with every file/shape problem turned into a CliError."""
    from hpc.inference.networks import WeightsError, build
    try:
        model, _ = build(args.model, weights=args.weights, input_size=input_size_of(args.input) or None)
        x = read_input(args.input)
        check_input_fits(x, model, args.model, args.input)
    except (WeightsError, InputFileError) as exc:
        raise CliError(str(exc)) from None
    return model, x


def make_backend(kind: str, args: argparse.Namespace) -> Any:
    """The backend of one device kind: ``torch``/``cpu`` (torch on the CPU), ``cuda`` (torch
    on a GPU) or ``opencl`` (the OpenCL engine with ``--style``, ``--device``, ``--two-queues``,
    ``--binary``); not yet prepared."""
    from hpc.inference.backends import OpenCLBackend, TorchBackend
    if kind in ("torch", "cpu"):
        return TorchBackend("cpu")
    if kind == "cuda":
        return TorchBackend("cuda")
    return OpenCLBackend(args.style, args.device, args.two_queues, args.binary)


def top_classes(scores: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per row: the ``k`` highest scores as (class index, score), best first (ties: lower index)."""
    k = max(1, min(k, scores.shape[1]))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[(int(c), float(scores[i, c])) for c in row] for i, row in enumerate(order)]


def print_results(scores: np.ndarray, k: int, elapsed_s: float, what: str) -> None:
    for i, row in enumerate(top_classes(scores, k)):
        print(f"image {i}: " + ", ".join(f"{c} ({s:.4f})" for c, s in row))
    n = scores.shape[0]
    print(f"time: {elapsed_s:.4f} s for {n} image(s), {elapsed_s / n:.4f} s per image ({what})")


def save_output(path: str, scores: np.ndarray) -> None:
    from hpc.atomic import atomic_path
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, scores)


def main(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise CliError(f"--repeats {args.repeats}: must be >= 1")
    if args.backend != "opencl" and (args.save_binary or args.binary):
        raise CliError("--binary/--save-binary need --backend opencl")
    if args.devices is not None or args.expect_ranks is not None:
        from hpc.inference.distributed import main as distributed_main
        return distributed_main(args)
    if _launched_under_mpi() > 1:
        raise CliError(f"running under MPI with {_launched_under_mpi()} ranks but without --devices: "
                       "give one device per rank (e.g. --devices cpu,opencl) to split the batch")
    from hpc.inference.backends import BackendUnavailable
    from hpc.inference.opencl import (DeviceSelectionError, InputError, KernelBuildError, LayerShapeError,
                                      UnsupportedLayerError)

    model, x = load_network(args)
    backend = make_backend(args.backend, args)
    try:
        backend.prepare(model)
        backend.forward(x)                                  # warm-up: buffers, first launches
        times, scores = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            scores = backend.forward(x)
            times.append(time.perf_counter() - t0)
    except (BackendUnavailable, DeviceSelectionError, KernelBuildError, InputError, LayerShapeError,
            UnsupportedLayerError) as exc:
        raise CliError(str(exc)) from None
    assert scores is not None
    dev = backend.device()
    what = (f"{args.backend}" + (f" {args.style}{' two queues' if args.two_queues else ''}"
                                 if args.backend == "opencl" else "")
            + f" on {dev.name}{' [emulated FPGA design]' if dev.emulated else ''}; median of {args.repeats}")
    print_results(scores, args.top, float(np.median(times)), what)
    try:
        save_output(args.output, scores)
        if args.save_binary:
            from hpc.atomic import atomic_path
            with atomic_path(args.save_binary) as tmp:
                Path(tmp).write_bytes(backend.engine.runtime.binary(args.style))
    except OSError as exc:
        raise CliError(str(exc)) from None
    return 0
