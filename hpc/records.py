"""One schema for every measurement the suite produces.

Every producer (dataset build, kernel benchmark, MPI scaling driver, training) writes
``Record`` objects as JSON lines; the report reads nothing else. Keeping parameters and
metrics in two flat dicts lets the report build one tidy table (``params.*`` and
``metrics.*`` columns) without knowing every producer.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from hpc.atomic import atomic_write_text
from hpc.provenance import provenance

from hpc.schema import KINDS as _SCHEMAS, SCHEMA_VERSION, RecordSchemaError, validate_fields

RecordStatus = Literal["ok", "failed", "skipped"]
KINDS: tuple[str, ...] = tuple(_SCHEMAS)
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped", "invalid")  # invalid: set at aggregation only


class SchemaVersionError(ValueError):
    """A record written under a schema version this code cannot read; says which it needs."""


@dataclasses.dataclass
class Record:
    """A single measurement.

    kind:   which producer made it (see ``KINDS``).
    name:   short human label, e.g. ``"maxpool numba 4096x4096 k2s2"``.
    status: ``ok``; ``failed`` (``error`` says why) or ``skipped`` (``error`` says why),
            so failed sweep points reach the report instead of vanishing.
    params: what was run (op, backend, device, shape, dtype, ranks, ...). JSON scalars/lists.
    metrics: what was measured, units in the key names (``median_s``, ``bandwidth_gbs``).
    provenance: host, versions, git commit, SLURM ids; filled by ``new_record``.
    """

    kind: str
    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    status: str = "ok"
    error: str | None = None
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # the kind is checked against the schema by new_record and at aggregation
        # (check_record), so a file holding a kind this version does not know still reads
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"Record.kind={self.kind!r}: expected a kind name")
        if self.status not in STATUSES:
            raise ValueError(f"Record.status={self.status!r}: expected one of {STATUSES}")

    def to_json(self) -> str:
        return json.dumps(_jsonable(dataclasses.asdict(self)), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"record has unknown fields {sorted(unknown)}")
        return cls(**data)


def new_record(kind: str, name: str, params: dict[str, Any], metrics: dict[str, Any],
               status: str = "ok", error: str | None = None,
               extra_provenance: dict[str, Any] | None = None) -> Record:
    """Build a record stamped with this process's provenance, validated against its kind's schema."""
    if status not in ("ok", "failed", "skipped"):
        raise ValueError(f"status={status!r}: a producer writes ok, failed or skipped")
    params, metrics = validate_fields(kind, params, metrics, status)
    prov = provenance()
    if extra_provenance:
        prov.update(extra_provenance)
    return Record(kind=kind, name=name, params=params, metrics=metrics, status=status,
                  error=error, provenance=prov)


def check_record(record: Record) -> str | None:
    """None when ``record`` matches its kind's schema, else what is wrong (for the report)."""
    try:
        validate_fields(record.kind, record.params, record.metrics, record.status)
    except RecordSchemaError as exc:
        return str(exc)
    return None


def _is_device(value: dict[str, Any]) -> bool:
    from hpc.schema import Device
    try:
        Device.model_validate(value)
    except Exception:  # pydantic.ValidationError
        return False
    return True


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A record dict of an older schema version brought to ``SCHEMA_VERSION``, or
    SchemaVersionError saying which version is needed.

    v1 (no ``schema_version``) and v2 differ from v3 only in ``params.device``, then a free
    text label, now an ``hpc.schema.Device`` asked of the runtime. Points that did not run,
    dataset builds and records whose device already is a Device object convert as they
    are (the latter only for kinds that never had a text label); a measurement's text
    label cannot become a Device without guessing, so those records must be produced again.
    """
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"record schema v{version} is newer than this hpc-mri, which reads v{SCHEMA_VERSION}: "
            "install the hpc-mri version that wrote it")
    if version == SCHEMA_VERSION:
        return data
    from hpc.schema.inference import DEVICE_OBJECT_FROM_V2
    device = (data.get("params") or {}).get("device")
    kind = str(data.get("kind", ""))
    if (kind.startswith("compression") or kind in DEVICE_OBJECT_FROM_V2) and isinstance(device, dict) \
            and _is_device(device):
        # the compression stage and the inference sweep recorded a Device object already
        # under v2: nothing to convert
        return {**data, "schema_version": SCHEMA_VERSION}
    if data.get("status") == "ok" and data.get("kind") != "dataset":
        raise SchemaVersionError(
            f"{data.get('kind')} record {data.get('name')!r} has schema v{version}; this hpc-mri reads "
            f"v{SCHEMA_VERSION} (params.device is now a Device object recorded by the producer, "
            "which an old text label cannot be converted into): re-run the point, or build the "
            f"report with the hpc-mri version that wrote v{version}")
    return {**data, "schema_version": SCHEMA_VERSION}


def _jsonable(value: Any) -> Any:
    """NumPy scalars/arrays and non-finite floats made JSON-safe (NaN/inf -> None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_records(path: str | os.PathLike[str], records: Iterable[Record]) -> Path:
    """Write a whole JSONL file atomically: readers never see half a file."""
    text = "".join(r.to_json() + "\n" for r in records)
    return atomic_write_text(path, text)


def append_record(path: str | os.PathLike[str], record: Record) -> None:
    """Append one line (for long sweeps that should keep finished points on a crash).

    A single ``write`` of one line below PIPE_BUF is atomic with O_APPEND on POSIX.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(record.to_json() + "\n")


def read_records(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Record]:
    """Read records from JSONL files; a malformed line raises naming file and line."""
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not isinstance(data, dict):
                        raise ValueError("a record is a JSON object")
                    yield Record.from_dict(upgrade(data))
                except SchemaVersionError as exc:
                    raise SchemaVersionError(f"{p}:{lineno}: {exc}") from None
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{p}:{lineno}: not a valid record: {exc}") from exc
