"""Write the slice dataset as one HDF5 file in the ``hpc-slices`` format (see BRIEF/README).

The file is written to a temporary name in the target directory and renamed on success
(``hpc.atomic.atomic_path``), so readers and Snakemake never see a half-written dataset.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpc.atomic import atomic_path
from hpc.data.split import SPLIT_NAMES

FORMAT_NAME = "hpc-slices"
FORMAT_VERSION = 2            # 2: adds /subject and the ``subjects`` attribute
READABLE_VERSIONS = (1, 2)    # version 1 files: the subject of a slice is its source file


@dataclasses.dataclass
class SliceTable:
    """Everything that goes into the file, one row per slice (N rows)."""

    images: np.ndarray          # (N, 1, H, W) float32
    labels: np.ndarray          # (N,) int64
    class_names: list[str]      # (K,)
    source_file: list[str]      # (N,)
    slice_index: np.ndarray     # (N,) int32
    volume_index: np.ndarray    # (N,) int32
    split: np.ndarray           # (N,) uint8
    subject: list[str] | None = None  # (N,); None: one subject per source file

    def __post_init__(self) -> None:
        if self.subject is None:
            self.subject = list(self.source_file)
        n = self.images.shape[0]
        if self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images must be (N, 1, H, W), got {self.images.shape}")
        for name in ("labels", "slice_index", "volume_index", "split"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, images has {n}")
        for name in ("source_file", "subject"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, images has {n}")


def write_dataset(path: str | os.PathLike[str], table: SliceTable, *, config: dict[str, Any],
                  versions: dict[str, str], input_checksums: dict[str, str], slice_axis: str,
                  compression_level: int = 4, subjects: dict[str, Any] | None = None) -> Path:
    """Write ``table`` atomically to ``path`` and return the final path.

    ``subjects`` ({subject: {"class", "files", and for virtual subjects "virtual": seed and
    drawn transform parameters}}) goes to the JSON attribute ``subjects``.
    """
    path = Path(path)
    n, _, h, w = table.images.shape
    str_dt = h5py.string_dtype(encoding="utf-8")
    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=table.images.astype(np.float32, copy=False),
                             chunks=(max(1, min(n, 256)), 1, h, w), compression="gzip",
                             compression_opts=compression_level, shuffle=True)
            f.create_dataset("labels", data=np.asarray(table.labels, dtype=np.int64))
            f.create_dataset("class_names", data=np.array(table.class_names, dtype=object), dtype=str_dt)
            f.create_dataset("source_file", data=np.array(table.source_file, dtype=object), dtype=str_dt,
                             compression="gzip", compression_opts=compression_level)
            f.create_dataset("subject", data=np.array(table.subject, dtype=object), dtype=str_dt,
                             compression="gzip", compression_opts=compression_level)
            f.create_dataset("slice_index", data=np.asarray(table.slice_index, dtype=np.int32))
            f.create_dataset("volume_index", data=np.asarray(table.volume_index, dtype=np.int32))
            split = f.create_dataset("split", data=np.asarray(table.split, dtype=np.uint8))
            split.attrs["names"] = list(SPLIT_NAMES)
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["config"] = json.dumps(config, sort_keys=True)
            f.attrs["versions"] = json.dumps(versions, sort_keys=True)
            f.attrs["input_checksums"] = json.dumps(input_checksums, sort_keys=True)
            f.attrs["subjects"] = json.dumps(subjects or {}, sort_keys=True)
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f.attrs["slice_axis"] = slice_axis
            f.attrs["image_size"] = np.array([h, w], dtype=np.int64)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; a dataset is meant to be shared
    return path


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
