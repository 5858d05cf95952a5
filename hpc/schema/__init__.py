"""The record schema: for each record kind, one model of its params and one of its metrics.

Every producer writes through ``hpc.records.new_record``, which validates against the models
registered here; the report reads exactly these fields. One module per stage declares the
kinds it produces in a ``KINDS`` dict; this module merges them. Bump ``SCHEMA_VERSION`` when
a field is renamed or removed (adding an optional field is compatible) and teach
``hpc.records.upgrade`` the step.

Version history: 1 = records without ``schema_version`` (before the schema); 2 = the
permissive skeleton; 3 = strict models, ``params.device`` an ``hpc.schema.Device``.
"""
from __future__ import annotations

import functools
from typing import Any

from pydantic import Field, create_model

from hpc.schema.base import Device, KindSchema, Strict
from hpc.schema import dataset as _dataset, kernel as _kernel, scaling as _scaling
from hpc.schema import training as _training
from hpc.schema import compression as _compression
from hpc.schema import inference as _inference
from hpc.schema import inference_opencl as _inference_opencl

SCHEMA_VERSION = 3

KINDS: dict[str, KindSchema] = {
    **_dataset.KINDS,
    **_kernel.KINDS,
    **_scaling.KINDS,
    **_training.KINDS,
    **_compression.KINDS,
    **_inference.KINDS,
    **_inference_opencl.KINDS,
}

# What the workflow's job wrapper (hpc.workflow point) records about a point that did not
# run, besides the kind's own params: these describe the *request*, e.g. device='cuda'.
_REQUEST_FIELDS: dict[str, Any] = {
    "command": (str | None, Field(default=None, description="the command that failed")),
    "experiment": (str | None, None), "run": (str | None, None), "backend": (str | None, None),
    "mode": (str | None, None), "ranks": (int | None, None),
    "device": (Device | str | None, Field(default=None, description="requested device (kind)")),
}


class RecordSchemaError(ValueError):
    """A record whose params or metrics do not match its kind's schema."""


@functools.lru_cache(maxsize=None)
def not_run_params(kind: str) -> type[Strict]:
    """The params model of a failed/skipped point: the kind's fields, all optional (the
    point may have failed before they were known), plus the job wrapper's request fields."""
    base = KINDS[kind].params
    fields: dict[str, Any] = {name: (info.annotation | None, None)  # type: ignore[operator]
                              for name, info in base.model_fields.items()}
    for name, spec in _REQUEST_FIELDS.items():
        if name not in fields or name == "device":
            fields[name] = spec
    return create_model(f"{base.__name__}NotRun", __base__=Strict, **fields)


def validate_fields(kind: str, params: dict[str, Any], metrics: dict[str, Any],
                    status: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate (and normalise) one record's params and metrics; raise naming the field.

    Failed and skipped records carry the params of the point that did not run (all
    optional) and metrics that are not checked: only ``ok`` records are measurements.
    """
    if kind not in KINDS:
        raise RecordSchemaError(f"record kind {kind!r}: expected one of {sorted(KINDS)}")
    schema = KINDS[kind]
    try:
        # exclude_unset: the record keeps exactly the fields its producer wrote (an optional
        # field it did not write stays absent rather than appearing as null)
        if status == "ok":
            p = schema.params.model_validate(params).model_dump(mode="json", exclude_unset=True)
            m = schema.metrics.model_validate(metrics).model_dump(mode="json", exclude_unset=True)
        else:
            p = not_run_params(kind).model_validate(params).model_dump(mode="json", exclude_unset=True)
            m = dict(metrics)
    except Exception as exc:  # pydantic.ValidationError: re-raise with the kind named
        raise RecordSchemaError(f"{kind} record does not match schema v{SCHEMA_VERSION}: {exc}") from exc
    return p, m


def json_schema() -> dict[str, Any]:
    """JSON Schema of every kind's params and metrics (for readers in other languages)."""
    return {kind: {"params": s.params.model_json_schema(), "metrics": s.metrics.model_json_schema()}
            for kind, s in KINDS.items()}


__all__ = ["Device", "KINDS", "KindSchema", "RecordSchemaError", "SCHEMA_VERSION", "Strict",
           "json_schema", "not_run_params", "validate_fields"]
