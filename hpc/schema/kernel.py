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


KINDS = {"kernel": KindSchema(params=KernelParams, metrics=KernelMetrics,
                              description="one kernel benchmark point")}
