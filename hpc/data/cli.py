"""``python -m hpc data``: build | info | export-png."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpc.atomic import OutputNotWritableError
from hpc.cli import CliError
from hpc.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from hpc.data.errors import DatasetError, NothingConvertedError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{build,info,export-png}")

    b = sub.add_parser("build", help="convert NIfTI volumes into an HDF5 slice dataset",
                       description="Convert NIfTI volumes (config dataset.input: 'sample', a "
                                   "directory of class sub-directories, or a CSV manifest) into "
                                   "one HDF5 slice dataset. Bad files are reported and skipped.")
    b.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                   help="suite configuration YAML (default: %(default)s)")
    b.add_argument("--output", type=Path, help="HDF5 file to write (default: config dataset.output)")
    b.add_argument("--input", help="override dataset.input: 'sample', a directory or a .csv manifest")
    b.add_argument("--records",
                   help="JSONL file for the build record (default: config dataset.records; '' = none)")
    b.add_argument("--strict", action="store_true", default=None,
                   help="exit 1 and write nothing if any input is rejected (default: config dataset.strict)")
    b.add_argument("--png", type=Path, metavar="DIR", help="also export PNG slices per class to DIR")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    b.set_defaults(func=run_build)

    i = sub.add_parser("info", help="print shape, class counts, split sizes and provenance of a dataset")
    i.add_argument("file", type=Path, help="an hpc-slices HDF5 file")
    i.set_defaults(func=run_info)

    e = sub.add_parser("export-png", help="write dataset slices as PNG files, one folder per class")
    e.add_argument("file", type=Path, help="an hpc-slices HDF5 file")
    e.add_argument("--out", type=Path, required=True, help="output directory")
    e.add_argument("--split", choices=("train", "val", "test"), help="only this split")
    e.add_argument("--limit", type=int, help="at most this many images per class")
    e.add_argument("--scale", type=int, default=4, help="integer upscaling factor (default: %(default)s)")
    e.set_defaults(func=run_export_png)


def run_build(args: argparse.Namespace) -> int:
    from hpc.data.build import build_dataset
    from hpc.records import new_record, write_records

    try:
        cfg = load_config(args.config)["dataset"]
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.input is not None:
        cfg["input"] = args.input
    output = args.output if args.output is not None else Path(cfg["output"])
    cfg["output"] = str(output)
    records_arg = cfg["records"] if args.records is None else args.records
    records = Path(records_arg) if records_arg else None
    strict = cfg["strict"] if args.strict is None else args.strict
    try:
        result = build_dataset(cfg, output, strict=strict, progress=not args.no_progress)
    except NothingConvertedError as exc:
        print(f"hpc data build: {exc}", file=sys.stderr)
        return 1
    except (DatasetError, OutputNotWritableError) as exc:
        raise CliError(str(exc)) from None

    summary = (f"converted {len(result.converted)} file(s) into {result.n_slices} slices, "
               f"rejected {len(result.rejected)}")
    if result.output is None:
        print(f"hpc data build: strict mode: {summary}; no dataset written", file=sys.stderr)
        return 1
    counts = ", ".join(f"{k} {v}" for k, v in result.class_counts.items())
    subjects = ", ".join(f"{k} {v}" for k, v in result.subjects_per_split.items())
    print(f"split {result.split_method}: subjects {subjects}; slices "
          + ", ".join(f"{k} {v}" for k, v in result.slices_per_split.items()), file=sys.stderr)
    print(f"{summary}; wrote {result.output} ({result.file_size_bytes / 1024:.1f} KiB) in "
          f"{result.elapsed_s:.2f} s [{counts}]", file=sys.stderr)
    if records is not None:
        rec = new_record("dataset", f"dataset {Path(str(cfg['input'])).name} -> {result.output.name}",
                         params={"input": str(cfg["input"]), "output": str(result.output),
                                 "slice_axis": cfg["slice_axis"], "image_size": cfg["image_size"],
                                 "normalization": cfg["normalization"], "resample": cfg["resample"],
                                 "classes": list(result.class_counts),
                                 "split": result.split_method,
                                 "virtual_subjects_per_class": result.virtual_subjects_per_class},
                         metrics={"elapsed_s": result.elapsed_s, "file_size_bytes": result.file_size_bytes,
                                  "n_slices": result.n_slices, "n_converted": len(result.converted),
                                  "n_rejected": len(result.rejected),
                                  "n_subjects": sum(result.subjects_per_class.values()),
                                  "subjects_per_class": result.subjects_per_class,
                                  "subjects_per_split": result.subjects_per_split,
                                  "slices_per_split": result.slices_per_split},
                         status="ok" if result.ok else "failed",
                         error="; ".join(m for _, m in result.rejected) or None)
        write_records(records, [rec])
    if args.png is not None:
        from hpc.data.png import export_png
        n = export_png(result.output, args.png)
        print(f"exported {n} PNG file(s) to {args.png}", file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from hpc.data.reader import format_summary, summarize

    try:
        print(format_summary(summarize(args.file)))
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    return 0


def run_export_png(args: argparse.Namespace) -> int:
    from hpc.data.png import export_png

    try:
        n = export_png(args.file, args.out, split=args.split, limit_per_class=args.limit, scale=args.scale)
    except (DatasetError, OutputNotWritableError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"exported {n} PNG file(s) to {args.out}", file=sys.stderr)
    return 0
