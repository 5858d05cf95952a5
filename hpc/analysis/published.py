"""The studies' published tables, as data (``hpc/analysis/published/*.yaml``).

Each YAML file transcribes, from ``../shared/seeds/FIGURES.md``, the tables of one source
document that this suite measures a counterpart of: source document, caption, the exact
FIGURES.md search string (``locator``), the document's own line pointer (``seed``),
units, hardware, and a flag on every cell the source prints garbled (``uncertain``) or
that is known to mislead (``misleading``). Nothing here is measured by the suite; the
report prints these numbers next to ours, always labelled with the study's hardware.
The files are package data, read with importlib.resources, so an installed package finds
them from any directory.
"""
from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Cell = float | int | str | None


class Flag(BaseModel):
    """A caveat on one cell (row and column), a whole column, or the whole table."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["uncertain", "misleading"]
    note: str
    row: int | None = None
    column: str | None = None


class PublishedTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str
    caption: str
    locator: str = Field(description="exact substring of FIGURES.md")
    seed: str = Field(description="line pointer into the source document")
    hardware: str
    measures: dict[str, Any]
    columns: list[str]
    units: dict[str, str]
    rows: list[list[Cell]]
    flags: list[Flag] = []
    column_hardware: dict[str, str] = {}
    compare: list[str] = Field(default=[], description="time columns shown next to our runs")
    device_class: Literal["cpu", "gpu", "fpga", "mixed", "none"] = "none"
    document: str = ""
    title: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "PublishedTable":
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.key}: row {i} has {len(row)} cells for {len(self.columns)} columns")
        for f in self.flags:
            if f.column is not None and f.column not in self.columns:
                raise ValueError(f"table {self.key}: flag on unknown column {f.column!r}")
            if f.row is not None and not 0 <= f.row < len(self.rows):
                raise ValueError(f"table {self.key}: flag on row {f.row} of {len(self.rows)}")
        for c in self.compare:
            if c not in self.columns:
                raise ValueError(f"table {self.key}: compare column {c!r} is not a column")
        return self

    def records(self) -> list[dict[str, Cell]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def unit(self, column: str) -> str:
        return self.units.get(column, self.units.get("default", ""))

    def hardware_of(self, column: str) -> str:
        """The hardware of one column (tables that put several GPUs side by side)."""
        prefix = column.split("_", 1)[0]
        return self.column_hardware.get(prefix, self.hardware)

    def flags_for(self, row: int, column: str) -> list[Flag]:
        return [f for f in self.flags if (f.row is None or f.row == row)
                and (f.column is None or f.column == column)]


class PublishedDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    document: str = Field(description="file name in ../shared/seeds")
    title: str
    section: str = Field(description="FIGURES.md heading of this study")
    tables: list[PublishedTable]


@functools.lru_cache(maxsize=1)
def documents() -> tuple[PublishedDocument, ...]:
    """Every published-figures file, validated (a malformed file names itself)."""
    out = []
    folder = resources.files("hpc.analysis") / "published"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            doc = PublishedDocument.model_validate(data)
        except Exception as exc:
            raise ValueError(f"published/{entry.name}: {exc}") from exc
        tables = [t.model_copy(update={"document": doc.document, "title": doc.title}) for t in doc.tables]
        out.append(doc.model_copy(update={"tables": tables}))
    return tuple(out)


def tables() -> list[PublishedTable]:
    return [t for d in documents() for t in d.tables]


def table(key: str) -> PublishedTable:
    """One table by key; KeyError names the known keys."""
    for t in tables():
        if t.key == key:
            return t
    raise KeyError(f"no published table {key!r}; known: {', '.join(t.key for t in tables())}")


def cite(t: PublishedTable) -> str:
    """'004_c5ca….txt, Figura 4 — … (L511–L525)': how the report names a source."""
    return f"{t.document}, {t.caption} ({t.seed})"


def amdahl_parallel_fraction() -> float:
    """The parallel fraction 004 used for its Amdahl estimate (printed as 61.21 %)."""
    percents = {r["parallel_pct"] for r in table("amdahl").records()}
    if len(percents) != 1:
        raise ValueError(f"published amdahl table: expected one parallel fraction, got {percents}")
    return round(float(percents.pop()) / 100, 6)  # type: ignore[arg-type]
