"""The ``hpc.schema.Device`` of the work a backend is about to run, asked of its runtime.

Why a module of its own: every producer (kernel benchmark, MPI driver, training) must
record what actually executed the work, and the report classifies rows by that record
only. The answer comes from the runtime that launches the work (numba.cuda's current
device, the OpenCL queue's device, torch's CUDA device), never from parsing a label.
Nothing here imports a GPU package at module import time.
"""
from __future__ import annotations

from typing import Any

from hpc.schema.base import Device


def cpu() -> Device:
    """The host CPU (model name from /proc/cpuinfo or the platform)."""
    from hpc.provenance import cpu_model
    return Device(kind="cpu", name=cpu_model() or "CPU")


def numba_cuda() -> Device:
    """numba.cuda's current device; the simulator is recorded as emulated on the CPU."""
    from hpc.kernels.cuda_common import simulator_enabled
    if simulator_enabled():
        return Device(kind="cuda", name="numba CUDA simulator", index=0, emulated=True)
    from numba import cuda
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    uuid = getattr(dev, "uuid", None)
    return Device(kind="cuda", name=name, index=int(dev.id), uuid=str(uuid) if uuid else None)


def cupy_cuda() -> Device:
    import cupy
    index = int(cupy.cuda.Device().id)
    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    return Device(kind="cuda", name=name.decode() if isinstance(name, bytes) else str(name), index=index)


def torch_cuda(index: int | None = None) -> Device:
    import torch
    index = torch.cuda.current_device() if index is None else index
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    return Device(kind="cuda", name=str(props.name), index=int(index), uuid=str(uuid) if uuid else None)


def opencl(module: Any | None = None) -> Device:
    """The device of the OpenCL backend's queue; a CPU device is recorded as emulated
    (the FPGA-style kernels run there, never to be shown as FPGA/GPU time)."""
    if module is None:
        from hpc.kernels import backend_opencl as module
    cl, _, _ = module._context()
    d = module._state["device"]
    kinds = ((cl.device_type.ACCELERATOR, "accelerator"), (cl.device_type.GPU, "gpu"),
             (cl.device_type.CPU, "cpu"))
    ocl_type = next((label for flag, label in kinds if d.type & flag), "other")
    return Device(kind="opencl", name=d.name.strip(), opencl_type=ocl_type,  # type: ignore[arg-type]
                  opencl_platform=d.platform.name.strip(), emulated=ocl_type == "cpu")


def for_backend(name: str, variant: str | None = None, on_cuda: bool = False,
                gpu_variants: tuple[str, ...] = ()) -> Device:
    """The device a registry backend runs on (``on_cuda``: torch on CUDA tensors)."""
    if on_cuda:
        return torch_cuda()
    if name == "numba-cuda":
        return numba_cuda()
    if name == "cupy":
        return cupy_cuda()
    if name == "opencl":
        return opencl()
    if name == "study" and variant in gpu_variants:
        return numba_cuda()
    return cpu()
