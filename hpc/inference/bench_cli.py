"""``python -m hpc bench inference``: AlexNet inference across batch sizes, where the time goes.

Sweeps models x backends x dtypes x host-memory variants x batch sizes (from
``--experiment experiments/<x>.yaml`` of kind ``inference``, or from the options), one
``inference_batch`` record per batch size and one ``inference_sweep`` record (cold start,
fits ``time = a + b * batch`` per component, the batch reaching 90 % of peak images/s)
per sweep, appended to ``--output`` as they finish. A batch above the memory budget is
recorded as skipped ("out of memory at N", cap recorded) and the sweep goes on; a backend
or variant that cannot run here is recorded as skipped with the reason.

With ``--experiment``, ``--models`` and ``--backends`` *filter* the experiment's lists (how
the workflow runs one job per model/backend); other options override its settings.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

MODEL_CHOICES = ("alexnet-imagenet", "alexnet-mri")


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer batch size") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a batch size (must be >= 1)")
    return value


def _weights(text: str) -> tuple[str, str]:
    model, sep, path = text.partition("=")
    if not sep or model not in MODEL_CHOICES or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODEL=PATH with MODEL one of {MODEL_CHOICES}")
    return model, path


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``inference`` to the ``hpc bench`` subcommands (heavy imports happen in ``run``)."""
    p = sub.add_parser("inference", help="AlexNet inference across batch sizes: time per layer type, "
                       "copies, alloc/free, sync", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", type=Path, help="experiments/<x>.yaml of kind 'inference'")
    p.add_argument("--models", nargs="+", choices=MODEL_CHOICES, help="default: alexnet-imagenet")
    p.add_argument("--backends", nargs="+", metavar="NAME[:STYLE]",
                   help="torch, torch-cuda, opencl[:STYLE] (with --experiment: filter by spec)")
    p.add_argument("--batch-sizes", nargs="+", type=_batch_size, metavar="N",
                   help="default 1 2 4 ... 1024")
    p.add_argument("--dtypes", nargs="+", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--host-memory", nargs="+", choices=("pageable", "pinned"),
                   help="host buffers of the copies (default: pageable pinned)")
    p.add_argument("--repeats", type=int, help="timed warm runs per batch (default 3)")
    p.add_argument("--warmup", type=int, help="untimed warm runs per batch (default 1)")
    p.add_argument("--profiled-runs", type=int, help="profiled runs per batch (default 1)")
    p.add_argument("--seed", type=int, help="seed of the random weights and inputs (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--memory-budget-mb", type=float,
                   help="memory a batch may use; larger batches are skipped (default: half of "
                        "MemAvailable on CPU, free device memory on GPU)")
    p.add_argument("--weights", nargs="+", type=_weights, metavar="MODEL=PATH",
                   help="state-dict files (default: seeded random weights)")
    p.add_argument("--output", type=Path, help="JSONL to append to (default results/inference/<name>.jsonl)")
    p.add_argument("--list-backends", action="store_true", help="list inference backends and exit")
    p.add_argument("--quiet", action="store_true", help="no per-point log lines")
    p.set_defaults(func=run)
    return p


def _spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep as an experiment dict (from the YAML, filtered/overridden by the options)."""
    from hpc.cli import CliError
    from hpc.config import ConfigError, load_experiment, validate_config, EXPERIMENT_SCHEMA_PATH

    if args.experiment is not None:
        try:
            spec = load_experiment(args.experiment, kind="inference")
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        for key, given in (("models", args.models), ("backends", args.backends)):
            if given:
                unknown = [g for g in given if g not in spec[key]]
                if unknown:
                    raise CliError(f"--{key} {' '.join(unknown)}: not in {args.experiment}'s "
                                   f"{key} {spec[key]}")
                spec[key] = [v for v in spec[key] if v in given]
    else:
        spec = validate_config({"kind": "inference", "name": "inference-cli",
                                "models": args.models or ["alexnet-imagenet"],
                                "backends": args.backends or ["torch"]},
                               source="command line", schema_path=EXPERIMENT_SCHEMA_PATH)
    overrides = {"batch_sizes": args.batch_sizes, "dtypes": args.dtypes, "host_memory": args.host_memory,
                 "repeats": args.repeats, "warmup": args.warmup, "profiled_runs": args.profiled_runs,
                 "seed": args.seed, "threads": args.threads, "memory_budget_mb": args.memory_budget_mb}
    for key, value in overrides.items():
        if value is not None:
            spec[key] = value
    if args.weights:
        spec["weights"] = {**spec.get("weights", {}), **dict(args.weights)}
    for key in ("repeats", "profiled_runs"):
        if spec[key] < 1:
            raise CliError(f"--{key.replace('_', '-')} {spec[key]}: must be >= 1")
    if spec["warmup"] < 0:
        raise CliError(f"--warmup {spec['warmup']}: must be >= 0")
    if spec.get("memory_budget_mb") is not None and spec["memory_budget_mb"] <= 0:
        raise CliError(f"--memory-budget-mb {spec['memory_budget_mb']}: must be > 0")
    return spec


def _list_backends() -> int:
    from hpc.inference.backends import BACKENDS, BackendUnavailable, get_backend
    for name in BACKENDS:
        backend = get_backend(name)
        try:
            backend.check_available()
            status = "available"
        except BackendUnavailable as exc:
            status = f"unavailable: {exc}"
        styles = ""
        if name == "opencl" and status == "available":
            try:
                from hpc.inference.opencl import STYLES  # type: ignore[import-not-found]
                styles = " (styles: " + ", ".join(f"opencl:{s}" for s in STYLES) + ")"
            except ImportError:
                pass
        print(f"{name:<12} {status}{styles}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_backends:
        return _list_backends()
    from hpc.cli import CliError
    from hpc.inference.networks import UnknownModelError, WeightsError
    from hpc.inference.sweep import SweepSettings, run_sweep
    from hpc.records import append_record

    spec = _spec_from_args(args)
    output = args.output or Path("results", "inference", f"{spec['name']}.jsonl")
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    budget = spec.get("memory_budget_mb")
    n_ok = n_skipped = 0
    for model in spec["models"]:
        for backend in spec["backends"]:
            for dtype in spec["dtypes"]:
                for host_memory in spec["host_memory"]:
                    settings = SweepSettings(
                        batch_sizes=spec["batch_sizes"], dtype=dtype, host_memory=host_memory,
                        repeats=spec["repeats"], warmup=spec["warmup"], profiled_runs=spec["profiled_runs"],
                        seed=spec["seed"], threads=spec.get("threads"),
                        memory_budget_bytes=int(budget * 2**20) if budget else None,
                        weights=spec.get("weights", {}).get(model), experiment=spec["name"])
                    try:
                        records = run_sweep(model, backend, settings,
                                            emit=lambda r: append_record(output, r), log=log)
                    except (UnknownModelError, WeightsError, ValueError) as exc:
                        raise CliError(str(exc)) from None
                    n_ok += sum(r.status == "ok" for r in records)
                    n_skipped += sum(r.status == "skipped" for r in records)
                    _print_summary(records)
    print(f"{n_ok} ok, {n_skipped} skipped records -> {output}")
    return 0


def _print_summary(records: list) -> None:
    """One line per sweep: the fits of conv, copies and total, and the 90 % batch."""
    for r in records:
        if r.kind != "inference_sweep" or r.status != "ok":
            continue
        m = r.metrics
        parts = [f"{r.name}: cold start {m['cold_start_s'] * 1e3:.2f} ms"]
        for comp in ("conv", "h2d", "d2h", "total"):
            f = m["fits"].get(comp)
            if f:
                parts.append(f"{comp} {f['fixed_s'] * 1e3:.3g} ms + {f['per_image_s'] * 1e3:.3g} ms/image")
        if m.get("batch_90pct_peak") is not None:
            parts.append(f"90% of peak {m['peak_images_per_s']:.1f} images/s at batch {m['batch_90pct_peak']}")
        print("; ".join(parts))
