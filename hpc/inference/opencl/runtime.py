"""One OpenCL context on one device, with each style's program built once.

Kernel objects are created per (style, name) and reused; arguments are set at each enqueue
(OpenCL captures them then), so one host thread may drive several queues with them.
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .device import device_record, select_device
from .geometry import LaunchSpec
from .program import build_program, check_style, program_binary
from hpc.schema.base import Device


class Runtime:
    """Context, device and built programs; ``binaries`` maps a style to a program binary."""

    def __init__(self, device_index: int | None = None,
                 binaries: dict[str, str | Path] | None = None) -> None:
        import pyopencl as cl

        self.cl = cl
        self.device, self.index = select_device(device_index)
        self.ctx = cl.Context([self.device])
        self.binaries = {k: Path(v) for k, v in (binaries or {}).items()}
        self._programs: dict[str, Any] = {}
        self._kernels: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def queue(self, profiling: bool = False) -> Any:
        props = self.cl.command_queue_properties.PROFILING_ENABLE if profiling else 0
        return self.cl.CommandQueue(self.ctx, self.device, properties=props)

    def program(self, style: str) -> Any:
        check_style(style)
        with self._lock:
            if style not in self._programs:
                self._programs[style] = build_program(self.ctx, self.device, style,
                                                      self.binaries.get(style))
            return self._programs[style]

    def kernel(self, style: str, name: str) -> Any:
        key = (style, name)
        if key not in self._kernels:
            self._kernels[key] = self.cl.Kernel(self.program(style), name)
        return self._kernels[key]

    def binary(self, style: str) -> bytes:
        """The device binary of ``style``'s program (what ``--binary`` loads)."""
        return program_binary(self.program(style))

    def record(self, style: str) -> Device:
        return device_record(self.device, self.index, style)

    def to_device(self, array: np.ndarray) -> Any:
        mf = self.cl.mem_flags
        a = np.ascontiguousarray(array, dtype=np.float32)
        return self.cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a)

    def empty(self, nbytes: int) -> Any:
        return self.cl.Buffer(self.ctx, self.cl.mem_flags.READ_WRITE, size=max(int(nbytes), 4))

    def enqueue(self, queue: Any, style: str, spec: LaunchSpec, buffers: tuple[Any, ...],
                wait_for: list[Any] | None = None) -> Any:
        """Launch ``spec`` with its scalars then ``buffers``; returns the event."""
        k = self.kernel(style, spec.kernel)
        k.set_args(*(np.int32(v) for v in spec.scalars), *(np.float32(v) for v in spec.float_scalars),
                   *buffers)
        return self.cl.enqueue_nd_range_kernel(queue, k, spec.global_size, None,
                                               wait_for=wait_for or None)


@functools.lru_cache(maxsize=8)
def shared_runtime(device_index: int | None = None) -> Runtime:
    """A process-wide runtime per device (source-built programs), for the per-op functions."""
    return Runtime(device_index)
