"""The ``dataset`` record: one build of the HDF5 slice dataset (``hpc data build``)."""
from __future__ import annotations

from pydantic import Field

from hpc.schema.base import KindSchema, Strict


class DatasetParams(Strict):
    input: str = Field(description="NIfTI directory, manifest CSV or 'sample'")
    output: str = Field(description="the HDF5 file written")
    slice_axis: str
    image_size: int | None = Field(description="slice side in pixels; None keeps the grid size")
    normalization: str
    resample: bool
    classes: list[str]


class DatasetMetrics(Strict):
    elapsed_s: float
    file_size_bytes: int
    n_slices: int
    n_converted: int = Field(description="volumes converted")
    n_rejected: int = Field(description="volumes rejected (reasons in the record's error)")


KINDS = {"dataset": KindSchema(params=DatasetParams, metrics=DatasetMetrics,
                               description="one dataset build")}
