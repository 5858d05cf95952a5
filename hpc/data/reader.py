"""Read an ``hpc-slices`` HDF5 file back: format check and a summary for ``hpc data info``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpc.data.errors import NotADatasetError
from hpc.data.split import SPLIT_NAMES
from hpc.data.writer import FORMAT_NAME, FORMAT_VERSION

REQUIRED = ("images", "labels", "class_names", "source_file", "slice_index", "volume_index", "split")


@dataclasses.dataclass
class DatasetSummary:
    path: Path
    images_shape: tuple[int, ...]
    images_dtype: str
    class_names: list[str]
    counts: dict[str, dict[str, int]]        # class -> split -> count
    n_sources: int
    attrs: dict[str, Any]
    file_size_bytes: int


def open_dataset(path: str | Path) -> h5py.File:
    """Open read-only and check it is an hpc-slices file of a version we understand."""
    path = Path(path)
    if not path.is_file():
        raise NotADatasetError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise NotADatasetError(f"{path}: not an HDF5 file ({exc})") from None
    fmt = f.attrs.get("format")
    missing = [name for name in REQUIRED if name not in f]
    if fmt != FORMAT_NAME or missing:
        f.close()
        raise NotADatasetError(f"{path}: not an {FORMAT_NAME} dataset (format={fmt!r}, "
                               f"missing {missing})")
    if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
        version = f.attrs.get("format_version")
        f.close()
        raise NotADatasetError(f"{path}: format_version {version}, this code reads {FORMAT_VERSION}")
    return f


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def summarize(path: str | Path) -> DatasetSummary:
    path = Path(path)
    with open_dataset(path) as f:
        class_names = _decode(f["class_names"][()])
        labels = f["labels"][()]
        split = f["split"][()]
        counts = {name: {s: int(np.count_nonzero((labels == k) & (split == code)))
                         for code, s in enumerate(SPLIT_NAMES)}
                  for k, name in enumerate(class_names)}
        attrs = {}
        for key, value in f.attrs.items():
            if key in ("config", "versions", "input_checksums"):
                value = json.loads(value)
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, np.generic):
                value = value.item()
            attrs[key] = value
        return DatasetSummary(path=path, images_shape=tuple(f["images"].shape),
                              images_dtype=str(f["images"].dtype), class_names=class_names,
                              counts=counts, n_sources=len(set(_decode(f["source_file"][()]))),
                              attrs=attrs, file_size_bytes=path.stat().st_size)


def format_summary(s: DatasetSummary) -> str:
    """Human-readable text printed by ``hpc data info``."""
    width = max([len("class")] + [len(c) for c in s.class_names] + [len("total")])
    lines = [f"{s.path}  ({s.file_size_bytes / 1024:.1f} KiB, {s.attrs.get('format')} "
             f"v{s.attrs.get('format_version')})",
             f"images: {s.images_shape} {s.images_dtype}, slice axis {s.attrs.get('slice_axis')}, "
             f"{len(s.class_names)} classes from {s.n_sources} source file(s)",
             "",
             f"{'class':<{width}}  {'train':>6} {'val':>6} {'test':>6} {'total':>6}"]
    totals = {name: 0 for name in SPLIT_NAMES}
    for name in s.class_names:
        c = s.counts[name]
        for k in SPLIT_NAMES:
            totals[k] += c[k]
        lines.append(f"{name:<{width}}  {c['train']:>6} {c['val']:>6} {c['test']:>6} {sum(c.values()):>6}")
    lines.append(f"{'total':<{width}}  {totals['train']:>6} {totals['val']:>6} {totals['test']:>6} "
                 f"{sum(totals.values()):>6}")
    cfg = s.attrs.get("config", {})
    split_cfg = cfg.get("split", {})
    lines += ["",
              f"created:       {s.attrs.get('created')}",
              f"input:         {cfg.get('input')}",
              f"processing:    resample={cfg.get('resample')} reference={cfg.get('reference')} "
              f"normalization={cfg.get('normalization')} image_size={cfg.get('image_size')}",
              f"split:         {split_cfg.get('method')} seed={split_cfg.get('seed')}",
              "versions:      " + ", ".join(f"{k} {v}" for k, v in sorted(s.attrs.get("versions", {}).items())),
              "inputs (sha256):"]
    for name, digest in sorted(s.attrs.get("input_checksums", {}).items()):
        lines.append(f"  {digest[:16]}  {name}")
    return "\n".join(lines)
