"""The ``scaling`` record: one MPI point of ``hpc scale`` (rank 0 writes it).

Phase times are medians over repeats of the max over ranks (``MPI.Wtime`` between
barriers); ``rank_compute_s`` keeps each rank's own compute time.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpc.schema.base import Device, KindSchema, Strict


class ScalingParams(Strict):
    op: Literal["maxpool2d", "avgpool2d", "matmul"]
    mode: Literal["strong", "weak"]
    size: int = Field(description="strong: total side; weak: side per rank")
    path: str = Field(description="data path: scatter or parallel-io")
    ranks: int
    shape: list[int] = Field(description="total problem: [h, w] or matmul [m, k, n]")
    dtype: str
    split: str
    weights: list[float] | None = None
    repeats: int
    warmup: int
    threads_per_rank: int | None = None
    numpy_hugepages: bool | None = None
    device: Device = Field(description="rank 0's device")
    rank_devices: list[Device] = Field(description="every rank's device, in rank order")
    devices: list[str] = Field(description="device kind per rank (as requested)")
    backends: list[str]
    device_names: list[str]
    emulated: list[bool]
    hosts: list[str]
    mpi_library_version: str
    mpi_version: str
    h5py_mpi: bool
    experiment: str | None = None
    algorithm: str | None = Field(default=None, description="matmul: 1d or summa")
    grid: list[int] | None = None
    kernel_size: int | None = None
    stride: int | None = None
    padding: int | None = None
    ceil_mode: bool | None = None
    rows_per_rank: list[int] | None = None


class ScalingMetrics(Strict):
    read_s: float
    distribute_s: float
    h2d_s: float = Field(default=0.0, description="GPU ranks: host->device copy of the block, "
                                                  "its own phase (barrier-delimited; ~0 for host ranks)")
    compute_s: float
    d2h_s: float = Field(default=0.0, description="GPU ranks: device->host copy of the result")
    gather_s: float
    write_s: float
    total_s: float
    total_s_repeats: list[float]
    compute_s_repeats: list[float]
    compute_s_min: float
    rank_compute_s: list[float]
    load_imbalance: float = Field(description="max / mean of rank_compute_s")
    gflops: float | None = None
    bytes_moved: int | None = None
    bandwidth_gbs: float | None = Field(default=None, description="bytes_moved / compute_s")
    copy_bandwidth_gbs: float | None = None
    rank_copy_bandwidth_gbs: list[float] | None = None
    rank_copy_kind: list[str] | None = Field(default=None, description=(
        "per rank, what its bound copies: 'np.copyto' (host) or 'device memcpy' (GPU ranks)"))
    bound_gbs: float | None = None
    bound_fraction: float | None = None


KINDS = {"scaling": KindSchema(params=ScalingParams, metrics=ScalingMetrics,
                               description="one MPI scaling point")}
