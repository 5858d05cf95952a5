"""The record schema: for each record kind, one model of its params and one of its metrics.

Every producer writes through ``hpc.records.new_record``, which validates against the models
registered here; the report reads exactly these fields. One module per stage declares the
kinds it produces in a ``KINDS`` dict; this module merges them. Bump ``SCHEMA_VERSION`` when
a field is renamed or removed (adding an optional field is compatible).
"""
from __future__ import annotations

from typing import Any

from hpc.schema.base import Device, KindSchema, Strict

SCHEMA_VERSION = 2

from hpc.schema import legacy as _legacy  # noqa: E402  (placeholder kinds, see module)
from hpc.schema import inference as _inference  # noqa: E402

KINDS: dict[str, KindSchema] = {
    **_legacy.KINDS,
    **_inference.KINDS,
}


class RecordSchemaError(ValueError):
    """A record whose params or metrics do not match its kind's schema."""


def validate_fields(kind: str, params: dict[str, Any], metrics: dict[str, Any],
                    status: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate (and normalise) one record's params and metrics; raise naming the field.

    Failed and skipped records carry the params of the point that did not run and no
    metrics, so only ``ok`` records are checked against the metrics model.
    """
    if kind not in KINDS:
        raise RecordSchemaError(f"record kind {kind!r}: expected one of {sorted(KINDS)}")
    schema = KINDS[kind]
    try:
        p = schema.params.model_validate(params).model_dump(mode="json", exclude_none=False)
        m = (schema.metrics.model_validate(metrics).model_dump(mode="json") if status == "ok"
             else dict(metrics))
    except Exception as exc:  # pydantic.ValidationError: re-raise with the kind named
        raise RecordSchemaError(f"{kind} record does not match schema v{SCHEMA_VERSION}: {exc}") from exc
    return p, m


__all__ = ["Device", "KINDS", "KindSchema", "RecordSchemaError", "SCHEMA_VERSION", "Strict",
           "validate_fields"]
