"""The ``kernel`` record: one benchmarked point of ``hpc bench kernels``.

Pooling points report bandwidth against a copy of the same bytes in the same run;
matmul points report GFLOP/s against BLAS/cuBLAS in the same run. ``bound_fraction`` is
achieved / bound in both cases (GB/s for pooling, GFLOP/s for matmul).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpc.schema.base import Device, KindSchema, Strict

IntOrPair = int | list[int]


class KernelParams(Strict):
    op: Literal["maxpool2d", "avgpool2d", "matmul"]
    backend: str = Field(description="benchmark target label: name[:variant], 'torch:cuda'")
    backend_name: str = Field(description="registry backend name")
    variant: str | None = None
    shape: list[int] = Field(description="NCHW input for pooling; [m, k, n] for matmul")
    out_shape: list[int] | None = None
    kernel: IntOrPair | None = Field(default=None, description="pooling window (pooling only)")
    stride: IntOrPair | None = None
    padding: IntOrPair | None = None
    ceil_mode: bool | None = None
    dtype: str
    device: Device | None = Field(description="what ran the point; None only when nothing ran")
    bound_kind: str | None = Field(default=None, description="how the same-run bound was measured")
    timing: str | None = Field(default=None, description="how time was taken when not the wall clock")
    experiment: str | None = None
    group: str | None = None
    repeats: int
    warmup: int
    run_index: int | None = Field(default=None, description="position in the sweep's (shuffled) run order")
    out_buffer: bool | None = Field(default=None, description="numba out=: one pre-allocated output, "
                                                             "not the default API call")
    tf32: dict[str, bool] | None = Field(default=None, description="CUDA matmul: TF32 switches as set")


class KernelMetrics(Strict):
    repeats: int
    warmup: int
    median_s: float
    iqr_s: float
    min_s: float
    max_s: float
    h2d_s: float | None = Field(default=None, description="host->device transfer, timed apart")
    d2h_s: float | None = Field(default=None, description="device->host transfer, timed apart")
    bytes_moved: int | None = Field(default=None, description="pooling: input + output bytes")
    bandwidth_gbs: float | None = Field(default=None, description="pooling: bytes_moved / median_s, 1e9 B/s")
    bound_copy_median_s: float | None = None
    bound_gbs: float | None = Field(default=None, description="pooling: same-run copy bandwidth")
    flops: int | None = Field(default=None, description="matmul: 2 m k n")
    gflops: float | None = None
    bound_median_s: float | None = None
    bound_gflops: float | None = Field(default=None, description="matmul: same-run BLAS/cuBLAS")
    bound_fraction: float | None = Field(default=None, description="achieved / same-run bound")
    max_abs_error: float | None = Field(default=None, description="vs the NumPy reference (--check)")
    # spread and warm-up (hpc.kernels.sampling)
    q1_s: float | None = None
    q3_s: float | None = None
    rel_iqr: float | None = Field(default=None, description="iqr_s / median_s")
    spread_flag: bool | None = Field(default=None, description="rel_iqr > 0.25: too noisy to trust")
    warmup_calls: int | None = Field(default=None, description="untimed calls until settled")
    warmup_s: float | None = None
    warmup_settled: bool | None = Field(default=None, description="False: max warm-up time ran out")
    warmup_first_s: float | None = Field(default=None, description="the first call of the point")
    bound_min_s: float | None = Field(default=None, description="fastest copy of the bound")
    bound_fraction_best: float | None = Field(default=None, description="from the minima")
    wall_median_s: float | None = Field(default=None, description=(
        "host wall time per call (transfers, allocation included): the like-for-like column "
        "across CPU backends and OpenCL"))
    event_median_s: float | None = Field(default=None, description="OpenCL: profiling-event kernel time")
    loadavg_1m_start: float | None = Field(default=None, description="/proc/loadavg when the point began")
    loadavg_1m_end: float | None = None
    error_ratio: float | None = Field(default=None, description=(
        "matmul: max error / (sqrt(k) eps |A||B|); <= 1 passes (hpc.kernels.tolerance)"))
    # CUDA timing (hpc.kernels.gpu_timing)
    launch_overhead_s: float | None = Field(default=None, description="one tiny launch + sync, host clock")
    launches_per_sample: int | None = None
    rotation_buffers: int | None = Field(default=None, description="input copies cycled past L2")
    l2_flush_bytes: int | None = None
    l2_bytes: int | None = None
    bound_memcpy_median_s: float | None = None
    bound_copy_kernel_median_s: float | None = None
    bound_memcpy_gbs: float | None = Field(default=None, description="device memcpy, read + write")
    bound_copy_kernel_gbs: float | None = Field(default=None, description="copy kernel, read + write")


KINDS = {"kernel": KindSchema(params=KernelParams, metrics=KernelMetrics,
                              description="one kernel benchmark point")}
