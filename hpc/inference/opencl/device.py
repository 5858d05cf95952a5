"""Which OpenCL device the engine runs on, and how a record describes it.

Devices are numbered in one flat list over all platforms, in the order the ICD loader
reports them (``hpc infer --device N``); without an index the first accelerator (an FPGA
board) is taken, else the first GPU, else the first CPU device (PoCL here).
"""
from __future__ import annotations

from typing import Any

from hpc.schema.base import Device

# kernel styles that reproduce the FPGA study's designs; on a device that is not an
# accelerator they are emulations of FPGA runs, never FPGA times
FPGA_STYLES: frozenset[str] = frozenset({"single-task", "ndrange"})


class DeviceSelectionError(ValueError):
    """No OpenCL platform, or the requested device index does not exist."""


def _cl() -> Any:
    try:
        import pyopencl as cl
    except ImportError as exc:  # pragma: no cover - pyopencl is a dependency
        raise DeviceSelectionError(f"pyopencl is not importable: {exc}") from exc
    return cl


def list_devices() -> list[Any]:
    """Every OpenCL device of every platform, in the flat order ``--device N`` indexes."""
    cl = _cl()
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:
        raise DeviceSelectionError(
            f"no OpenCL platform ({exc}); install an ICD such as pocl-opencl-icd, or point "
            "OCL_ICD_VENDORS at the directory with the vendor .icd files") from exc
    return [d for p in platforms for d in p.get_devices()]


def describe(devices: list[Any]) -> str:
    return "; ".join(f"{i}: {d.name.strip()} ({d.platform.name.strip()}, {type_name(d)})"
                     for i, d in enumerate(devices)) or "none"


def type_name(device: Any) -> str:
    """CL_DEVICE_TYPE as one of cpu/gpu/accelerator/other."""
    cl = _cl()
    t = device.type
    if t & cl.device_type.ACCELERATOR:
        return "accelerator"
    if t & cl.device_type.GPU:
        return "gpu"
    if t & cl.device_type.CPU:
        return "cpu"
    return "other"


def select_device(index: int | None) -> tuple[Any, int]:
    """The device for ``index`` (or the default preference) and its flat index."""
    devices = list_devices()
    if not devices:
        raise DeviceSelectionError("no OpenCL device found")
    if index is not None:
        if not 0 <= index < len(devices):
            raise DeviceSelectionError(f"--device {index}: there are {len(devices)} OpenCL "
                                       f"device(s): {describe(devices)}")
        return devices[index], index
    for wanted in ("accelerator", "gpu", "cpu"):
        for i, d in enumerate(devices):
            if type_name(d) == wanted:
                return d, i
    return devices[0], 0


def device_record(device: Any, index: int, style: str) -> Device:
    """The ``params["device"]`` entry of a record; ``emulated`` when one of the study's FPGA
    designs runs on a device that is not an accelerator."""
    kind = type_name(device)
    return Device(kind="opencl", name=device.name.strip(), opencl_type=kind,  # type: ignore[arg-type]
                  opencl_platform=device.platform.name.strip(), index=index,
                  emulated=style in FPGA_STYLES and kind != "accelerator")
