"""SqueezeNet v1.1 in the compression stage: the model registry, k-means through the packed
file, the binarised network, the experiment checks and the report's per-network tables."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hpc.compress.binary import ActQuant8, BinaryConv2d, binarised_layer_names, binarize_model, packed_size_bytes
from hpc.compress.evaluation import Split, accuracy, fit, predict
from hpc.compress.finetune import finetune_centroids
from hpc.compress.kmeans import apply_clusters, cluster_model
from hpc.compress.packed import load_clustered, save_clustered
from hpc.config import ConfigError, load_experiment
from hpc.models.registry import (ARCH_OPTIONS, ARCHS, SQUEEZENET_MIN_INPUT, ModelSpecError, build_model,
                                 squeezenet_feature_sizes)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
MRI = {"arch": "squeezenet1_1", "num_classes": 4, "in_channels": 1, "input_size": 32}  # the MRI slices


def squeezenet(seed: int = 0, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(**{**MRI, "num_classes": classes}).eval()


def conv_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


# --------------------------------------------------------------------------- registry

def test_registry_builds_every_arch_by_name() -> None:
    assert set(ARCHS) == set(ARCH_OPTIONS)
    small = build_model("alexnet-small", 3, width=0.125, hidden=8)
    assert type(small).__name__ == "AlexNetSmall" and small.in_channels == 1
    sq = build_model(**MRI)
    assert type(sq).__name__ == "SqueezeNet11" and sq(torch.zeros(2, 1, 32, 32)).shape == (2, 4)
    assert build_model("squeezenet1_1", 10, input_size=224).in_channels == 3  # torchvision default


def test_registry_names_an_unknown_arch_and_lists_the_known_ones() -> None:
    with pytest.raises(ModelSpecError, match=r"arch='resnet18'.*squeezenet1_1"):
        build_model("resnet18", 4)


def test_registry_rejects_an_option_the_arch_does_not_take() -> None:
    with pytest.raises(ModelSpecError, match=r"arch='squeezenet1_1': option\(s\) width.*its options: dropout"):
        build_model(**MRI, width=0.5)
    with pytest.raises(ModelSpecError, match=r"option\(s\) dropout"):
        build_model("alexnet-small", 3, dropout=0.1)


def test_squeezenet_at_32_px_ends_on_a_1x1_map_and_too_small_inputs_fail_early() -> None:
    assert squeezenet_feature_sizes(224) == (111, 55, 27, 13)
    assert squeezenet_feature_sizes(32) == (15, 7, 3, 1)
    with torch.no_grad():
        assert squeezenet().features(torch.zeros(1, 1, 32, 32)).shape == (1, 512, 1, 1)
    build_model(**{**MRI, "input_size": SQUEEZENET_MIN_INPUT})
    with pytest.raises(ModelSpecError, match=f"input_size={SQUEEZENET_MIN_INPUT - 1}: too small"):
        build_model(**{**MRI, "input_size": SQUEEZENET_MIN_INPUT - 1})


def test_compression_base_options_are_registry_options() -> None:
    from hpc.compress.experiment import ARCH_BASE_OPTIONS, ARCH_METHODS
    for arch, options in ARCH_BASE_OPTIONS.items():
        assert arch in ARCHS and set(options) <= set(ARCH_OPTIONS[arch])
    assert set(ARCH_METHODS) == set(ARCH_BASE_OPTIONS)


# --------------------------------------------------------------------------- k-means

@pytest.mark.parametrize("bits", [1, 8])
def test_kmeans_clusters_every_squeezenet_conv_and_the_packed_file_predicts_identically(tmp_path, bits) -> None:
    model = squeezenet()
    layers = cluster_model(model, bits, max_fit_samples=2000)
    names = conv_names(model)
    assert [l.name for l in layers] == names and len(names) == 26  # conv1, 8 fires x 3, classifier
    assert {"features.0", "features.3.squeeze", "features.12.expand3x3", "classifier.1"} <= set(names)
    assert all(l.codebook.size <= 2 ** bits for l in layers)
    clustered = apply_clusters(copy.deepcopy(model), layers)
    path = tmp_path / "sq.npz"
    size = save_clustered(path, clustered, layers, MRI)
    loaded, loaded_layers = load_clustered(path)  # rebuilt through the model registry
    x = torch.randn(32, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), clustered(x))
    assert torch.equal(predict(loaded, x), predict(clustered, x))
    n = sum(l.n for l in layers)
    assert size < (n * bits) // 8 + 4 * (2 ** bits * 26 + 4_000) + 30_000  # packed: bits per index, not bytes


def test_finetuned_squeezenet_codebooks_round_trip_through_the_packed_file(tmp_path) -> None:
    model = squeezenet()
    layers = cluster_model(model, 3, max_fit_samples=2000)
    clustered = apply_clusters(copy.deepcopy(model), layers)
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(16, 1, 32, 32, generator=g), torch.randint(0, 4, (16,), generator=g))
    tuned, _ = finetune_centroids(clustered, layers, split, epochs=1, lr=1e-2, batch_size=8)
    assert any(not np.array_equal(a.codebook, b.codebook) for a, b in zip(layers, tuned))
    save_clustered(tmp_path / "ft.npz", clustered, tuned, MRI)
    loaded, _ = load_clustered(tmp_path / "ft.npz")
    with torch.no_grad():
        assert torch.equal(loaded(split.x), clustered(split.x))


# --------------------------------------------------------------------------- binarised

def test_binarised_squeezenet_keeps_conv1_and_the_classifier_conv_in_full_precision() -> None:
    b = binarize_model(squeezenet())
    first, last, binarised = binarised_layer_names(b)
    assert (first, last) == ("features.0", "classifier.1")
    modules = dict(b.named_modules())
    assert type(modules["features.0"]) is nn.Conv2d and type(modules["classifier.1"]) is nn.Conv2d
    assert len(binarised) == 24 and all(isinstance(modules[n], BinaryConv2d) for n in binarised)
    # 8-bit activations into every layer after the first; the class scores' ReLU is not quantised
    assert isinstance(modules["features.3.squeeze_activation"][1], ActQuant8)
    assert isinstance(modules["features.1"][1], ActQuant8)
    assert type(modules["classifier.2"]) is nn.ReLU
    sizes = packed_size_bytes(b)
    n_binary = sum(modules[n].weight.numel() for n in binarised)
    assert sizes["binary_weights"] == n_binary and sizes["packed_bytes"] < sizes["full_precision_bytes"] / 10


def test_binarised_squeezenet_layer_forward_is_scaled_sign_convolution() -> None:
    b = binarize_model(squeezenet())
    layer = b.features[3].expand3x3  # 3x3, padding 1
    x = torch.randn(2, 16, 7, 7)
    w = layer.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = nn.functional.conv2d(x, alpha * torch.where(w >= 0, 1.0, -1.0), layer.bias, padding=1)
    torch.testing.assert_close(layer(x), expected)


def test_short_training_of_a_binarised_squeezenet_beats_its_initialisation() -> None:
    # two separable classes: bright centre vs bright top rows
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 32, 32, generator=g) * 0.3
    y = torch.arange(64) % 2
    x[y == 0, :, 12:20, 12:20] += 2.0
    x[y == 1, :, :4, :] += 2.0
    split = Split(x, y)
    # SqueezeNet's class scores pass a ReLU: a draw whose full-precision training kills one class
    # score (zero gradient from then on) never learns it, binarised or not. Start, as the
    # experiment does, from a full-precision network that learned the task.
    for seed in range(4):
        fp = squeezenet(seed, classes=2)
        fit(fp, split, epochs=4, batch_size=16, lr=1e-3, seed=0)
        if accuracy(fp, split).value >= 0.9:
            break
    else:
        pytest.fail("no full-precision SqueezeNet learned the synthetic task in 4 draws")
    b = binarize_model(fp)
    before = accuracy(b, split)
    latent = {n: m.weight.detach().clone() for n, m in b.named_modules() if isinstance(m, BinaryConv2d)}
    fit(b, split, epochs=4, batch_size=16, lr=1e-3, seed=1)
    after = accuracy(b, split)
    assert after.value >= 0.9 and after.value > before.value
    modules = dict(b.named_modules())
    assert all(not torch.equal(w, modules[n].weight) for n, w in latent.items())  # STE reached every layer


# --------------------------------------------------------------------------- experiment file

def _write(tmp_path: Path, base: str, runs: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(f"kind: compression\nname: sq\nbase: {{{base}}}\nruns:\n{runs}")
    return path


def test_the_squeezenet_experiment_is_valid_and_has_only_kmeans_and_binary() -> None:
    spec = load_experiment(REPO / "experiments/compression-squeezenet.yaml", kind="compression")
    assert spec["base"]["arch"] == "squeezenet1_1" and "width" not in spec["base"]
    assert {r["method"] for r in spec["runs"]} == {"kmeans", "binary"}
    km = next(r for r in spec["runs"] if r["method"] == "kmeans")
    assert km["bits"] == list(range(1, 9)) and km["modes"] == ["none", "finetune"]


def test_schema_rejects_an_unknown_arch_naming_the_file(tmp_path) -> None:
    path = _write(tmp_path, "arch: resnet18", "  - {name: k, method: kmeans}\n")
    with pytest.raises(ConfigError, match=rf"{path}: base\.arch"):
        load_experiment(path)


@pytest.mark.parametrize("method", ["netadapt", "conv"])
def test_squeezenet_with_an_alexnet_only_method_is_rejected_naming_file_and_run(tmp_path, method) -> None:
    path = _write(tmp_path, "arch: squeezenet1_1", f"  - {{name: k, method: kmeans}}\n  - {{name: prune, method: {method}}}\n")
    with pytest.raises(ConfigError, match=rf"{path}: run 'prune': method '{method}' is not supported for base arch "
                                          r"squeezenet1_1 \(supported: kmeans, binary\)"):
        load_experiment(path)


def test_alexnet_width_on_squeezenet_is_rejected(tmp_path) -> None:
    path = _write(tmp_path, "arch: squeezenet1_1, width: 0.5", "  - {name: k, method: kmeans}\n")
    with pytest.raises(ConfigError, match=rf"{path}: base\.width: not an option of squeezenet1_1"):
        load_experiment(path)


def test_squeezenet_base_from_an_alexnet_training_run_is_rejected(tmp_path) -> None:
    path = _write(tmp_path, "arch: squeezenet1_1, from_training: {experiment: training-laptop, run: cpu}",
                  "  - {name: k, method: kmeans}\n")
    with pytest.raises(ConfigError, match=rf"{path}: base\.from_training .*trains alexnet-small only"):
        load_experiment(path)


# --------------------------------------------------------------------------- runner + report

def test_runner_compresses_squeezenet_end_to_end(tmp_path) -> None:
    from hpc.compress.runner import run_base, run_method
    from hpc.records import read_records
    from hpc.train.synthetic import write_synthetic_dataset
    data = write_synthetic_dataset(tmp_path / "slices.h5", n_per_class=12, classes=3, split_fractions=(0.5, 0.25))
    path = tmp_path / "exp.yaml"
    path.write_text("kind: compression\nname: sq-tiny\nthreads: 1\n"
                    "base: {arch: squeezenet1_1, epochs: 1, lr: 0.0001}\n"
                    "runs:\n  - {name: kmeans, method: kmeans, bits: [2], modes: [none, finetune], "
                    "finetune_epochs: 0.5, max_fit_samples: 2000}\n"
                    "  - {name: binary, method: binary, epochs: 0.5}\n")
    spec = load_experiment(path, kind="compression")
    out = tmp_path / "records.jsonl"
    run_base(spec, str(data), tmp_path / "base", out, log=lambda _: None)
    for run in ("kmeans", "binary"):
        run_method(spec, run, str(data), tmp_path / "base", tmp_path / run, out, log=lambda _: None)
    recs = list(read_records([out]))
    assert {r.kind for r in recs} == {"compression_base", "compression_kmeans", "compression_binary"}
    assert all(r.params["arch"] == "squeezenet1_1" for r in recs)
    km = [r for r in recs if r.kind == "compression_kmeans" and r.params["bits"]]
    assert len(km) == 2 and all(r.metrics["roundtrip_identical"] is True for r in km)
    assert len(km[0].metrics["layer_ratios"]) == 26
    binary = next(r for r in recs if r.kind == "compression_binary")
    assert binary.params["full_precision_layers"] == ["features.0", "classifier.1"]
    assert binary.params["binarised_layers"] == 24


def _kmeans_record(arch: str, experiment: str, bits: int, mode: str, correct: int):
    from hpc.records import new_record
    params = {"experiment": experiment, "run": "kmeans", "device": {"kind": "cpu", "name": "test cpu"},
              "dataset": "d.h5", "arch": arch, "seed": 0, "bits": bits, "init": "none" if bits == 0 else "linear",
              "mode": mode, "max_fit_samples": 1000}
    metrics = {"test_accuracy": correct / 100, "test_correct": correct, "test_total": 100, "test_ci_low": 0.0,
               "test_ci_high": 1.0, "theoretical_ratio": 32 / max(bits, 1), "layer_ratios": {},
               "weights_clustered": 1000, "float32_weights_bytes": 4000, "file_bytes": 1000, "file_ratio": 4.0,
               "cluster_s": 0.0}
    return new_record("compression_kmeans", f"{experiment} {bits} {mode}", params, metrics)


def test_report_keeps_squeezenet_rows_in_tables_of_their_own() -> None:
    from hpc.analysis import plots
    from hpc.analysis.aggregate import record_row
    from hpc.analysis.section_compression import compression_section
    recs = []
    # AlexNet keeps its accuracy (90/100) from 3 bits, SqueezeNet (80/100) only from 6 bits
    for arch, exp, fp, knee in (("alexnet-small", "compression-laptop", 90, 3),
                                ("squeezenet1_1", "compression-squeezenet", 80, 6)):
        recs.append(_kmeans_record(arch, exp, 0, "full-precision", fp))
        for bits in range(1, 9):
            recs.append(_kmeans_record(arch, exp, bits, "none", fp if bits >= knee else fp - 20))
    df = pd.DataFrame([record_row(r) for r in recs])
    sec = compression_section(df, plots.FigureSink(None))
    titles = [t for t, _, _ in sec.tables]
    alex = [t for t in titles if "accuracy vs bits" in t and "MRI AlexNet" in t]
    sq = [t for t in titles if "accuracy vs bits" in t and "SqueezeNet v1.1" in t]
    assert len(alex) == 1 and len(sq) == 1 and titles.index(alex[0]) < titles.index(sq[0])
    callouts = dict(sec.callouts)
    assert callouts["k-means, no retraining (MRI AlexNet)"].startswith("3 bits")
    assert callouts["k-means, no retraining (SqueezeNet v1.1)"].startswith("6 bits")
    assert len({f.key for f in sec.figures}) == 2
