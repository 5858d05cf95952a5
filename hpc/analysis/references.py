"""Reference values with tolerances per system, the way ReFrame keeps them.

``experiments/references/<system>.yaml`` (``system``: a name the user gives a cluster or
partition; default the host name) holds, per record kind and point (``hpc.analysis.points``
keys, which include the rank count), a ``[value, lower, upper]`` triple per headline metric:
the measured value must lie in ``[value * (1 + lower), value * (1 + upper)]``, e.g.
``bound_fraction: [0.8, -0.1, .inf]`` (at least 72 %, no upper limit). A point is marked
``within``, ``below`` or ``above`` its reference; whether that is a regression depends on
the metric (below is worse for a fraction, above is worse for a time).
``hpc references update RESULTS_DIR`` writes a run's figures as the new references, for the
user to review and commit.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from hpc.analysis import points
from hpc.atomic import atomic_write_text

DEFAULT_DIR = Path("experiments") / "references"
MARK_COLUMNS = ["kind", "point", "metric", "value", "reference", "low", "high", "mark", "verdict"]


class ReferenceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str
    updated: str = ""
    source: str = ""
    references: dict[str, dict[str, dict[str, tuple[float, float, float]]]]

    @field_validator("references")
    @classmethod
    def _tolerances(cls, refs: dict[str, dict[str, dict[str, tuple[float, float, float]]]]
                    ) -> dict[str, dict[str, dict[str, tuple[float, float, float]]]]:
        for kind, pts in refs.items():
            for point, metrics in pts.items():
                for metric, (_, lower, upper) in metrics.items():
                    points.better_of(metric)
                    if not lower <= 0 <= upper:
                        raise ValueError(f"{kind} {point!r} {metric}: tolerances [{lower}, {upper}] "
                                         "must satisfy lower <= 0 <= upper")
        return refs


def path_for(system: str, directory: str | os.PathLike[str] | None = None) -> Path:
    return Path(directory if directory is not None else DEFAULT_DIR) / f"{system}.yaml"


def load(path: str | os.PathLike[str]) -> ReferenceFile:
    """A reference file, validated; errors name the file."""
    try:
        return ReferenceFile.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a valid reference file: {exc}") from exc


def bounds(ref: tuple[float, float, float]) -> tuple[float, float]:
    value, lower, upper = ref
    scale = abs(value)
    lo = value + lower * scale if math.isfinite(lower) else -math.inf
    hi = value + upper * scale if math.isfinite(upper) else math.inf
    return lo, hi


def mark(df: pd.DataFrame, refs: ReferenceFile) -> pd.DataFrame:
    """Every measured headline metric with its reference (if any) and its mark."""
    rows = []
    for _, r in points.point_table(df).iterrows():
        ref = refs.references.get(r["kind"], {}).get(r["point"], {}).get(r["metric"])
        if ref is None:
            rows.append({**{k: r[k] for k in ("kind", "point", "metric", "value")}, "reference": math.nan,
                         "low": math.nan, "high": math.nan, "mark": "no reference", "verdict": ""})
            continue
        lo, hi = bounds(ref)
        where = "below" if r["value"] < lo else ("above" if r["value"] > hi else "within")
        worse = "below" if r["better"] == points.HIGHER else "above"
        verdict = "" if where == "within" else ("regression" if where == worse else "improvement")
        rows.append({"kind": r["kind"], "point": r["point"], "metric": r["metric"], "value": r["value"],
                     "reference": ref[0], "low": lo, "high": hi, "mark": where, "verdict": verdict})
    return pd.DataFrame(rows, columns=MARK_COLUMNS)


def summary_line(marks: pd.DataFrame, system: str) -> str:
    counts = marks["mark"].value_counts()
    n_reg = int((marks["verdict"] == "regression").sum())
    return (f"references ({system}): {counts.get('within', 0)} within, {counts.get('below', 0)} below, "
            f"{counts.get('above', 0)} above ({n_reg} regression(s)), "
            f"{counts.get('no reference', 0)} without a reference")


def update(df: pd.DataFrame, system: str, directory: str | os.PathLike[str] | None = None,
           tolerance: float = 0.10, source: str = "") -> Path:
    """Write the run's headline figures as the references of ``system``.

    Points already in the file and not measured now are kept; measured ones get the new
    value with a one-sided tolerance on the worse side (``-tolerance`` for higher-is-better
    metrics, ``+tolerance`` for times) and no limit on the better side.
    """
    path = path_for(system, directory)
    refs: dict[str, Any] = load(path).references if path.is_file() else {}
    refs = {k: {p: dict(m) for p, m in v.items()} for k, v in refs.items()}
    for _, r in points.point_table(df).iterrows():
        band = [-tolerance, math.inf] if r["better"] == points.HIGHER else [-math.inf, tolerance]
        refs.setdefault(r["kind"], {}).setdefault(r["point"], {})[r["metric"]] = [float(r["value"]), *band]
    body = {"system": system, "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": source,
            "references": {k: {p: {m: list(v) for m, v in sorted(ms.items())} for p, ms in sorted(pts.items())}
                           for k, pts in sorted(refs.items())}}
    ReferenceFile.model_validate(body)
    header = ("# Reference values for system '%s': [value, lower, upper]; a measurement must lie in\n"
              "# [value * (1 + lower), value * (1 + upper)]. Written by `hpc references update`;\n"
              "# review the numbers (and widen tolerances for noisy points) before committing.\n" % system)
    atomic_write_text(path, header + yaml.safe_dump(body, sort_keys=False, width=120, default_flow_style=None))
    return path
