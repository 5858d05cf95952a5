"""Two runs side by side: per matched point, both values, the ratio, and whether it changed.

A change beyond the tolerance (default 10 %) in the worse direction of a metric (a longer
time, a lower fraction or efficiency or accuracy) is a regression; in the better direction
an improvement. Points measured in only one of the runs are listed, not dropped.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from hpc.analysis import points
from hpc.analysis.aggregate import load_frame

COLUMNS = ["kind", "point", "metric", "a", "b", "ratio", "change", "status"]


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, tolerance: float = 0.10) -> pd.DataFrame:
    """Matched points (status unchanged / regressed / improved) and the ones in one run only
    (status 'only in A' / 'only in B')."""
    if not 0 <= tolerance:
        raise ValueError(f"tolerance={tolerance!r}: must be >= 0 (a fraction, 0.1 = 10 %)")
    pa, pb = points.point_table(a), points.point_table(b)
    m = pa.merge(pb, on=["kind", "point", "metric", "better"], how="outer", suffixes=("_a", "_b"))
    rows = []
    for _, r in m.iterrows():
        va, vb = r["value_a"], r["value_b"]
        if pd.isna(va) or pd.isna(vb):
            status = "only in A" if pd.isna(vb) else "only in B"
            rows.append({"kind": r["kind"], "point": r["point"], "metric": r["metric"],
                         "a": va, "b": vb, "ratio": math.nan, "change": math.nan, "status": status})
            continue
        change = points.relative_change(va, vb)
        worse = change > tolerance if r["better"] == points.LOWER else change < -tolerance
        better = change < -tolerance if r["better"] == points.LOWER else change > tolerance
        rows.append({"kind": r["kind"], "point": r["point"], "metric": r["metric"], "a": va, "b": vb,
                     "ratio": vb / va if va else math.nan, "change": change,
                     "status": "regressed" if worse else ("improved" if better else "unchanged")})
    order = {"regressed": 0, "improved": 1, "unchanged": 2, "only in A": 3, "only in B": 4}
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.sort_values(["status", "kind", "point", "metric"], key=lambda s: s.map(order)
                           if s.name == "status" else s, kind="stable").reset_index(drop=True)


def compare_runs(a: str | os.PathLike[str], b: str | os.PathLike[str], tolerance: float = 0.10) -> pd.DataFrame:
    return compare_frames(load_frame([a]), load_frame([b]), tolerance)


def _fmt(v: float) -> str:
    return "-" if pd.isna(v) else f"{v:.4g}"


def format_text(cmp: pd.DataFrame, name_a: str, name_b: str, tolerance: float) -> str:
    """The terminal table: one line per point and metric, then the counts."""
    lines = [f"A = {name_a}", f"B = {name_b}", f"tolerance {tolerance:.0%}", ""]
    head = ["status", "kind", "point", "metric", "A", "B", "B/A"]
    body = [[r["status"], r["kind"], r["point"], r["metric"], _fmt(r["a"]), _fmt(r["b"]), _fmt(r["ratio"])]
            for _, r in cmp.iterrows()]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    for row in [head, ["-" * w for w in widths], *body]:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    counts = cmp["status"].value_counts()
    lines += ["", ", ".join(f"{counts.get(s, 0)} {s}" for s in
                            ("regressed", "improved", "unchanged", "only in A", "only in B"))]
    return "\n".join(lines) + "\n"


def write_html(cmp: pd.DataFrame, name_a: str, name_b: str, tolerance: float,
               output: str | os.PathLike[str]) -> Path:
    """A small self-contained HTML page of the comparison (package template compare.html.j2)."""
    import jinja2
    from importlib import resources

    from hpc.analysis.aggregate import make_readable
    from hpc.atomic import atomic_path

    text = (resources.files("hpc.analysis") / "templates" / "compare.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    rows = [{**r, "a": _fmt(r["a"]), "b": _fmt(r["b"]), "ratio": _fmt(r["ratio"])}
            for r in cmp.to_dict("records")]
    html = env.from_string(text).render(a=name_a, b=name_b, tolerance=f"{tolerance:.0%}", rows=rows,
                                        counts=cmp["status"].value_counts().to_dict())
    with atomic_path(output, suffix=".html") as tmp:
        tmp.write_text(html, encoding="utf-8")
        make_readable(tmp)
    return Path(output)
