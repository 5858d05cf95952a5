"""``hpc compare``, ``hpc references`` and ``hpc runs``: references, history and comparison.

    python -m hpc compare RUN_A RUN_B [--tolerance 0.1] [--fail-on-regression] [--html out.html]
    python -m hpc references update RESULTS_DIR [--system NAME] [--dir experiments/references]
    python -m hpc references check RESULTS_DIR [--system NAME] [--fail-on-regression]
    python -m hpc runs add RESULTS_DIR [--system NAME] [--history runs]
    python -m hpc runs list [--history runs]

A run is a results directory (or record file) or a run id of the history.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpc.cli import CliError


def _history_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", type=Path, default=None,
                   help="history directory (default: $HPC_HISTORY or ./runs)")


def configure_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", help="baseline: results directory, record file or run id")
    parser.add_argument("run_b", help="the run to judge against it")
    parser.add_argument("--tolerance", type=float, default=0.10,
                        help="relative change that counts, as a fraction (default: %(default)s = 10%%)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when any point regressed beyond the tolerance")
    parser.add_argument("--html", type=Path, help="also write the comparison as a small HTML page")
    _history_arg(parser)
    parser.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from hpc.analysis import compare, history
    from hpc.analysis.aggregate import RecordsNotFoundError, load_frame

    try:
        a, b = history.resolve(args.run_a, args.history), history.resolve(args.run_b, args.history)
        cmp = compare.compare_frames(load_frame([a]), load_frame([b]), args.tolerance)
    except (history.RunNotFoundError, RecordsNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(compare.format_text(cmp, args.run_a, args.run_b, args.tolerance))
    if args.html:
        compare.write_html(cmp, args.run_a, args.run_b, args.tolerance, args.html)
        print(f"comparison -> {args.html}", file=sys.stderr)
    return 1 if args.fail_on_regression and (cmp["status"] == "regressed").any() else 0


def configure_references(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{update,check}")
    for name, helptext in (("update", "write a run's figures as the references of a system"),
                           ("check", "mark a run's points within / below / above their references")):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("results", help="results directory, record file or run id")
        p.add_argument("--system", help="system name (default: $HPC_SYSTEM, else the records' host)")
        p.add_argument("--dir", type=Path, default=None, help="reference directory (default: experiments/references)")
        _history_arg(p)
        if name == "update":
            p.add_argument("--tolerance", type=float, default=0.10,
                           help="tolerance on the worse side of each metric (default: %(default)s)")
            p.set_defaults(func=_references_update)
        else:
            p.add_argument("--fail-on-regression", action="store_true", help="exit 1 on any regression")
            p.set_defaults(func=_references_check)


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from hpc.analysis import history
    from hpc.analysis.aggregate import RecordsNotFoundError, load_frame
    try:
        df = load_frame([history.resolve(args.results, args.history)])
    except (history.RunNotFoundError, RecordsNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return df, history.system_name(df, args.system)


def _references_update(args: argparse.Namespace) -> int:
    from hpc.analysis import references
    df, system = _load(args)
    try:
        path = references.update(df, system, args.dir, args.tolerance, source=str(args.results))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(f"references for system {system!r} -> {path} (review, then commit)")
    return 0


def _references_check(args: argparse.Namespace) -> int:
    from hpc.analysis import references
    df, system = _load(args)
    path = references.path_for(system, args.dir)
    if not path.is_file():
        raise CliError(f"{path}: no references for system {system!r} (write them with `hpc references update`)")
    try:
        marks = references.mark(df, references.load(path))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    for _, r in marks[marks["mark"] != "no reference"].iterrows():
        print(f"{r['mark']:<7} {r['verdict'] or '-':<11} {r['kind']:<8} {r['point']}  {r['metric']} = "
              f"{r['value']:.4g} (reference {r['reference']:.4g}, allowed {r['low']:.4g} .. {r['high']:.4g})")
    print(references.summary_line(marks, system))
    return 1 if args.fail_on_regression and (marks["verdict"] == "regression").any() else 0


def configure_runs(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{add,list}")
    add = sub.add_parser("add", help="keep a results directory's records as a run of the history")
    add.add_argument("results", type=Path, help="results directory or record file")
    add.add_argument("--system", help="system name (default: $HPC_SYSTEM, else the records' host)")
    add.add_argument("--entry", type=Path, default=None,
                     help="also write the new index row as a one-row CSV (the workflow's marker file)")
    _history_arg(add)
    add.set_defaults(func=_runs_add)
    ls = sub.add_parser("list", help="the index of runs")
    _history_arg(ls)
    ls.set_defaults(func=_runs_list)


def _runs_add(args: argparse.Namespace) -> int:
    from hpc.analysis import history
    from hpc.analysis.aggregate import RecordsNotFoundError
    try:
        e = history.add_run(args.results, args.history, args.system)
    except (RecordsNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.entry is not None:
        import dataclasses

        import pandas as pd

        from hpc.atomic import atomic_write_text
        atomic_write_text(args.entry, pd.DataFrame([dataclasses.asdict(e)]).to_csv(index=False))
    print(f"run {e.run_id}: {e.n_records} records, system {e.system}, commit {e.git_commit or '?'}")
    return 0


def _runs_list(args: argparse.Namespace) -> int:
    from hpc.analysis import history
    runs = history.list_runs(args.history)
    print(runs.to_string(index=False) if not runs.empty else "no runs yet")
    return 0
