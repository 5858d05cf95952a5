"""Record kinds of the compression stage (hpc.compress).

* ``compression``           - a workflow job of the stage that failed or was skipped (written by
  ``hpc.workflow point``; carries only which experiment/run it was);
* ``compression_base``      - the full-precision network the methods start from (held-out accuracy);
* ``compression_kmeans``    - one (bits, init, mode) point of k-means weight clustering;
* ``compression_conv``      - one clustered-convolution benchmark point (layer, threads, impl);
* ``compression_netadapt``  - one NetAdapt iteration (row of the history table);
* ``compression_netadapt_result`` - the final pruned network vs the unpruned one, on test;
* ``compression_binary``    - the binarised network vs full precision, with its packed size.

Accuracies are always k/n with a 95 % Wilson interval; ``*_accuracy`` = k/n.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpc.schema.base import Device, KindSchema, Strict


class JobParams(Strict):
    experiment: str
    run: str
    method: str | None = None
    command: str | None = None


class _RunParams(Strict):
    experiment: str
    run: str
    device: Device
    dataset: str = Field(description="path of the hpc-slices file")
    arch: str = Field(description="network architecture (hpc.models.build_model arch)")
    seed: int


class _TestAccuracy(Strict):
    test_accuracy: float
    test_correct: int
    test_total: int
    test_ci_low: float = Field(description="95 % Wilson interval, lower bound")
    test_ci_high: float


class BaseParams(_RunParams):
    epochs: float = Field(description="epochs trained (of the training run, when loaded from one)")
    batch_size: int
    lr: float
    source: str | None = Field(None, description="training checkpoint the network was loaded from "
                                                 "(base.from_training); None: trained by this job")


class BaseMetrics(_TestAccuracy):
    val_accuracy: float
    val_correct: int
    val_total: int
    val_ci_low: float
    val_ci_high: float
    params: int = Field(description="number of parameters")
    macs: int = Field(description="multiply-accumulates per image (no bias terms)")
    train_s: float


class KmeansParams(_RunParams):
    bits: int = Field(ge=0, le=8, description="index bits per weight; 0 = the full-precision model")
    init: Literal["linear", "random", "density", "none"]
    mode: Literal["none", "finetune", "full-precision"] = Field(
        description="none: the study's clustering without retraining; finetune: Deep Compression's "
                    "shared-centroid fine-tuning; full-precision: the unclustered reference")
    finetune_epochs: float = 0.0
    max_fit_samples: int


class KmeansMetrics(_TestAccuracy):
    theoretical_ratio: float = Field(description="sum n*32 / sum (n*bits + 2**bits*32) over clustered layers")
    layer_ratios: dict[str, float] = Field(description="per-layer n*32 / (n*bits + 2**bits*32)")
    weights_clustered: int
    float32_weights_bytes: int = Field(description="clustered layers' weights as float32")
    file_bytes: int | None = Field(default=None, description="size of the packed file (indices, "
                                   "codebooks, float32 biases, zip headers)")
    file_ratio: float | None = Field(default=None, description="float32 model state bytes / file_bytes")
    roundtrip_identical: bool | None = Field(default=None, description="model loaded from the file "
                                             "predicts exactly as the in-memory clustered model")
    cluster_s: float
    finetune_s: float = 0.0


class ConvParams(Strict):
    experiment: str
    run: str
    device: Device
    layer: str = Field(description="study layer name (Table 8.3 conv1-5, Table 8.4 bench1-7)")
    cin: int
    h: int = Field(description="input height = width, after any scaling")
    cout: int
    kernel: int
    stride: int
    padding: int
    spatial_divisor: int = Field(description="study input size divided by this (1 = as in the study)")
    bits: int
    threads: int
    impl: str
    clustered: bool


class ConvMetrics(Strict):
    median_s: float
    min_s: float
    repeats: int
    flops: int = Field(description="2*Ho*Wo*Cout*Cin*Kh*Kw")
    gflops: float
    gemm_gflops: float = Field(description="same-run BLAS GEMM rate of the layer's im2col dimensions")
    fraction_of_gemm: float
    speedup_vs_vanilla_cl: float | None
    max_abs_error: float = Field(description="vs torch conv2d on the decoded weights")
    loadavg_1m: float | None = None


NetAdaptResource = Literal["macs", "latency"]


class NetAdaptParams(_RunParams):
    iteration: int
    chosen_layer: str | None
    channels: list[int] = Field(description="output widths of every conv and linear layer")
    resource: NetAdaptResource = Field(default="macs", description="what the budget limits: MACs, or the "
                                       "latency predicted by the per-layer lookup table")
    budget_ratio: float
    initial_reduction: float
    decay: float
    short_term_steps: int


class NetAdaptMetrics(Strict):
    macs: int
    mac_ratio: float = Field(description="macs / macs of iteration 0")
    params: int
    val_accuracy: float
    val_correct: int
    val_total: int
    val_ci_low: float
    val_ci_high: float
    val_loss: float
    latency_s: float = Field(description="measured: median CPU forward time of the whole network, batch 1")
    predicted_latency_s: float | None = Field(default=None, description="sum of the latency lookup "
                                              "table's per-layer entries for this network")
    network_latency_s: float | None = Field(default=None, description="measured: the whole network timed "
                                            "with the lookup table's harness (fastest blocked_autorange block)")
    latency_ratio: float | None = Field(default=None, description="predicted_latency_s / network_latency_s")
    target: float | None = Field(default=None, description="the iteration's resource target (MACs or "
                                 "predicted seconds, see params.resource); None for iteration 0")
    candidates: int
    elapsed_s: float


class NetAdaptResultParams(_RunParams):
    iterations: int
    channels_before: list[int]
    channels_after: list[int]
    long_term_epochs: float
    resource: NetAdaptResource = "macs"
    threads: int | None = Field(default=None, description="torch threads of the run and of every "
                                "latency measurement")
    latency_table_min_run_s: float | None = Field(default=None, description="measuring time per table "
                                                  "entry (torch.utils.benchmark blocked_autorange)")


class NetAdaptResultMetrics(_TestAccuracy):
    unpruned_test_accuracy: float
    unpruned_test_correct: int
    unpruned_test_total: int
    unpruned_test_ci_low: float
    unpruned_test_ci_high: float
    macs_before: int
    macs_after: int
    mac_reduction: float = Field(description="1 - macs_after / macs_before")
    params_before: int
    params_after: int
    latency_before_s: float
    latency_after_s: float
    predicted_latency_before_s: float | None = None
    predicted_latency_after_s: float | None = None
    network_latency_before_s: float | None = Field(default=None, description="whole network, the table's harness")
    network_latency_after_s: float | None = None
    latency_table_entries: int | None = Field(default=None, description="distinct layer shapes measured")
    latency_table_build_s: float | None = Field(default=None, description="wall time spent measuring them")
    long_term_s: float | None = Field(default=None, description="wall time of the long-term fine-tune")
    elapsed_s: float


class BinaryParams(_RunParams):
    per_channel: bool
    activations_bits: int
    epochs: float
    lr: float
    from_pretrained: bool
    full_precision_layers: list[str] | None = Field(default=None, description="the first and the last "
                                                    "weighted layer, kept in full precision (module paths)")
    binarised_layers: int | None = Field(default=None, description="conv/linear layers with 1-bit weights")


class BinaryMetrics(_TestAccuracy):
    init_test_accuracy: float = Field(description="binarised network before its training")
    full_precision_test_accuracy: float
    full_precision_test_correct: int
    full_precision_test_total: int
    full_precision_test_ci_low: float
    full_precision_test_ci_high: float
    packed_bytes: int = Field(description="1 bit per binarised weight + float32 scales and other tensors")
    file_bytes: int = Field(description="size of the written packed file")
    full_precision_bytes: int
    binary_weights: int
    train_s: float


KINDS = {
    "compression": KindSchema(params=JobParams, metrics=Strict, description="failed/skipped compression job"),
    "compression_base": KindSchema(params=BaseParams, metrics=BaseMetrics,
                                   description="full-precision network the methods start from"),
    "compression_kmeans": KindSchema(params=KmeansParams, metrics=KmeansMetrics,
                                     description="k-means weight clustering at one bit width"),
    "compression_conv": KindSchema(params=ConvParams, metrics=ConvMetrics,
                                   description="convolution on clustered weights, one benchmark point"),
    "compression_netadapt": KindSchema(params=NetAdaptParams, metrics=NetAdaptMetrics,
                                       description="one NetAdapt iteration"),
    "compression_netadapt_result": KindSchema(params=NetAdaptResultParams, metrics=NetAdaptResultMetrics,
                                              description="NetAdapt final network vs unpruned, held-out"),
    "compression_binary": KindSchema(params=BinaryParams, metrics=BinaryMetrics,
                                     description="binarised network vs full precision"),
}
