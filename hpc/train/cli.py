"""``python -m hpc train {run,lr-find,ddp-sweep,ddp-allreduce}``.

Settings come from three layers, later wins: the schema defaults
(hpc/schemas/experiment.schema.yaml, ``$defs/training``), the chosen run of
``--experiment experiments/<x>.yaml --run NAME``, and options given on the command line.

Exit codes of ``run``: 0 finished, 2 usage/input error, 99 (``EXIT_PREEMPTED``) stopped by
SIGTERM/SIGUSR1 after writing a resumable checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hpc.cli import CliError

# option name -> Settings field; booleans use --x/--no-x
_VALUE_OPTIONS: dict[str, tuple[type, str]] = {
    "epochs": (int, "number of epochs (study: 25 and 50)"),
    "batch_size": (str, "per-rank batch size (study: 256), or 'full' for the whole training split"),
    "eval_batch_size": (int, "validation/test batch size"),
    "lr": (float, "learning rate (study: Adam 1e-3)"),
    "weight_decay": (float, "L2 weight decay"),
    "optimizer": (str, "adam or sgd"),
    "scheduler": (str, "none (constant) or cosine"),
    "seed": (int, "seed for weights, order, augmentation, dropout"),
    "device": (str, "cpu, cuda, cuda:N or auto"),
    "threads": (int, "torch CPU threads"),
    "workers": (int, "DataLoader worker processes"),
    "arch": (str, "network (alexnet-small)"),
    "width": (float, "conv channel multiplier (1.0 = study network)"),
    "hidden": (int, "classifier hidden width (4096 = study network)"),
    "rotation_degrees": (float, "random rotation +-degrees"),
    "crop_padding": (int, "random crop zero padding"),
}
_BOOL_OPTIONS: dict[str, str] = {
    "amp": "bf16 autocast (default: on for cuda)",
    "channels_last": "channels_last memory format (default: on for cuda)",
    "compile": "torch.compile the model",
    "deterministic": "deterministic algorithms (bit-identical resume)",
    "preload": "read each split into memory once per process",
    "hflip": "random horizontal flip",
    "eval_test_each_epoch": "record test accuracy every epoch (time-to-accuracy benchmarks)",
}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{run,lr-find,ddp-sweep,ddp-allreduce}")

    run = sub.add_parser("run", help="train (or resume) one run; writes metrics.jsonl, "
                         "confusion matrix, checkpoints", description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_options(run)
    run.add_argument("--ddp", action="store_true",
                     help="data-parallel: rank/world size from mpiexec/srun environment")
    run.add_argument("--expect-ranks", type=int, default=None, metavar="P",
                     help="with --ddp: exit non-zero unless the launcher started exactly P ranks")
    run.add_argument("--baseline-images-per-s", type=float, default=None,
                     help="1-rank images/s, for the scaling efficiency in the ddp record")
    run.add_argument("--resume", action="store_true",
                     help="continue from OUT_DIR/checkpoints/last.pt if present")
    run.add_argument("--overwrite", action="store_true", help="replace a non-empty --out-dir")
    run.add_argument("--no-progress", dest="progress", action="store_false", default=True,
                     help="no progress bar")
    run.add_argument("--stop-after-epochs", type=int, default=None,
                     help="stop (exit 0, resumable) after this many epochs in this invocation")
    run.set_defaults(func=_run)

    lr = sub.add_parser("lr-find", help="LR range test: loss vs exponentially growing LR, plot",
                        description="LR range test; writes lr_find.csv/.json/.png to --out-dir.")
    _common_options(lr)
    lr.add_argument("--start-lr", type=float, default=1e-7)
    lr.add_argument("--end-lr", type=float, default=10.0)
    lr.add_argument("--num-iter", type=int, default=100)
    lr.set_defaults(func=_lr_find)

    sw = sub.add_parser("ddp-sweep", help="run `train run --ddp` under mpiexec for 1..N ranks; "
                        "record images/s and scaling efficiency",
                        description="Runs `mpiexec -n R python -m hpc train run --ddp ...` for each R "
                        "and writes OUT_DIR/ddp_scaling.jsonl (kind=ddp, efficiency vs the first R). "
                        "Options after -- go to `train run` unchanged.")
    sw.add_argument("--ranks", default="1,2", help="comma-separated rank counts (default 1,2)")
    sw.add_argument("--out-dir", required=True, help="one sub-directory per rank count")
    sw.add_argument("--mpiexec", default=None, help="mpiexec to use (default: next to python)")
    sw.add_argument("--overwrite", action="store_true")
    sw.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then `train run` options")
    sw.set_defaults(func=_ddp_sweep)

    ar = sub.add_parser("ddp-allreduce", help="time the gradient all-reduce of the study's AlexNet "
                        "(run under mpiexec -n N)",
                        description="Times torch.distributed all_reduce of a float32 tensor the size "
                        "of the model's gradients (the per-step DDP traffic); rank 0 prints JSON.")
    ar.add_argument("--classes", type=int, default=4, help="classes of the AlexNet (default 4)")
    ar.add_argument("--input-size", type=int, default=32)
    ar.add_argument("--numel", type=int, default=None, help="tensor size instead of the model's")
    ar.add_argument("--repeats", type=int, default=10)
    ar.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl)")
    ar.add_argument("--output", default=None, help="append a kind=ddp record to this JSONL file")
    ar.set_defaults(func=_ddp_allreduce)


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="HDF5 slice dataset (default: the experiment's "
                   "data or results/dataset/slices.h5)")
    p.add_argument("--out-dir", default=None, help="output directory (default: "
                   "results/training/<experiment>/<run>)")
    p.add_argument("--experiment", default=None, help="experiments/<x>.yaml (kind: training)")
    p.add_argument("--run", dest="run_name", default=None, help="run name within --experiment")
    p.add_argument("--name", default=None, help="label for records (default: the run name)")
    for field, (typ, help_) in _VALUE_OPTIONS.items():
        p.add_argument("--" + field.replace("_", "-"), dest=field, type=typ, default=None, help=help_)
    for field, help_ in _BOOL_OPTIONS.items():
        p.add_argument("--" + field.replace("_", "-"), dest=field, action=argparse.BooleanOptionalAction,
                       default=None, help=help_)


@functools.lru_cache(maxsize=1)
def schema_defaults() -> dict[str, Any]:
    """Defaults of one training run, read from the experiment schema (single source)."""
    from hpc.config import EXPERIMENT_SCHEMA_PATH, load_schema
    props = load_schema(EXPERIMENT_SCHEMA_PATH)["$defs"]["training"]["properties"]
    run_props = props["runs"]["items"]["properties"]
    out = {k: v["default"] for k, v in run_props.items() if "default" in v}
    out["data"] = props["data"]["default"]
    return out


def resolve_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Schema defaults < experiment run < command line -> (Settings, ranks)."""
    from hpc.config import ConfigError, load_experiment
    from hpc.train.loop import Settings

    merged = dict(schema_defaults())
    run_name = args.run_name
    exp_name = None
    if args.experiment:
        try:
            exp = load_experiment(args.experiment, kind="training")
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        exp_name = exp["name"]
        runs = {r["name"]: r for r in exp.get("runs", [])}
        if len(runs) != len(exp.get("runs", [])):
            raise CliError(f"--experiment {args.experiment}: run names are not unique")
        if run_name is None:
            if len(runs) != 1:
                raise CliError(f"--experiment {args.experiment} has runs {sorted(runs)}; choose one with --run")
            run_name = next(iter(runs))
        if run_name not in runs:
            raise CliError(f"--run {run_name!r}: not in {args.experiment} (runs: {sorted(runs)})")
        merged["data"] = exp["data"]
        merged.update(runs[run_name])
    elif run_name is not None:
        raise CliError("--run needs --experiment")
    for key in list(_VALUE_OPTIONS) + list(_BOOL_OPTIONS) + ["data"]:
        value = getattr(args, key, None)
        if value is not None:
            merged[key] = value
    _validate_run(merged, args.experiment)
    ranks = int(merged.pop("ranks", 1))
    merged.pop("name", None)
    out_dir = args.out_dir or (str(Path("results") / "training" / exp_name / run_name)
                               if exp_name else None)
    if out_dir is None:
        raise CliError("--out-dir is required (or give --experiment/--run for the default location)")
    fields = {f.name for f in dataclasses.fields(Settings)}
    extra = {k: getattr(args, k) for k in ("ddp", "baseline_images_per_s", "resume", "overwrite",
                                            "progress", "stop_after_epochs") if hasattr(args, k)}
    settings = Settings(out_dir=out_dir, name=args.name or run_name or Path(out_dir).name,
                        experiment=args.experiment,
                        **{k: v for k, v in merged.items() if k in fields}, **extra)
    return settings, ranks


def _validate_run(run: dict[str, Any], experiment: str | None) -> None:
    """Check the merged settings (experiment run + command line) against the schema, so a
    bad value from either source gets the same clear message."""
    import jsonschema

    from hpc.config import EXPERIMENT_SCHEMA_PATH, load_schema
    item = load_schema(EXPERIMENT_SCHEMA_PATH)["$defs"]["training"]["properties"]["runs"]["items"]
    item = {k: v for k, v in item.items() if k != "required"}
    candidate = {k: v for k, v in run.items() if k != "data"}
    if isinstance(candidate.get("batch_size"), str) and candidate["batch_size"].isdigit():
        candidate["batch_size"] = int(candidate["batch_size"])
    errors = sorted(jsonschema.Draft202012Validator(item).iter_errors(candidate), key=lambda e: list(e.path))
    if errors:
        where = f" (from {experiment} and the command line)" if experiment else ""
        raise CliError("invalid training settings" + where + ": " + "; ".join(
            f"{'.'.join(map(str, e.path)) or '<run>'}: {e.message}" for e in errors))


def _errors():  # type: ignore[no-untyped-def]
    from hpc.atomic import OutputNotWritableError
    from hpc.train.checkpoint import CheckpointError
    from hpc.train.data import DatasetError
    from hpc.train.ddp import DistributedSetupError
    from hpc.train.loop import TrainingError
    return (DatasetError, TrainingError, CheckpointError, DistributedSetupError, OutputNotWritableError)


def _run(args: argparse.Namespace) -> int:
    settings, ranks = resolve_settings(args)
    if ranks > 1 and not settings.ddp:
        raise CliError(f"run {settings.name!r} has ranks={ranks}: launch it as "
                       f"`mpiexec -n {ranks} python -m hpc train run --ddp ...`")
    from hpc.train.loop import run_training
    if settings.ddp:
        from hpc.parallel.launch import rank_count_problem
        from hpc.train.ddp import detect_env
        env = detect_env()
        problem = rank_count_problem(env.world_size, getattr(args, "expect_ranks", None))
        if problem:
            raise CliError(f"rank {env.rank}: {problem} (launcher: {env.launcher})")
        if args.experiment and env.world_size != ranks:
            raise CliError(f"run {settings.name!r} wants ranks={ranks} but the launcher started "
                           f"{env.world_size} rank(s) ({env.launcher})")
    try:
        return run_training(settings)
    except _errors() as exc:
        raise CliError(str(exc)) from None


def _lr_find(args: argparse.Namespace) -> int:
    settings, _ = resolve_settings(args)
    from hpc.train.lr_find import lr_find, write_outputs
    try:
        result = lr_find(settings, args.start_lr, args.end_lr, args.num_iter)
        write_outputs(result, settings.out_dir)
    except (*_errors(), ValueError) as exc:
        raise CliError(str(exc)) from None
    print(json.dumps({"suggested_lr": result.suggested_lr, "min_loss_lr_div10": result.min_loss_lr}))
    return 0


def _ddp_sweep(args: argparse.Namespace) -> int:
    from hpc.records import Record, new_record, read_records, write_records

    try:
        ranks = [int(r) for r in args.ranks.split(",")]
    except ValueError:
        raise CliError(f"--ranks {args.ranks!r}: expected comma-separated integers") from None
    if not ranks or min(ranks) < 1:
        raise CliError(f"--ranks {args.ranks!r}: rank counts must be >= 1")
    mpiexec = args.mpiexec or str(Path(sys.executable).parent / "mpiexec")
    if not (os.access(mpiexec, os.X_OK) or shutil.which(mpiexec)):
        raise CliError(f"--mpiexec {mpiexec}: not found or not executable")
    out = Path(args.out_dir)
    train_args = [a for a in args.train_args if a != "--"]
    if "--out-dir" in train_args:
        raise CliError("ddp-sweep sets --out-dir per rank count; do not pass it after --")
    results: list[Record] = []
    baseline = None
    for r in ranks:
        run_dir = out / f"ranks-{r}"
        cmd = [mpiexec, "-n", str(r), sys.executable, "-m", "hpc", "train", "run", "--ddp",
               "--out-dir", str(run_dir), "--name", f"ddp-{r}", *train_args]
        if args.overwrite:
            cmd.append("--overwrite")
        if baseline is not None:
            cmd += ["--baseline-images-per-s", str(baseline)]
        print("+ " + " ".join(cmd), file=sys.stderr)
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            results.append(new_record("ddp", f"ddp {r} ranks", {"world_size": r}, {}, status="failed",
                                      error=f"exit status {rc}"))
            continue
        recs = [x for x in read_records([run_dir / "metrics.jsonl"]) if x.kind == "ddp"]
        if not recs:
            raise CliError(f"{run_dir / 'metrics.jsonl'}: no ddp record written")
        rec = recs[-1]
        if baseline is None:
            baseline = rec.metrics["images_per_s"] / r  # per-rank throughput at the first count
            rec.metrics["scaling_efficiency"] = 1.0
        rec.metrics["speedup"] = rec.metrics["images_per_s"] / (baseline * ranks[0])
        results.append(rec)
        print(f"ranks {r}: {rec.metrics['images_per_s']:.1f} images/s, efficiency "
              f"{rec.metrics.get('scaling_efficiency')}", file=sys.stderr)
    write_records(out / "ddp_scaling.jsonl", results)
    return 0 if all(x.status == "ok" for x in results) else 1


def _ddp_allreduce(args: argparse.Namespace) -> int:
    import statistics

    from hpc.records import append_record, new_record
    from hpc.train import ddp
    from hpc.train.loop import _record_device, resolve_device

    try:
        device = resolve_device(args.device)
        env = ddp.detect_env()
        if env.world_size < 2:
            raise CliError("ddp-allreduce needs >= 2 ranks: run it under `mpiexec -n 2 ...`")
        if args.numel is None:
            from hpc.models.alexnet import AlexNetSmall
            model = AlexNetSmall(num_classes=args.classes, input_size=args.input_size)
            numel = sum(p.numel() for p in model.parameters())
            del model
        else:
            numel = args.numel
        ddp.init_distributed(env, device)
        try:
            times = ddp.time_allreduce(numel, args.repeats, device)
        finally:
            ddp.shutdown()
    except _errors() as exc:
        raise CliError(str(exc)) from None
    if env.rank == 0:
        med = statistics.median(times)
        nbytes = 4 * numel
        n = env.world_size
        result = {"world_size": n, "numel": numel, "bytes": nbytes, "median_s": med,
                  "min_s": min(times), "algbw_gbs": nbytes / med / 1e9,
                  "busbw_gbs": nbytes * 2 * (n - 1) / n / med / 1e9}
        print(json.dumps(result))
        if args.output:
            append_record(args.output, new_record(
                "ddp", f"allreduce {numel} floats x{n}", {"op": "allreduce", "world_size": n,
                                                          "numel": numel, "device": _record_device(device)},
                {k: v for k, v in result.items() if k.endswith(("_s", "_gbs"))}))
    return 0
