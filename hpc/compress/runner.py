"""One run of a ``compression`` experiment -> records (and its artefacts).

The experiment file (``experiments/compression-*.yaml``, schema ``$defs/compression``) names
a dataset, the full-precision network to start from (``base``) and a list of runs, each with
a ``method``: ``kmeans``, ``conv``, ``netadapt`` or ``binary``. The workflow runs the base
training as one job (:func:`run_base`, which saves ``model.pt``) and every run as one job
(:func:`run_method`) that loads that model, so all methods compress the same network.
Records are appended one by one to ``output`` as points finish.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from hpc.atomic import atomic_path
from hpc.compress.evaluation import Data, accuracy, cpu_latency_s, fit, load_data, predict
from hpc.models.registry import ARCH_OPTIONS, build_model
from hpc.models.summary import summarize
from hpc.provenance import cpu_model
from hpc.records import append_record, new_record
from hpc.schema.base import Device

MODEL_FILE = "model.pt"
METHODS: tuple[str, ...] = ("kmeans", "conv", "netadapt", "binary")


class CompressionError(ValueError):
    """An unusable run definition or a missing input; the message names the file/run."""


def cpu_device() -> dict[str, Any]:
    return Device(kind="cpu", name=cpu_model()).model_dump(mode="json")


def find_run(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for run in spec.get("runs", []):
        if run["name"] == name:
            return run
    raise CompressionError(f"{spec.get('_path', spec['name'])}: no run named {name!r}; runs: "
                           f"{[r['name'] for r in spec.get('runs', [])]}")


def _common(spec: dict[str, Any], run: str, data: str) -> dict[str, Any]:
    base = spec["base"]
    return {"experiment": spec["name"], "run": run, "device": cpu_device(), "dataset": str(data),
            "arch": base["arch"], "seed": int(base["seed"])}


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(int(threads))


# --------------------------------------------------------------------------- base model

def model_args(spec: dict[str, Any], data: Data) -> dict[str, Any]:
    """Build arguments of the base network (``hpc.models.registry.build_model``): the dataset's
    classes and image shape, plus the architecture's own options given under ``base``
    (``width``/``hidden`` for alexnet-small; the experiment check rejects them for SqueezeNet)."""
    base = spec["base"]
    c, h, _ = data.image_shape
    options = {k: base[k] for k in ARCH_OPTIONS[base["arch"]] if k in base}
    return {"arch": base["arch"], "num_classes": data.num_classes, "in_channels": c, "input_size": h, **options}


def save_model(path: Path, model: nn.Module, args: dict[str, Any]) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"format": "hpc-compress-model", "model_args": args,
                    "state_dict": model.state_dict()}, tmp)


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    if not path.is_file():
        raise CompressionError(f"{path}: base model not found (run the experiment's base job first: "
                               "python -m hpc compress base ...)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "hpc-compress-model":
        raise CompressionError(f"{path}: not a compression base model file")
    model = build_model(**state["model_args"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model, state["model_args"]


def run_base(spec: dict[str, Any], data_path: str, out_dir: Path, output: Path,
             log: Callable[[str], Any] = print, checkpoint: Path | None = None) -> nn.Module:
    """The full-precision network every method of the experiment starts from: trained here,
    or, when the experiment's ``base.from_training`` names a training run, that run's
    ``checkpoint`` (see :mod:`hpc.compress.trained`)."""
    base = spec["base"]
    _set_threads(spec.get("threads"))
    from_training = base.get("from_training")
    if from_training and checkpoint is None:
        raise CompressionError(f"{spec.get('_path', spec['name'])}: base.from_training names training run "
                               f"{from_training['experiment']}/{from_training['run']}: pass its checkpoint "
                               "(--from-checkpoint .../checkpoints/best.pt; the workflow does)")
    data = load_data(data_path)
    common = _common(spec, "base", data_path)
    if checkpoint is not None:
        from hpc.compress.trained import TrainedBaseError, load_trained_base
        try:
            trained = load_trained_base(checkpoint, data)
        except TrainedBaseError as exc:
            raise CompressionError(str(exc)) from None
        model, args = trained.model, trained.model_args
        common["arch"] = args["arch"]
        train_params = {"epochs": float(trained.epoch), "batch_size": trained.batch_size, "lr": trained.lr,
                        "source": trained.source}
        train_s = trained.train_s
        log(f"base {args['arch']}: loaded {trained.source} (epoch {trained.epoch} of the training run)")
    else:
        torch.manual_seed(int(base["seed"]))
        args = model_args(spec, data)
        model = build_model(**args)
        stats = fit(model, data.train, epochs=base["epochs"], batch_size=base["batch_size"], lr=base["lr"],
                    seed=base["seed"], log=log, label=f"base {base['arch']}")
        train_params = {"epochs": float(base["epochs"]), "batch_size": int(base["batch_size"]),
                        "lr": float(base["lr"]), "source": None}
        train_s = stats["train_s"]
        log(f"base {base['arch']}: {stats['steps']} steps in {train_s:.1f} s")
    val, test = accuracy(model, data.val), accuracy(model, data.test)
    log(f"base {args['arch']}: val {val}; test {test}")
    save_model(out_dir / MODEL_FILE, model, args)
    summary = summarize(model, data.image_shape)
    params = {**common, **train_params}
    metrics = {**test.as_metrics("test"), **val.as_metrics("val"), "params": summary.total_params,
               "macs": summary.total_macs, "train_s": train_s}
    append_record(output, new_record("compression_base", f"{spec['name']} base", params, metrics))
    return model


# --------------------------------------------------------------------------- k-means

def run_kmeans(spec: dict[str, Any], run: dict[str, Any], data_path: str, base_dir: Path, out_dir: Path,
               output: Path, log: Callable[[str], Any] = print) -> None:
    from hpc.compress.finetune import finetune_centroids
    from hpc.compress.kmeans import apply_clusters, cluster_model, compression_ratio, overall_ratio
    from hpc.compress.packed import load_clustered, save_clustered

    data = load_data(data_path)
    model, args = load_model(base_dir / MODEL_FILE)
    common = _common(spec, run["name"], data_path)
    fp_bytes = sum(v.numel() * 4 for v in model.state_dict().values())
    fp = accuracy(model, data.test)
    log(f"full precision: test {fp}")
    n_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    append_record(output, new_record(
        "compression_kmeans", f"{spec['name']} {run['name']} full precision",
        {**common, "bits": 0, "init": "none", "mode": "full-precision", "max_fit_samples": run["max_fit_samples"]},
        {**fp.as_metrics("test"), "theoretical_ratio": 1.0, "layer_ratios": {}, "weights_clustered": n_weights,
         "float32_weights_bytes": 4 * n_weights, "file_bytes": fp_bytes, "file_ratio": 1.0,
         "roundtrip_identical": None, "cluster_s": 0.0}))
    for init in run["inits"]:
        for bits in run["bits"]:
            t0 = time.perf_counter()
            layers = cluster_model(model, bits, init, seed=int(spec["base"]["seed"]),
                                   max_fit_samples=run["max_fit_samples"])
            cluster_s = time.perf_counter() - t0
            for mode in run["modes"]:
                clustered = apply_clusters(copy.deepcopy(model), layers)
                ft_s, use = 0.0, layers
                if mode == "finetune":
                    torch.manual_seed(int(spec["base"]["seed"]) + bits)  # dropout masks: reproducible runs
                    use, stats = finetune_centroids(clustered, layers, data.train, run["finetune_epochs"],
                                                    lr=run["finetune_lr"], batch_size=spec["base"]["batch_size"],
                                                    seed=int(spec["base"]["seed"]) + bits, log=log,
                                                    label=f"centroid fine-tune {init} {bits} bits")
                    ft_s = stats["train_s"]
                acc = accuracy(clustered, data.test)
                file_bytes = roundtrip = None
                if run["write_files"]:
                    path = out_dir / f"clustered-{init}-{bits}bit-{mode}.npz"
                    file_bytes = save_clustered(path, clustered, use, args)
                    loaded, _ = load_clustered(path)
                    roundtrip = bool(torch.equal(predict(loaded, data.test.x), predict(clustered, data.test.x))
                                     and torch.equal(loaded(data.test.x), clustered(data.test.x)))
                metrics = {**acc.as_metrics("test"), "theoretical_ratio": overall_ratio(use),
                           "layer_ratios": {l.name: compression_ratio(l.n, 2 ** l.bits) for l in use},
                           "weights_clustered": sum(l.n for l in use),
                           "float32_weights_bytes": 4 * sum(l.n for l in use),
                           "file_bytes": file_bytes, "file_ratio": fp_bytes / file_bytes if file_bytes else None,
                           "roundtrip_identical": roundtrip, "cluster_s": cluster_s, "finetune_s": ft_s}
                params = {**common, "bits": bits, "init": init, "mode": mode,
                          "finetune_epochs": float(run["finetune_epochs"]) if mode == "finetune" else 0.0,
                          "max_fit_samples": run["max_fit_samples"]}
                append_record(output, new_record("compression_kmeans",
                                                 f"{spec['name']} {run['name']} {init} {bits}b {mode}", params, metrics))
                log(f"{init} {bits} bits {mode}: test {acc}, r={metrics['theoretical_ratio']:.2f}, "
                    f"file {file_bytes} B, round trip {roundtrip}")


# --------------------------------------------------------------------------- clustered conv

def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run_conv(spec: dict[str, Any], run: dict[str, Any], output: Path, log: Callable[[str], Any] = print) -> None:
    from hpc.compress.conv_bench import bench_layer, resolve_layers

    points = [(shape, bits) for shape in resolve_layers(run["layers"], run["spatial_divisor"])
              for bits in run["bits"]]
    sweep = run.get("bits_sweep")
    if sweep:
        for shape in resolve_layers([sweep["layer"]], run["spatial_divisor"]):
            points += [(shape, b) for b in sweep["bits"] if b not in run["bits"]]
    max_threads = os.cpu_count() or 1
    for shape, bits in points:
        for threads in run["threads"]:
            if threads > max_threads:
                log(f"{shape.name}: {threads} threads > {max_threads} CPUs here; skipped")
                continue
            divisor = 1 if shape.name.startswith("conv") else run["spatial_divisor"]
            for r in bench_layer(shape, bits, threads, repeats=run["repeats"], warmup=1, seed=0):
                params = {"experiment": spec["name"], "run": run["name"], "device": cpu_device(),
                          "layer": shape.name, "cin": shape.cin, "h": shape.h, "cout": shape.cout,
                          "kernel": shape.k, "stride": shape.stride, "padding": shape.padding,
                          "spatial_divisor": divisor, "bits": bits, "threads": threads,
                          "impl": r["impl"], "clustered": r["clustered"]}
                metrics = {k: r[k] for k in ("median_s", "min_s", "repeats", "flops", "gflops", "gemm_gflops",
                                             "fraction_of_gemm", "speedup_vs_vanilla_cl", "max_abs_error")}
                metrics["loadavg_1m"] = _loadavg()
                append_record(output, new_record("compression_conv",
                                                 f"{shape.name} {r['impl']} {bits}b t{threads}", params, metrics))
                log(f"{shape.name} {bits}b t{threads} {r['impl']:>13}: {r['gflops']:8.2f} GFLOP/s "
                    f"= {r['fraction_of_gemm']:.3f} of GEMM ({r['gemm_gflops']:.1f})")


# --------------------------------------------------------------------------- NetAdapt

def write_history_csv(path: Path, history: list[Any], r0: int) -> None:
    """The NetAdapt history as a table a spreadsheet opens (the records hold the same rows):
    one line per iteration, channels as one space-separated field, written atomically."""
    import csv

    fields = ["iteration", "chosen_layer", "channels", "macs", "mac_ratio", "params", "val_correct", "val_total",
              "val_accuracy", "val_loss", "target", "predicted_latency_ms", "network_latency_ms", "latency_ms",
              "candidates", "elapsed_s"]
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(fields)
            for row in history:
                w.writerow([row.iteration, row.chosen_layer or "", " ".join(map(str, row.channels)), row.macs,
                            f"{row.macs / r0:.6f}", row.params, row.val.correct, row.val.total,
                            f"{row.val.value:.6f}", f"{row.val_loss:.6f}", "" if row.target is None else row.target,
                            f"{1e3 * row.predicted_latency_s:.4f}", f"{1e3 * row.network_latency_s:.4f}",
                            f"{1e3 * row.latency_s:.4f}", row.candidates, f"{row.elapsed_s:.2f}"])


def run_netadapt(spec: dict[str, Any], run: dict[str, Any], data_path: str, base_dir: Path, output: Path,
                 log: Callable[[str], Any] = print) -> None:
    """NetAdapt on the base network: history records (and ``history.csv``), the final network
    vs the unpruned one on test, and the latency lookup table (``latency-table.json``), both
    files next to the records."""
    import json

    from hpc.compress.latency import LatencyTable
    from hpc.compress.netadapt import NetAdaptSettings, netadapt
    from hpc.compress.pruning import channel_counts

    t0 = time.perf_counter()
    data = load_data(data_path)
    model, _ = load_model(base_dir / MODEL_FILE)
    fields = {f.name for f in dataclasses.fields(NetAdaptSettings)}
    s = NetAdaptSettings(**{k: v for k, v in run.items() if k in fields})
    s.seed = int(spec["base"]["seed"])
    shape = data.image_shape
    table = LatencyTable(threads=torch.get_num_threads(), min_run_s=s.latency_table_min_run_s)
    result = netadapt(copy.deepcopy(model), data.train, data.val, shape, s, log=log, table=table)
    final, history = result.model, result.history
    common = _common(spec, run["name"], data_path)
    r0 = history[0].macs
    write_history_csv(output.parent / "history.csv", history, r0)
    for row in history:
        params = {**common, "iteration": row.iteration, "chosen_layer": row.chosen_layer, "channels": row.channels,
                  "resource": s.resource, "budget_ratio": s.budget_ratio, "initial_reduction": s.initial_reduction,
                  "decay": s.decay, "short_term_steps": s.short_term_steps}
        metrics = {"macs": row.macs, "mac_ratio": row.macs / r0, "params": row.params,
                   **{k: v for k, v in row.val.as_metrics("val").items()}, "val_loss": row.val_loss,
                   "latency_s": row.latency_s, "network_latency_s": row.network_latency_s,
                   "predicted_latency_s": row.predicted_latency_s,
                   "latency_ratio": row.predicted_latency_s / row.network_latency_s, "target": row.target,
                   "candidates": row.candidates, "elapsed_s": row.elapsed_s}
        append_record(output, new_record("compression_netadapt", f"{spec['name']} {run['name']} iter {row.iteration}",
                                         params, metrics))
    before, after = summarize(model, shape), summarize(final, shape)
    test_before, test_after = accuracy(model, data.test), accuracy(final, data.test)
    params = {**common, "iterations": len(history) - 1, "channels_before": channel_counts(model),
              "channels_after": channel_counts(final), "long_term_epochs": float(s.long_term_epochs),
              "resource": s.resource, "threads": table.threads, "latency_table_min_run_s": table.min_run_s}
    metrics = {**test_after.as_metrics("test"),
               **{k.replace("test_", "unpruned_test_", 1): v for k, v in test_before.as_metrics("test").items()},
               "macs_before": before.total_macs, "macs_after": after.total_macs,
               "mac_reduction": 1 - after.total_macs / before.total_macs,
               "params_before": before.total_params, "params_after": after.total_params,
               "latency_before_s": cpu_latency_s(model, shape, repeats=s.latency_repeats),
               "latency_after_s": cpu_latency_s(final, shape, repeats=s.latency_repeats),
               "predicted_latency_before_s": history[0].predicted_latency_s,
               "predicted_latency_after_s": table.predict_model_s(final, shape),
               "network_latency_before_s": table.measure_network_s(model, shape),
               "network_latency_after_s": table.measure_network_s(final, shape),
               "latency_table_entries": len(table), "latency_table_build_s": table.build_s,
               "long_term_s": result.long_term_s, "elapsed_s": time.perf_counter() - t0}
    with atomic_path(output.parent / "latency-table.json", suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(table.as_json(), indent=1))
    append_record(output, new_record("compression_netadapt_result", f"{spec['name']} {run['name']} final",
                                     params, metrics))
    log(f"NetAdapt ({s.resource}): {before.total_macs:,} -> {after.total_macs:,} MACs "
        f"({metrics['mac_reduction']:.1%} less); predicted latency {1e3 * metrics['predicted_latency_before_s']:.2f} -> "
        f"{1e3 * metrics['predicted_latency_after_s']:.2f} ms, measured {1e3 * metrics['network_latency_before_s']:.2f} -> "
        f"{1e3 * metrics['network_latency_after_s']:.2f} ms; latency table {len(table)} entries in {table.build_s:.1f} s; "
        f"test {test_before} -> {test_after}; {metrics['elapsed_s']:.0f} s in all")


# --------------------------------------------------------------------------- binarised

def run_binary(spec: dict[str, Any], run: dict[str, Any], data_path: str, base_dir: Path, out_dir: Path,
               output: Path, log: Callable[[str], Any] = print) -> None:
    from hpc.compress.binary import binarised_layer_names, binarize_model, pack_binary_weights, packed_size_bytes

    data = load_data(data_path)
    model, args = load_model(base_dir / MODEL_FILE)
    seed = int(spec["base"]["seed"])
    fp = accuracy(model, data.test)
    if not run["from_pretrained"]:
        torch.manual_seed(seed)
        model = build_model(**args)
    binary = binarize_model(model, per_channel=run["per_channel"])
    first, last, binarised = binarised_layer_names(binary)
    init = accuracy(binary, data.test)
    torch.manual_seed(seed + 11)  # dropout masks: reproducible runs
    stats = fit(binary, data.train, epochs=run["epochs"], batch_size=spec["base"]["batch_size"], lr=run["lr"],
                seed=seed + 11, log=log, label="binarised")
    acc = accuracy(binary, data.test)
    sizes = packed_size_bytes(binary)
    path = out_dir / "binary.npz"
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **pack_binary_weights(binary))
    params = {**_common(spec, run["name"], data_path), "per_channel": bool(run["per_channel"]),
              "activations_bits": 8, "epochs": float(run["epochs"]), "lr": float(run["lr"]),
              "from_pretrained": bool(run["from_pretrained"]), "full_precision_layers": [first, last],
              "binarised_layers": len(binarised)}
    metrics = {**acc.as_metrics("test"), "init_test_accuracy": init.value,
               **{k.replace("test_", "full_precision_test_", 1): v for k, v in fp.as_metrics("test").items()},
               **sizes, "file_bytes": path.stat().st_size, "train_s": stats["train_s"]}
    append_record(output, new_record("compression_binary", f"{spec['name']} {run['name']}", params, metrics))
    log(f"binarised: test {init.value:.3f} at start -> {acc} after {stats['steps']} steps; full precision {fp}; "
        f"{sizes['packed_bytes']:,} B packed vs {sizes['full_precision_bytes']:,} B")


def run_method(spec: dict[str, Any], run_name: str, data_path: str, base_dir: Path, out_dir: Path,
               output: Path, log: Callable[[str], Any] = print) -> None:
    run = find_run(spec, run_name)
    _set_threads(spec.get("threads"))
    out_dir.mkdir(parents=True, exist_ok=True)
    method = run["method"]
    if method == "kmeans":
        run_kmeans(spec, run, data_path, base_dir, out_dir, output, log)
    elif method == "conv":
        run_conv(spec, run, output, log)
    elif method == "netadapt":
        run_netadapt(spec, run, data_path, base_dir, output, log)
    elif method == "binary":
        run_binary(spec, run, data_path, base_dir, out_dir, output, log)
    else:
        raise CompressionError(f"run {run_name!r}: method {method!r}, expected one of {METHODS}")
