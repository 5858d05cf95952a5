"""Record kinds of the OpenCL inference engine's benchmark (``hpc.inference.opencl.bench``).

* ``inference_network``: end-to-end forward passes of one network on one engine (OpenCL
  style or torch) and device: host wall time per forward (batch copied in, every kernel,
  scores copied out), repeated as the FPGA study did (50 runs).
* ``inference_layer``: one kernel launch of a network (one layer, or one of a fire module's
  three convolutions) timed by OpenCL profiling events (CL_PROFILING_COMMAND_START to END),
  over several profiled forward passes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpc.schema.base import Device, KindSchema, Strict

Style = Literal["single-task", "ndrange", "tiled"]


class NetworkParams(Strict):
    model: str = Field(description="squeezenet1_1, alexnet-small, alexnet-imagenet")
    engine: Literal["opencl", "torch"]
    style: Style | None = Field(default=None, description="OpenCL kernel style; None for torch")
    two_queues: bool = Field(default=False, description="fire expand1x1 on a second command queue")
    binary: bool = Field(default=False, description="program loaded from a device binary")
    batch: int = Field(ge=1)
    input_shape: list[int] = Field(description="N, C, H, W")
    classes: int = Field(ge=1)
    macs_per_image: int = Field(ge=0, description="multiply-accumulates of one forward, per image")
    repeats: int = Field(ge=1)
    warmup: int = Field(ge=0)
    threads: int | None = Field(default=None, description="torch intra-op threads (torch engine)")
    device: Device
    load_avg: list[float] = Field(description="/proc/loadavg 1/5/15 min at the start of the point")


class NetworkMetrics(Strict):
    wall_s: list[float] = Field(description="host wall time of each timed forward pass, seconds")
    wall_s_median: float
    wall_s_min: float
    wall_s_max: float
    wall_s_q1: float
    wall_s_q3: float
    s_per_image_median: float = Field(description="wall_s_median / batch")
    mmac_per_s: float = Field(description="macs_per_image * batch / wall_s_median / 1e6")
    max_abs_diff_vs_torch: float | None = Field(
        default=None, description="largest |score - torch score| of the last pass")


class LayerParams(Strict):
    model: str
    style: Style
    two_queues: bool
    batch: int = Field(ge=1)
    input_shape: list[int]
    layer: str = Field(description="module path, e.g. features.3.expand3x3")
    layer_type: str = Field(description="conv1x1, conv3x3, conv, maxpool, avgpool, avgpool_global, linear")
    kernel: str = Field(description="OpenCL kernel function name")
    global_size: list[int]
    position: int = Field(ge=0, description="launch index within the forward pass")
    macs: int = Field(ge=0, description="multiply-accumulates of this launch (whole batch)")
    repeats: int = Field(ge=1)
    device: Device


class LayerMetrics(Strict):
    event_s: list[float] = Field(description="profiling-event duration per profiled pass, seconds")
    event_s_median: float
    event_s_min: float
    event_s_max: float
    mmac_per_s: float | None = Field(default=None, description="macs / event_s_median / 1e6; None "
                                                               "for pooling")


KINDS = {
    "inference_network": KindSchema(params=NetworkParams, metrics=NetworkMetrics,
                                    description="end-to-end CNN inference (host wall time)"),
    "inference_layer": KindSchema(params=LayerParams, metrics=LayerMetrics,
                                  description="one kernel launch of a CNN forward (OpenCL events)"),
}
