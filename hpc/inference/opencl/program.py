"""Kernel sources per style, and building them from source or loading a device binary.

An FPGA board cannot compile OpenCL C at run time: its program is a bitstream built offline
(Intel FPGA SDK: ``aoc``), loaded with clCreateProgramWithBinary. ``--binary`` takes that
path on every device; the test suite exercises it with a binary PoCL produced itself
(:func:`program_binary`). Kernels take every size as a run-time argument, so one binary per
style serves every network.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

STYLES: dict[str, str] = {
    "single-task": "one work-item per kernel, pipelined loops with shift-register accumulation "
                   "(the study's FPGA single-task design)",
    "ndrange": "one work-item per output row of one filter (the study's reference NDRange design)",
    "tiled": "one work-item per output pixel computing 8 filters in a float8 accumulator, "
             "re-blocked weights (this suite's NDRange design)",
}

KERNEL_NAMES: tuple[str, ...] = ("conv2d", "conv2d_3x3", "conv2d_1x1", "linear", "maxpool2d",
                                 "avgpool2d", "avgpool_global", "lrn")


class KernelBuildError(RuntimeError):
    """The device could not build (or load) the kernels of a style."""


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style={style!r}: expected one of {', '.join(STYLES)}")


def kernel_source(style: str) -> str:
    """The full OpenCL C source of one style (the shared header, then the style's kernels).

    Write it to a file to build an FPGA bitstream with ``aoc`` (see docs/inference-opencl.md).
    """
    check_style(style)
    pkg = resources.files("hpc.inference.opencl") / "kernels"
    stem = style.replace("-", "_")
    return (pkg / "common.h").read_text() + "\n" + (pkg / f"{stem}.cl").read_text()


def build_program(ctx: Any, device: Any, style: str, binary: str | Path | None = None) -> Any:
    """A built program with every kernel of ``style``, from source or from ``binary``."""
    import pyopencl as cl

    check_style(style)
    where = f"OpenCL device {device.name.strip()!r} ({device.platform.name.strip()})"
    if binary is not None:
        path = Path(binary)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KernelBuildError(f"--binary {path}: cannot read it: {exc}") from exc
        try:
            program = cl.Program(ctx, [device], [data]).build()
        except cl.Error as exc:
            raise KernelBuildError(f"{where} could not load the program binary {path}: "
                                   f"{_first_line(exc)} (a binary only loads on the device "
                                   "and runtime that produced it)") from exc
        origin = f"binary {path}"
    else:
        try:
            program = cl.Program(ctx, kernel_source(style)).build(options=["-cl-std=CL1.2"])
        except cl.Error as exc:
            raise KernelBuildError(f"{where} could not build the {style} kernels: "
                                   f"{_first_line(exc)}\n{exc}") from exc
        origin = "source"
    names = set(program.get_info(cl.program_info.KERNEL_NAMES).split(";"))
    missing = [k for k in KERNEL_NAMES if k not in names]
    if missing:
        raise KernelBuildError(f"{where}: the program from {origin} lacks kernel(s) "
                               f"{', '.join(missing)} of the {style} style")
    return program


def program_binary(program: Any) -> bytes:
    """The device binary of a built program (one device), as clGetProgramInfo returns it."""
    import pyopencl as cl

    binaries = program.get_info(cl.program_info.BINARIES)
    if len(binaries) != 1 or not binaries[0]:
        raise KernelBuildError("the program has no single device binary to save")
    return bytes(binaries[0])


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
