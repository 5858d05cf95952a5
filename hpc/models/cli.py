"""``python -m hpc model summary``: per-layer shapes, parameters and MACs of an AlexNet or
SqueezeNet v1.1."""
from __future__ import annotations

import argparse
import json

from hpc.cli import CliError
from hpc.models.registry import ARCHS


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{summary}")
    p = sub.add_parser("summary", help="print per-layer output shapes, parameters and MACs",
                       description="Per-layer output shapes, parameters and MACs (batch 1).")
    p.add_argument("--arch", choices=ARCHS, default="alexnet-small")
    p.add_argument("--input-size", type=int, default=None,
                   help="input height=width (small: 32/64/128, default 32; imagenet: default 227; "
                        "squeezenet1_1: default 224)")
    p.add_argument("--classes", type=int, default=None,
                   help="number of output classes (default 3; the last --channels entry if given)")
    p.add_argument("--in-channels", type=int, default=None,
                   help="input channels (default 1 for alexnet-small, 3 for alexnet-imagenet)")
    p.add_argument("--layout", choices=("classic", "torchvision"), default=None,
                   help="alexnet-imagenet layout (default: classic for 227, torchvision otherwise)")
    p.add_argument("--channels", type=str, default=None,
                   help="alexnet-imagenet widths, 8 comma-separated numbers: 5 conv, 2 hidden, classes")
    p.add_argument("--count-bias", action="store_true", help="count bias additions as MACs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_summary)


def _summary(args: argparse.Namespace) -> int:
    from hpc.models.registry import build_model
    from hpc.models.summary import format_summary, summarize

    channels = None
    if args.channels:
        try:
            channels = [int(c) for c in args.channels.split(",")]
        except ValueError:
            raise CliError(f"--channels {args.channels!r}: expected comma-separated integers") from None
        if args.classes is not None and channels[-1] != args.classes:
            raise CliError(f"--channels ends in {channels[-1]} classes but --classes is {args.classes}")
    size = args.input_size or {"alexnet-small": 32, "squeezenet1_1": 224}.get(args.arch, 227)
    options: dict = {}
    if args.layout is not None:
        options["layout"] = args.layout
    if channels is not None:
        options["channels"] = channels
    classes = channels[-1] if channels else (args.classes or (1000 if args.arch == "squeezenet1_1" else 3))
    try:
        model = build_model(args.arch, num_classes=classes, in_channels=args.in_channels, input_size=size,
                            **options)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    s = summarize(model, (model.in_channels, size, size), count_bias=args.count_bias)
    if args.json:
        print(json.dumps({"arch": args.arch, "input_shape": s.input_shape,
                          "total_params": s.total_params, "total_macs": s.total_macs,
                          "count_bias": s.count_bias,
                          "layers": [dict(name=l.name, kind=l.kind, output_shape=l.output_shape,
                                          params=l.params, macs=l.macs) for l in s.layers]},
                         indent=2))
    else:
        print(format_summary(s))
    return 0

