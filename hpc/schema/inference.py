"""Record kinds of the inference batch sweep (``hpc bench inference``).

Two kinds:

* ``inference_batch``: one warm-run measurement of one model on one backend at one batch
  size, host-memory variant and dtype: where the time of a batch goes (per layer type,
  copies, allocation, free, synchronisation), total per batch and per image, images/s,
  peak memory. A batch that does not fit the memory budget is a ``skipped`` record whose
  error says "out of memory at N" and whose params carry the cap.
* ``inference_sweep``: one per (model, backend, dtype, host memory) sweep: the cold start
  measured once, the fits ``time = a + b * batch`` per component, peak throughput and the
  smallest batch reaching 90 % of it, and the memory cap.

All times are seconds of one batch (``*_s``), memory in bytes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpc.schema.base import Device, KindSchema, Strict

#: Components a batch's time is split into; every ``*_s`` below is one of them.
LAYER_COMPONENTS: tuple[str, ...] = ("conv", "fc", "pool", "activation", "other")
COPY_COMPONENTS: tuple[str, ...] = ("h2d", "d2h")
RUNTIME_COMPONENTS: tuple[str, ...] = ("alloc", "free", "sync")
COMPONENTS: tuple[str, ...] = LAYER_COMPONENTS + COPY_COMPONENTS + RUNTIME_COMPONENTS

HostMemory = Literal["pageable", "pinned"]


class InferenceSweepParams(Strict):
    """What ran: model, backend (name and style), device, dtype, host memory."""

    experiment: str | None = Field(default=None, description="experiment name, if run from one")
    model: str = Field(description="alexnet-imagenet (227x227x3, 1000 classes) or alexnet-mri (32x32x1)")
    input_shape: list[int] = Field(description="one image, CHW")
    num_classes: int
    weights: str = Field(description="'random(seed=N)' or the state-dict path that was loaded")
    backend: str = Field(description="backend name, e.g. torch, torch-cuda, opencl")
    style: str | None = Field(default=None, description="backend variant (OpenCL engine style)")
    device: Device
    dtype: str
    host_memory: HostMemory = Field(description="pageable or pinned host buffers for the copies")
    threads: int | None = Field(default=None, description="torch intra-op threads (CPU)")
    repeats: int | None = Field(default=None, description="timed warm runs")
    warmup: int | None = Field(default=None, description="untimed warm-up runs before timing")
    memory_budget_bytes: int | None = Field(default=None, description="budget the cap is derived from")
    memory_cap_batch: int | None = Field(default=None, description="largest batch whose estimate fits the budget")
    profiler: str | None = Field(default=None, description="what produced the per-component times")
    copies: str | None = Field(default=None, description="what the h2d/d2h components measured on this backend")
    command: str | None = Field(default=None, description="the command line (failed/skipped points)")


class InferenceParams(InferenceSweepParams):
    """One point of the sweep: the sweep's params plus the batch size."""

    batch: int = Field(ge=1)


class InferenceBatchMetrics(Strict):
    """Where one warm batch's time goes. Components are medians over the profiled runs."""

    conv_s: float = Field(ge=0, description="convolution layers")
    fc_s: float = Field(ge=0, description="fully connected layers")
    pool_s: float = Field(ge=0, description="pooling layers")
    activation_s: float = Field(ge=0, description="ReLU")
    other_s: float = Field(ge=0, description="other layers (LRN, dropout, flatten, identity)")
    h2d_s: float | None = Field(default=None, ge=0, description="input copy host -> device; None: no such copy")
    d2h_s: float | None = Field(default=None, ge=0, description="output copy device -> host; None: no such copy")
    alloc_s: float = Field(ge=0, description="allocating the batch's input/output buffers (host and device)")
    free_s: float = Field(ge=0, description="releasing those buffers")
    sync_s: float | None = Field(default=None, ge=0, description=(
        "waiting for the device at the end of the batch; None: no asynchronous device (torch CPU)"))
    components_sum_s: float = Field(ge=0, description="sum of the components above (profiled runs)")
    profiled_total_s: float = Field(ge=0, description="wall time of a profiled batch (median)")
    unattributed_s: float = Field(description="profiled_total_s - components_sum_s (profiler overhead, glue)")
    total_s: float = Field(gt=0, description="wall time per batch, unprofiled warm runs (median)")
    total_iqr_s: float = Field(ge=0, description="interquartile range of the unprofiled warm runs")
    per_image_s: float = Field(gt=0, description="total_s / batch")
    images_per_s: float = Field(gt=0, description="batch / total_s")
    peak_memory_bytes: int | None = Field(default=None, description=(
        "peak device memory during the batch above the level before it (CUDA: "
        "max_memory_allocated; CPU: peak RSS (VmHWM, reset per batch) minus RSS before)"))
    peak_memory_method: str | None = None
    runs: int = Field(ge=1, description="unprofiled timed runs")
    profiled_runs: int = Field(ge=1)


class ComponentFit(Strict):
    """``time = fixed_s + per_image_s * batch``, least squares over the sweep's ok points."""

    fixed_s: float = Field(description="a: the cost per batch that does not grow with it")
    per_image_s: float = Field(description="b: the cost of each extra image")
    r2: float | None = Field(default=None, description="coefficient of determination (None: constant data)")
    n_points: int = Field(ge=2)
    batch_min: int
    batch_max: int


class InferenceSweepMetrics(Strict):
    """Summary of one sweep: cold start, fits, throughput knee, memory cap."""

    cold_start_s: float | None = Field(default=None, description="first forward of a fresh model at batch 1")
    warm_batch1_s: float | None = Field(default=None, description="median warm forward at batch 1, same process")
    batches_ok: list[int] = Field(default_factory=list)
    batches_skipped: list[int] = Field(default_factory=list)
    peak_images_per_s: float | None = None
    peak_batch: int | None = None
    batch_90pct_peak: int | None = Field(default=None, description="smallest batch with >= 90 % of peak images/s")
    fits: dict[str, ComponentFit] = Field(default_factory=dict, description="per component and 'total'")


KINDS = {
    "inference_batch": KindSchema(params=InferenceParams, metrics=InferenceBatchMetrics,
                                  description="one warm batch of an inference sweep, time per component"),
    "inference_sweep": KindSchema(params=InferenceSweepParams,
                                  metrics=InferenceSweepMetrics,
                                  description="cold start, per-component fits and throughput knee of one sweep"),
}

#: Kinds that recorded ``params.device`` as a Device since their first (v2) records, so
#: ``hpc.records.upgrade`` can read their v2 records as v3 without converting anything.
DEVICE_OBJECT_FROM_V2: frozenset[str] = frozenset(KINDS)
