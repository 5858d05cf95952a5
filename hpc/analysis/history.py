"""Run history: every run's records kept in one place, with an index of runs.

Layout of a history directory (default ``runs/``, or ``$HPC_HISTORY``)::

    runs/index.csv                  run_id, date, git_commit, system, host, n_records, source
    runs/<run_id>/records.jsonl     every record of the run (what ``hpc compare`` reads)
    runs/<run_id>/records.parquet   the same as one tidy table (for pandas, DuckDB, Spark...)

Why files and not a database: the per-run Parquet table already exists and every
analytics tool reads Parquet directly (``duckdb.sql("select * from 'runs/*/records.parquet'")``);
a CSV index is diffable and needs no server or lock. An embedded database would add a
dependency without a query we cannot already make with pandas.
"""
from __future__ import annotations

import collections
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from hpc.analysis.aggregate import find_record_files, load_frame, write_tables
from hpc.atomic import atomic_write_text
from hpc.records import read_records

INDEX = "index.csv"
INDEX_COLUMNS = ["run_id", "date", "git_commit", "system", "host", "n_records", "source"]


class RunNotFoundError(FileNotFoundError):
    """Neither a results directory nor a run id of the history; the message says which was tried."""


def default_dir() -> Path:
    return Path(os.environ.get("HPC_HISTORY", "runs"))


def system_name(df: pd.DataFrame, explicit: str | None = None) -> str:
    """The system a run belongs to: ``explicit``, else $HPC_SYSTEM, else the host most of its
    records ran on, else this host. Users name clusters or partitions with the first two."""
    if explicit:
        return explicit
    if os.environ.get("HPC_SYSTEM"):
        return os.environ["HPC_SYSTEM"]
    if "provenance.host" in df.columns and df["provenance.host"].notna().any():
        return str(df["provenance.host"].mode().iloc[0])
    return socket.gethostname()


@dataclass(frozen=True)
class RunEntry:
    run_id: str
    date: str
    git_commit: str
    system: str
    host: str
    n_records: int
    source: str


def _most_common(values: Iterable[object]) -> str:
    counts = collections.Counter(str(v) for v in values if v is not None and v == v)
    return counts.most_common(1)[0][0] if counts else ""


def add_run(results: str | os.PathLike[str], history: str | os.PathLike[str] | None = None,
            system: str | None = None) -> RunEntry:
    """Keep the records under ``results`` as a new run of the history; returns its index row."""
    history = Path(history) if history is not None else default_dir()
    files = find_record_files([results])
    df = load_frame(files)
    if df.empty:
        raise ValueError(f"{results}: no records to keep")
    stamps = df["provenance.timestamp"].dropna().astype(str) if "provenance.timestamp" in df.columns else []
    date = max(stamps) if len(stamps) else pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
    commit = _most_common(df.get("provenance.git_commit", []))
    sysname = system_name(df, system)
    stem = f"{date[:19].replace(':', '').replace('-', '')}-{sysname}" + (f"-{commit[:7]}" if commit else "")
    run_id, n = stem, 1
    while (history / run_id).exists():
        n += 1
        run_id = f"{stem}-{n}"
    seen: set[str] = set()
    lines = []
    for f in files:
        for rec in read_records([f]):
            line = rec.to_json()
            if line not in seen:
                seen.add(line)
                lines.append(line + "\n")
    atomic_write_text(history / run_id / "records.jsonl", "".join(lines))
    write_tables(df, parquet=history / run_id / "records.parquet")
    entry = RunEntry(run_id, date, commit, sysname, _most_common(df.get("provenance.host", [])),
                     len(lines), str(Path(results).resolve()))
    index = list_runs(history)
    index = pd.concat([index, pd.DataFrame([asdict(entry)])], ignore_index=True) if not index.empty \
        else pd.DataFrame([asdict(entry)], columns=INDEX_COLUMNS)
    atomic_write_text(history / INDEX, index.to_csv(index=False))
    return entry


def list_runs(history: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The index of runs (empty when there is no history yet)."""
    path = (Path(history) if history is not None else default_dir()) / INDEX
    if not path.is_file():
        return pd.DataFrame(columns=INDEX_COLUMNS)
    return pd.read_csv(path, dtype=str, keep_default_na=False).astype({"n_records": int})


def resolve(ref: str, history: str | os.PathLike[str] | None = None) -> Path:
    """A run given as a results directory / record file, or as a run id of the history."""
    if Path(ref).exists():
        return Path(ref)
    history = Path(history) if history is not None else default_dir()
    runs = list_runs(history)
    if ref in set(runs["run_id"]):
        return history / ref / "records.jsonl"
    raise RunNotFoundError(f"{ref}: not a results directory or record file, and not a run id in "
                           f"{history / INDEX} ({len(runs)} run(s) there)")
