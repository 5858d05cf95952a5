"""Measured points and their headline metrics: what references and run comparisons match on.

A point is one sweep point named by the params that identify it (op, backend target,
shape, window, dtype for a kernel; mode, path, problem, ranks for scaling; run and device
for training), so the same point of two runs, or of a run and its references, gets the
same key. Each headline metric says whether higher or lower is better.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpc.analysis import tables

HIGHER, LOWER = "higher", "lower"

# kind -> (metric, which way is better); metrics are columns of the derived tables
HEADLINE: dict[str, tuple[tuple[str, str], ...]] = {
    "kernel": (("median_s", LOWER), ("bound_fraction", HIGHER), ("gflops_fraction", HIGHER)),
    "scaling": (("t_total_s", LOWER), ("efficiency", HIGHER), ("bound_fraction", HIGHER)),
    "training": (("test_acc", HIGHER), ("wall_s", LOWER), ("images_per_s", HIGHER)),
    "ddp": (("images_per_s", HIGHER), ("efficiency", HIGHER)),
}
COLUMNS = ["kind", "point", "metric", "value", "better"]


@dataclass(frozen=True)
class Point:
    kind: str
    point: str
    metric: str


def _kernel_keys(kt: pd.DataFrame) -> list[str]:
    return [" ".join(x for x in (op, f"{b}:{v}" if v else b, shape, w.replace(" ", ""), dt) if x)
            for op, b, v, shape, w, dt in zip(kt["op"], kt["backend"], kt["variant"], kt["shape"],
                                             kt["window"], kt["dtype"])]


def _scaling_keys(st: pd.DataFrame) -> list[str]:
    return [f"{op} {mode} {path} {problem} {dev} {dt} ranks={int(n)}"
            for op, mode, path, problem, dev, dt, n in zip(st["op"], st["mode"], st["path"], st["problem"],
                                                           st["devices"], st["dtype"], st["ranks"])]


def point_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (point, headline metric) with a finite value, for every known kind."""
    frames = []
    kt = tables.kernel_table(df)
    frames.append(_melt("kernel", kt, _kernel_keys(kt)))
    st = tables.scaling_table(df)
    frames.append(_melt("scaling", st, _scaling_keys(st)))
    tt = tables.training_table(df)
    frames.append(_melt("training", tt, [f"{r} {c}" for r, c in zip(tt["run"], tt["device_class"])]))
    dd = tables.ddp_table(df)
    frames.append(_melt("ddp", dd, [f"{c} ranks={int(n)}" for c, n in zip(dd["device"], dd["ranks"])]))
    out = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(
        not f.empty for f in frames) else pd.DataFrame(columns=COLUMNS)
    # a point measured twice in one run (repeated sweep): keep its best value
    best = []
    for (kind, point, metric), g in out.groupby(["kind", "point", "metric"], sort=True):
        better = g["better"].iloc[0]
        best.append({"kind": kind, "point": point, "metric": metric, "better": better,
                     "value": g["value"].min() if better == LOWER else g["value"].max()})
    return pd.DataFrame(best, columns=COLUMNS)


def _melt(kind: str, t: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for i, key in enumerate(keys):
        for metric, better in HEADLINE[kind]:
            if metric not in t.columns:
                continue
            v = t[metric].iloc[i]
            if tables.finite(v):
                rows.append({"kind": kind, "point": key, "metric": metric, "value": float(v), "better": better})
    return pd.DataFrame(rows, columns=COLUMNS)


def better_of(metric: str) -> str:
    for pairs in HEADLINE.values():
        for m, b in pairs:
            if m == metric:
                return b
    raise KeyError(f"metric {metric!r} is not a headline metric; known: "
                   f"{sorted({m for p in HEADLINE.values() for m, _ in p})}")


def relative_change(a: float, b: float) -> float:
    """b / a - 1 (NaN when a is 0)."""
    return float(b) / float(a) - 1.0 if a else np.nan
