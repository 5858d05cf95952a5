"""OpenCL CNN inference engine (pyopencl; PoCL on CPUs, any GPU's OpenCL, FPGA boards via
precompiled binaries), with every kernel in three styles: ``single-task`` (FPGA pipelined
single work-item), ``ndrange`` (the FPGA study's reference NDRange design) and ``tiled``
(this suite's NDRange design).

    engine = OpenCLEngine(model, style="tiled", device_index=None, two_queues=False, binary=None)
    scores = engine.forward(x)          # x: float32 NCHW
    engine.profile(x)                   # [(layer, layer_type, kernel, seconds), ...]
    engine.device                       # hpc.schema.base.Device for records
"""
from .device import DeviceSelectionError, list_devices
from .engine import InputError, LayerShapeError, OpenCLEngine, UnsupportedLayerError
from .program import STYLES, KernelBuildError, kernel_source
from .runtime import Runtime

__all__ = ["DeviceSelectionError", "InputError", "KernelBuildError", "LayerShapeError", "OpenCLEngine",
           "Runtime", "STYLES", "UnsupportedLayerError", "kernel_source", "list_devices"]
