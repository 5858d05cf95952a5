"""``python -m hpc report``: aggregate records into tables, build the HTML report.

    python -m hpc report aggregate --records results/records --csv all.csv --parquet all.parquet
    python -m hpc report build --records results/records --output results/report.html \
        [--figures-dir results/figures] [--template my-template.html.j2] [--references FILE] [--system NAME]
    python -m hpc report check results/report.html [--screenshot shot.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hpc.cli import CliError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{aggregate,build,markdown,check}")

    agg = sub.add_parser("aggregate", help="all JSONL records -> one tidy table (CSV and/or Parquet)",
                         description="Read every record (files, or directories searched for *.jsonl) "
                                     "into one table with params.*, metrics.* and provenance.* columns.")
    agg.add_argument("--records", nargs="*", required=True, metavar="PATH",
                     help="record JSONL files and/or directories holding them")
    agg.add_argument("--csv", type=Path, help="write the table as CSV here")
    agg.add_argument("--parquet", type=Path, help="write the table as Parquet here")
    agg.set_defaults(func=_aggregate)

    from hpc.analysis import DEFAULT_TEMPLATE  # light: no pandas/matplotlib for --help

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
    build.add_argument("--system", help="system whose references to mark points against "
                                        "(default: $HPC_SYSTEM, else the records' host)")
    build.add_argument("--references", type=Path, default=None,
                       help="reference file (default: experiments/references/<system>.yaml if present)")
    build.set_defaults(func=_build)

    md = sub.add_parser("markdown", help="report sections -> Markdown (the tables of docs/benchmarks/)",
                        description="Render chosen sections of the report, from the same records, as Markdown "
                                    "tables (no figures): the measured tables of a benchmark document are then "
                                    "generated from the run's records, never retyped.")
    md.add_argument("--records", nargs="*", required=True, metavar="PATH",
                    help="record JSONL files and/or directories holding them")
    md.add_argument("--section", action="append", required=True, metavar="ID",
                    help="section id, e.g. compression, training, kernels (repeat for more)")
    md.add_argument("--output", type=Path, help="write here (atomically) instead of standard output")
    md.add_argument("--level", type=int, default=2, choices=(1, 2, 3, 4),
                    help="heading level of the sections (default: %(default)s)")
    md.set_defaults(func=_markdown)

    check = sub.add_parser("check", help="open a report in headless Chromium: errors, external requests, screenshot",
                           description="Load an HTML file in headless Chromium (DevTools over a pipe) and report "
                                       "console errors, failed loads and any request for something not inline. "
                                       "Exit 1 if there were any.")
    check.add_argument("html", type=Path, help="the report to check")
    check.add_argument("--screenshot", type=Path, help="save a full-page PNG screenshot here")
    check.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default: %(default)s)")
    check.set_defaults(func=_check)


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
                           figures_dir=args.figures_dir, title=args.title,
                           references=args.references, system=args.system)
    except (RecordsNotFoundError, TemplateNotFoundError, OutputNotWritableError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"report -> {out} ({out.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)
    _references_summary(args)
    return 0


def _markdown(args: argparse.Namespace) -> int:
    from hpc.analysis import plots
    from hpc.analysis.aggregate import RecordsNotFoundError, load_frame
    from hpc.analysis.markdown import sections_markdown
    from hpc.analysis.report import build_context
    from hpc.atomic import OutputNotWritableError, atomic_path

    try:
        df = load_frame(args.records)
        context = build_context(df, plots.FigureSink(None), sources=[str(r) for r in args.records])
        text = sections_markdown(context["sections"], args.section, level=args.level)
        if args.output is None:
            sys.stdout.write(text)
        else:
            with atomic_path(args.output, suffix=".md") as tmp:
                tmp.write_text(text, encoding="utf-8")
            print(f"{', '.join(args.section)} -> {args.output}", file=sys.stderr)
    except (RecordsNotFoundError, OutputNotWritableError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _references_summary(args: argparse.Namespace) -> None:
    """The terminal summary of the report's References section (when the system has a file)."""
    from hpc.analysis import history, references
    from hpc.analysis.aggregate import load_frame

    df = load_frame(args.records)
    system = history.system_name(df, args.system)
    path = args.references or references.path_for(system)
    if path.is_file():
        print(references.summary_line(references.mark(df, references.load(path)), system), file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from hpc.analysis.browser import BrowserError, check_page

    if not args.html.is_file():
        raise CliError(f"{args.html}: no such file")
    try:
        page = check_page(args.html, screenshot=args.screenshot, width=args.width)
    except BrowserError as exc:
        raise CliError(str(exc)) from None
    for e in page.errors:
        print(f"error: {e}")
    for u in page.external_requests:
        print(f"external request: {u}")
    shot = f", screenshot {page.screenshot}" if page.screenshot else ""
    print(f"{args.html}: title {page.title!r}, page height {page.content_height} px, "
          f"{len(page.errors)} error(s), {len(page.external_requests)} external request(s){shot}")
    return 1 if page.errors or page.external_requests else 0
