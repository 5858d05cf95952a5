"""``python -m hpc backends``: which kernel backends can run here, and why the others cannot.

Probing is what the registry does anyway (import inside functions, never raise), so this
command is safe on any machine: a laptop without a GPU lists numba-cuda/cupy as
unavailable with the reason instead of crashing.
"""
from __future__ import annotations

import argparse
import json
import sys

from .registry import available_backends


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    infos = available_backends()
    if args.json:
        for info in infos.values():
            print(json.dumps({"backend": info.name, "device_kind": info.device_kind,
                              "ops": sorted(info.ops), "available": info.available,
                              "device_name": info.device_name, "reason": info.reason}))
        return 0
    rows = [["backend", "device", "ops", "available", "device name / reason"]]
    for info in infos.values():
        rows.append([info.name, info.device_kind, ",".join(sorted(info.ops)) or "-",
                     "yes" if info.available else "no",
                     info.device_name if info.available else info.reason])
    print(_table(rows))
    if args.require:
        missing = [n for n in args.require if not infos.get(n) or not infos[n].available]
        if missing:
            print(f"hpc backends: required backend(s) not available: {', '.join(missing)}", file=sys.stderr)
            return 1
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per backend instead of a table")
    parser.add_argument("--require", nargs="+", metavar="NAME", default=[],
                        help="exit 1 unless these backends are available (for scripts and CI)")
    parser.set_defaults(func=run)
