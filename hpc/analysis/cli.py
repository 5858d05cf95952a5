"""``python -m hpc report``: aggregate records into tables, build the HTML report.

    python -m hpc report aggregate --records results/records --csv all.csv --parquet all.parquet
    python -m hpc report build --records results/records --output results/report.html \
        [--figures-dir results/figures] [--template analysis/templates/report.html.j2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hpc.cli import CliError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{aggregate,build}")

    agg = sub.add_parser("aggregate", help="all JSONL records -> one tidy table (CSV and/or Parquet)",
                         description="Read every record (files, or directories searched for *.jsonl) "
                                     "into one table with params.*, metrics.* and provenance.* columns.")
    agg.add_argument("--records", nargs="*", required=True, metavar="PATH",
                     help="record JSONL files and/or directories holding them")
    agg.add_argument("--csv", type=Path, help="write the table as CSV here")
    agg.add_argument("--parquet", type=Path, help="write the table as Parquet here")
    agg.set_defaults(func=_aggregate)

    from hpc.analysis.report import DEFAULT_TEMPLATE

    build = sub.add_parser("build", help="records -> one self-contained HTML report",
                           description="Build the HTML report (figures embedded, no network needed).")
    build.add_argument("--records", nargs="*", required=True, metavar="PATH",
                       help="record JSONL files and/or directories holding them")
    build.add_argument("--output", type=Path, default=Path("results/report.html"),
                       help="HTML file to write (default: %(default)s)")
    build.add_argument("--figures-dir", type=Path, default=None,
                       help="also write every figure as PNG and SVG into this directory")
    build.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE,
                       help="Jinja2 template (default: %(default)s)")
    build.add_argument("--title", default="HPC MRI suite: scaling report", help="report title")
    build.set_defaults(func=_build)


def _aggregate(args: argparse.Namespace) -> int:
    from hpc.analysis.aggregate import RecordsNotFoundError, load_frame, write_tables
    from hpc.atomic import OutputNotWritableError

    if args.csv is None and args.parquet is None:
        raise CliError("aggregate: give --csv and/or --parquet (nothing to write otherwise)")
    try:
        df = load_frame(args.records)
        written = write_tables(df, csv=args.csv, parquet=args.parquet)
    except (RecordsNotFoundError, OutputNotWritableError, ValueError) as exc:
        raise CliError(str(exc)) from None
    counts = df["status"].value_counts().to_dict() if not df.empty else {}
    print(f"{len(df)} records ({', '.join(f'{v} {k}' for k, v in sorted(counts.items())) or 'none'}), "
          f"{len(df.columns)} columns -> {', '.join(map(str, written))}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from hpc.analysis.aggregate import RecordsNotFoundError
    from hpc.analysis.report import TemplateNotFoundError, build_report
    from hpc.atomic import OutputNotWritableError

    t0 = time.perf_counter()
    try:
        out = build_report(args.records, args.output, template=args.template,
                           figures_dir=args.figures_dir, title=args.title)
    except (RecordsNotFoundError, TemplateNotFoundError, OutputNotWritableError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"report -> {out} ({out.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)
    return 0
