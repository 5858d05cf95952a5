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
    split: str | None = Field(default=None, description="split method: subject (held-out subjects), "
                              "slice or holdout_first (per-slice, leaky)")
    virtual_subjects_per_class: int | None = Field(
        default=None, description="TorchIO virtual subjects per class (sample input), else None")


class DatasetMetrics(Strict):
    elapsed_s: float
    file_size_bytes: int
    n_slices: int
    n_converted: int = Field(description="volumes converted")
    n_rejected: int = Field(description="volumes rejected (reasons in the record's error)")
    n_subjects: int | None = Field(default=None, description="distinct subjects in the dataset")
    subjects_per_class: dict[str, int] | None = None
    subjects_per_split: dict[str, int] | None = Field(default=None, description="train/val/test -> subjects")
    slices_per_split: dict[str, int] | None = Field(default=None, description="train/val/test -> slices")


KINDS = {"dataset": KindSchema(params=DatasetParams, metrics=DatasetMetrics,
                               description="one dataset build")}
