"""``python -m hpc compress``: the compression stage's commands.

* ``base``    - train the full-precision network a compression experiment starts from;
* ``run``     - one run of a compression experiment (k-means, conv benchmark, NetAdapt, binary);
* ``macs``    - MACs of the ImageNet AlexNet for given channel widths (NetAdapt accounting);
* ``inspect`` - load a packed clustered-model file and list its layers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpc.cli import CliError


def _spec(args: argparse.Namespace) -> dict:
    from hpc.config import ConfigError, load_experiment
    try:
        spec = load_experiment(args.experiment, kind="compression")
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    spec["_path"] = str(args.experiment)
    return spec


def _log(msg: str) -> None:
    print(msg, flush=True)


def _base(args: argparse.Namespace) -> int:
    from hpc.compress.runner import run_base
    spec = _spec(args)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = Path(args.output) if args.output else out_dir / "records.jsonl"
    from hpc.compress.runner import CompressionError
    try:
        run_base(spec, args.data or spec["data"], out_dir, output, log=_log,
                 checkpoint=Path(args.from_checkpoint) if args.from_checkpoint else None)
    except CompressionError as exc:
        raise CliError(str(exc)) from None
    return 0


def _run(args: argparse.Namespace) -> int:
    from hpc.compress.runner import CompressionError, run_method
    spec = _spec(args)
    out_dir = Path(args.out_dir)
    output = Path(args.output) if args.output else out_dir / "records.jsonl"
    try:
        run_method(spec, args.run, args.data or spec["data"], Path(args.base_dir), out_dir, output, log=_log)
    except CompressionError as exc:
        raise CliError(str(exc)) from None
    return 0


def _macs(args: argparse.Namespace) -> int:
    from hpc.compress.pruning import macs_for_channels
    channels = [int(c) for c in args.channels.split(",")]
    if len(channels) != 8:
        raise CliError(f"--channels {args.channels!r}: expected 8 comma-separated widths")
    print(macs_for_channels(channels, layout=args.layout, input_size=args.input_size))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from hpc.compress.packed import PackedModelError, load_clustered
    try:
        model, layers = load_clustered(args.file)
    except PackedModelError as exc:
        raise CliError(str(exc)) from None
    size = Path(args.file).stat().st_size
    arch = type(model).__name__
    print(f"{args.file}: {arch}, {size:,} bytes, {len(layers)} clustered layers")
    for l in layers:
        print(f"  {l.name:<22} {'x'.join(map(str, l.shape)):>16}  {l.bits} bits  "
              f"codebook {l.codebook.size}  r={l.theoretical_ratio():.2f}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action")
    b = sub.add_parser("base", help="train the full-precision network of a compression experiment",
                       description="Train the experiment's base network on the dataset's training split, "
                                   "or load a training run's checkpoint (--from-checkpoint), and save it "
                                   "(model.pt) for the runs; writes a compression_base record.")
    b.add_argument("--experiment", required=True, help="experiments/compression-*.yaml")
    b.add_argument("--data", help="hpc-slices HDF5 file (default: the experiment's data)")
    b.add_argument("--out-dir", required=True, help="directory for model.pt")
    b.add_argument("--output", help="JSONL record file (default: OUT_DIR/records.jsonl)")
    b.add_argument("--from-checkpoint", metavar="PATH",
                   help="load this training checkpoint (hpc train run's checkpoints/best.pt) instead of "
                        "training; required when the experiment sets base.from_training")
    b.set_defaults(func=_base)
    r = sub.add_parser("run", help="one run of a compression experiment",
                       description="Run one named run (kmeans, conv, netadapt or binary) of a compression "
                                   "experiment on the base network in --base-dir; appends records to --output.")
    r.add_argument("--experiment", required=True, help="experiments/compression-*.yaml")
    r.add_argument("--run", required=True, help="run name in the experiment")
    r.add_argument("--data", help="hpc-slices HDF5 file (default: the experiment's data)")
    r.add_argument("--base-dir", required=True, help="directory holding the base job's model.pt")
    r.add_argument("--out-dir", required=True, help="directory for the run's files (packed models)")
    r.add_argument("--output", help="JSONL record file (default: OUT_DIR/records.jsonl)")
    r.set_defaults(func=_run)
    m = sub.add_parser("macs", help="MACs of the ImageNet AlexNet for 8 channel widths",
                       description="Count MACs (no bias terms) of the ImageNet AlexNet with the given widths "
                                   "(conv1-5, fc1, fc2, classes), e.g. a NetAdapt history row.")
    m.add_argument("--channels", required=True, help="e.g. 64,192,384,256,256,4096,4096,10")
    m.add_argument("--layout", default="torchvision", choices=("torchvision", "classic"))
    m.add_argument("--input-size", type=int, default=224)
    m.set_defaults(func=_macs)
    i = sub.add_parser("inspect", help="load a packed clustered-model file and list its layers")
    i.add_argument("file", help="clustered-*.npz written by a kmeans run")
    i.set_defaults(func=_inspect)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
