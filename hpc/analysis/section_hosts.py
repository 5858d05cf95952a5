"""Warnings for speed-up curves whose points ran on different machines.

A strong- or weak-scaling curve compares runs at several rank counts. When the workflow
submits each point as its own SLURM job, the points may land on different nodes; the
speed-up then mixes node-to-node differences (CPU model, memory, neighbours) into the
scaling. Every scaling record lists the host of each rank (``params.hosts``); a curve is
flagged when its points used more distinct hosts altogether than its largest point did,
i.e. when the points did not share one set of nodes (1 rank on A and 2 ranks on A and B
is fine; 1 rank on A and 2 ranks on B and C is not).
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

#: Columns that identify one speed-up curve (those present are used).
CURVE_KEYS: tuple[str, ...] = ("params.experiment", "params.mode", "params.op", "params.size",
                               "params.path", "params.algorithm", "params.dtype", "params.split")


def _hosts(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    if isinstance(value, (list, tuple)):
        return [str(h) for h in value]
    return []


def mixed_host_warnings(df: pd.DataFrame) -> list[str]:
    """One sentence per speed-up curve whose points ran on different hosts."""
    if df.empty or "params.hosts" not in df.columns or "kind" not in df.columns:
        return []
    runs = df[(df["kind"] == "scaling") & (df["status"] == "ok")]
    if runs.empty:
        return []
    keys = [k for k in CURVE_KEYS if k in runs.columns]
    warnings = []
    for group, points in runs.groupby([runs[k].astype(str) for k in keys], sort=True):
        per_point = []
        for _, row in points.iterrows():
            hosts = _hosts(row["params.hosts"])
            if hosts:
                per_point.append((int(row.get("params.ranks", len(hosts))), sorted(set(hosts))))
        if len(per_point) < 2:
            continue
        union = set().union(*(set(h) for _, h in per_point))
        if len(union) > max(len(h) for _, h in per_point):
            label = " ".join(str(g) for g in (group if isinstance(group, tuple) else (group,))
                             if str(g) not in ("", "nan", "None"))
            where = "; ".join(f"{r} rank{'s' if r != 1 else ''}: {', '.join(h)}"
                              for r, h in sorted(per_point))
            warnings.append(f"Speed-up curve {label}: its points ran on different hosts ({where}); "
                            "node-to-node differences are part of this speed-up. Run the sweep in "
                            "one allocation (slurm/jobs/scaling.sbatch) or pin the nodes to compare "
                            "like with like.")
    return warnings
