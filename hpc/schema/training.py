"""Training records: ``training_epoch`` (one per epoch), ``training`` (the finished run) and
``ddp`` (a data-parallel run's throughput, or an all-reduce timing).

Accuracies are fractions in [0, 1]. The test-set fields with ``_correct``/``_count`` give
k/n so a reader can recompute any interval; ``test_accuracy_ci95`` is the 95 % Wilson
interval of k/n; ``subject_test_*`` are the per-subject figures: each test subject is
classified by majority vote over its slices, and ``subject_test_correct`` of
``subject_test_count`` subjects are right (``subject_test_accuracy`` = their ratio).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpc.schema.base import Device, KindSchema, Strict


class TrainingParams(Strict):
    arch: str
    width: float
    hidden: int
    device: Device = Field(description="what the training ran on (rank 0's device under DDP)")
    threads: int
    world_size: int
    launcher: str
    batch_size: int
    lr: float
    optimizer: str
    scheduler: str
    weight_decay: float
    epochs: int = Field(description="epochs requested")
    seed: int
    amp: bool
    channels_last: bool
    compile: bool
    deterministic: bool
    data: str
    data_fingerprint: str
    n_train: int
    n_val: int
    n_test: int
    image_shape: list[int]
    class_names: list[str]
    experiment: str | None = None
    config_hash: str
    run: str | None = Field(default=None, description="the run's name in its experiment")
    split: str | None = Field(default=None, description="how train/val/test were split (e.g. by subject)")
    hosts: list[str] | None = Field(default=None, description="host of every rank, in rank order")


class EpochParams(TrainingParams):
    epoch: int = Field(description="1-based epoch number")


class EpochMetrics(Strict):
    train_loss: float
    train_accuracy: float
    epoch_s: float = Field(description="training time of the epoch (no evaluation)")
    images_per_s: float
    lr: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    eval_s: float
    wall_s: float = Field(description="run time so far, across resumes")


class TrainingMetrics(Strict):
    test_accuracy: float | None
    test_loss: float | None
    precision: dict[str, float | None] = Field(description="per class; None where never predicted")
    recall: dict[str, float | None]
    confusion_matrix: list[list[int]] = Field(description="rows: true class, columns: predicted")
    wall_s: float
    train_s: float
    images_per_s: float
    steady_images_per_s: float = Field(description="median over epochs after the first")
    epochs_completed: int
    best_epoch: int
    best_val_accuracy: float
    final_val_accuracy: float | None = None
    final_train_accuracy: float
    test_accuracy_per_epoch: list[float | None] | None = None
    best_checkpoint_test_accuracy: float | None = None
    test_correct: int | None = Field(default=None, description="k of k/n test images right")
    test_count: int | None = Field(default=None, description="n of k/n")
    test_accuracy_ci95: tuple[float, float] | None = Field(default=None, description="Wilson 95% interval")
    subject_test_accuracy: float | None = Field(default=None, description="majority vote per test subject")
    subject_test_correct: int | None = Field(default=None, description="k of k/n test subjects right")
    subject_test_count: int | None = Field(default=None, description="n of k/n: test subjects")


class DdpParams(Strict):
    """A DDP training run (the training params) or an all-reduce timing (op='allreduce')."""

    op: Literal["train", "allreduce"] = "train"
    world_size: int
    device: Device | None = Field(default=None, description="rank 0's device")
    numel: int | None = Field(default=None, description="allreduce: floats reduced")
    arch: str | None = None
    width: float | None = None
    hidden: int | None = None
    threads: int | None = None
    launcher: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    scheduler: str | None = None
    weight_decay: float | None = None
    epochs: int | None = None
    seed: int | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    deterministic: bool | None = None
    data: str | None = None
    data_fingerprint: str | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    image_shape: list[int] | None = None
    class_names: list[str] | None = None
    experiment: str | None = None
    config_hash: str | None = None
    run: str | None = None
    split: str | None = None
    hosts: list[str] | None = Field(default=None, description="host of every rank, in rank order")


class DdpMetrics(Strict):
    images_per_s: float | None = Field(default=None, description="all ranks together, steady epochs")
    images_per_s_per_rank: float | None = None
    scaling_efficiency: float | None = Field(default=None, description="vs the 1-rank baseline given")
    baseline_images_per_s: float | None = None
    speedup: float | None = None
    train_s: float | None = None
    test_accuracy: float | None = None
    allreduce_bytes_per_step: int | None = None
    median_s: float | None = Field(default=None, description="allreduce: median time")
    min_s: float | None = None
    algbw_gbs: float | None = None
    busbw_gbs: float | None = None


KINDS = {
    "training_epoch": KindSchema(params=EpochParams, metrics=EpochMetrics, description="one epoch"),
    "training": KindSchema(params=TrainingParams, metrics=TrainingMetrics, description="a finished run"),
    "ddp": KindSchema(params=DdpParams, metrics=DdpMetrics, description="data-parallel throughput"),
}
