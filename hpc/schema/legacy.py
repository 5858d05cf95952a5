"""Placeholder models for the kinds that existed before the schema (permissive).

To be replaced kind by kind with strict models in their stage modules (dataset.py,
kernel.py, scaling.py, training.py); delete this module when empty.
"""
from __future__ import annotations

from pydantic import ConfigDict

from hpc.schema.base import KindSchema, Strict


class _Any(Strict):
    model_config = ConfigDict(extra="allow", frozen=True)


KINDS = {k: KindSchema(params=_Any, metrics=_Any, description="not yet typed")
         for k in ("dataset", "kernel", "scaling", "training", "training_epoch", "ddp")}
