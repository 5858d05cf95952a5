"""Every JSONL record file -> one tidy table (one row per record).

Columns: ``kind``, ``name``, ``status``, ``error``, ``source`` (file the record came from),
then ``params.*``, ``metrics.*`` and ``provenance.*`` (nested dicts flattened with dots,
e.g. ``provenance.versions.numpy``). Lists (shapes, per-rank figures) stay Python objects
in memory so the report can use them; on export they become JSON text so CSV and Parquet
hold one type per column.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from hpc.atomic import atomic_path
from hpc.records import Record, check_record, read_records

BASE_COLUMNS: tuple[str, ...] = ("kind", "name", "status", "error", "source")
SECTIONS: tuple[str, ...] = ("params", "metrics", "provenance")


class RecordsNotFoundError(FileNotFoundError):
    """A path given as a record source does not exist; the message names it."""


def find_record_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories to the ``*.jsonl`` files below them (sorted); keep files as given.

    Duplicates are dropped (a file named directly and found in a directory is read once),
    so aggregating ``results/records results/records/kernels.jsonl`` does not double rows.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            candidates = sorted(q for q in p.rglob("*.jsonl") if q.is_file())
        elif p.is_file():
            candidates = [p]
        else:
            raise RecordsNotFoundError(f"{p}: no such record file or directory")
        for q in candidates:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                found.append(q)
    return found


def flatten(prefix: str, mapping: dict[str, Any]) -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"prefix.a.b": 1, "prefix.c": [1, 2]}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            out.update(flatten(name, value))
        else:
            out[name] = value
    return out


def record_row(record: Record, source: str | None = None) -> dict[str, Any]:
    """One record as one flat row."""
    row: dict[str, Any] = {"kind": record.kind, "name": record.name, "status": record.status,
                           "error": record.error, "source": source}
    row.update(flatten("params", record.params))
    row.update(flatten("metrics", record.metrics))
    row.update(flatten("provenance", record.provenance))
    return row


def _ordered_columns(columns: Iterable[str]) -> list[str]:
    cols = list(dict.fromkeys(columns))
    rest = [c for c in cols if c not in BASE_COLUMNS]
    by_section = {s: sorted(c for c in rest if c.startswith(s + ".")) for s in SECTIONS}
    other = sorted(c for c in rest if not any(c.startswith(s + ".") for s in SECTIONS))
    return list(BASE_COLUMNS) + [c for s in SECTIONS for c in by_section[s]] + other


def records_to_frame(rows: Iterable[tuple[Record, str | None]]) -> pd.DataFrame:
    """Records (with the file each came from) -> tidy DataFrame with a stable column order."""
    data = [record_row(rec, src) for rec, src in rows]
    columns = _ordered_columns([c for row in data for c in row] or BASE_COLUMNS)
    return pd.DataFrame(data, columns=columns)


def load_frame(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Read every record under ``paths`` (files or directories) into one table."""
    files = find_record_files(paths)
    rows: list[tuple[Record, str | None]] = []
    seen: set[str] = set()
    for f in files:
        for rec in read_records([f]):
            # the same record copied into two files (a run's metrics.jsonl and the
            # workflow's records.jsonl) is one measurement, not two
            key = rec.to_json()
            if key in seen:
                continue
            seen.add(key)
            problem = check_record(rec)
            if problem is not None:
                # a record that does not match its schema is a producer bug: it is shown
                # in the report with what is wrong, never dropped and never measured
                rec = Record(kind=rec.kind, name=rec.name, params=rec.params, metrics={},
                             status="invalid", error=problem, provenance=rec.provenance)
            rows.append((rec, str(f)))
    return records_to_frame(rows)


def _cell_to_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and pd.isna(value):
        return None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def export_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with one type per column: numeric columns stay numeric, anything else is text.

    Parquet refuses object columns that mix ints, strings and lists; CSV would silently
    write Python reprs. JSON text is readable in both and parses back losslessly.
    """
    out = df.copy()
    for col in out.columns:
        series = out[col]
        if series.dtype != object:
            continue
        values = [v for v in series if v is not None and not (isinstance(v, float) and pd.isna(v))]
        if values and all(isinstance(v, bool) for v in values):
            out[col] = series.astype("boolean")
        elif values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[col] = pd.to_numeric(series, errors="coerce")
        else:
            out[col] = series.map(_cell_to_text).astype("string")
    return out


def make_readable(path: str | os.PathLike[str]) -> None:
    """Give a finished output the usual rw-r--r-- (the atomic temp file starts as 0600).

    Reports and tables are meant to be shared (group project directories on a cluster).
    """
    os.chmod(path, 0o644)


def write_tables(df: pd.DataFrame, csv: str | os.PathLike[str] | None = None,
                 parquet: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write the table as CSV and/or Parquet, each atomically (temp file + rename)."""
    flat = export_frame(df)
    written: list[Path] = []
    if csv is not None:
        with atomic_path(csv, suffix=".csv") as tmp:
            flat.to_csv(tmp, index=False)
            make_readable(tmp)
        written.append(Path(csv))
    if parquet is not None:
        with atomic_path(parquet, suffix=".parquet") as tmp:
            flat.to_parquet(tmp, index=False, engine="pyarrow")
            make_readable(tmp)
        written.append(Path(parquet))
    return written
