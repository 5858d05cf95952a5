"""Read an ``hpc-slices`` HDF5 file back: format check and a summary for ``hpc data info``
(slices and subjects per class and split, and any subject found in two splits)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpc.data.errors import NotADatasetError
from hpc.data.split import SPLIT_NAMES, is_leaky
from hpc.data.writer import FORMAT_NAME, READABLE_VERSIONS

REQUIRED = ("images", "labels", "class_names", "source_file", "slice_index", "volume_index", "split")


@dataclasses.dataclass
class DatasetSummary:
    path: Path
    images_shape: tuple[int, ...]
    images_dtype: str
    class_names: list[str]
    counts: dict[str, dict[str, int]]        # class -> split -> slices
    n_sources: int
    attrs: dict[str, Any]
    file_size_bytes: int
    subject_counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # class -> split -> subjects
    n_subjects: int = 0
    shared_subjects: list[str] = dataclasses.field(default_factory=list)  # subjects in > 1 split


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
    if int(f.attrs.get("format_version", -1)) not in READABLE_VERSIONS:
        version = f.attrs.get("format_version")
        f.close()
        raise NotADatasetError(f"{path}: format_version {version}, this code reads "
                               f"{list(READABLE_VERSIONS)}")
    return f


def read_subjects(f: h5py.File) -> np.ndarray:
    """Subject of every slice; version-1 files (no /subject) count each source file as one."""
    return np.array(_decode(f["subject"][()] if "subject" in f else f["source_file"][()]), dtype=object)


def subjects_in_several_splits(subjects: np.ndarray, split: np.ndarray) -> list[str]:
    """Subjects with slices in more than one split (empty for a subject split)."""
    seen: dict[str, set[int]] = {}
    for subject, code in zip(subjects.tolist(), split.tolist()):
        seen.setdefault(subject, set()).add(int(code))
    return sorted(s for s, codes in seen.items() if len(codes) > 1)


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def summarize(path: str | Path) -> DatasetSummary:
    path = Path(path)
    with open_dataset(path) as f:
        class_names = _decode(f["class_names"][()])
        labels = f["labels"][()]
        split = f["split"][()]
        subjects = read_subjects(f)
        counts = {name: {s: int(np.count_nonzero((labels == k) & (split == code)))
                         for code, s in enumerate(SPLIT_NAMES)}
                  for k, name in enumerate(class_names)}
        subject_counts = {name: {s: len(set(subjects[(labels == k) & (split == code)].tolist()))
                                 for code, s in enumerate(SPLIT_NAMES)}
                          for k, name in enumerate(class_names)}
        attrs = {}
        for key, value in f.attrs.items():
            if key in ("config", "versions", "input_checksums", "subjects"):
                value = json.loads(value)
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, np.generic):
                value = value.item()
            attrs[key] = value
        return DatasetSummary(path=path, images_shape=tuple(f["images"].shape),
                              images_dtype=str(f["images"].dtype), class_names=class_names,
                              counts=counts, n_sources=len(set(_decode(f["source_file"][()]))),
                              attrs=attrs, file_size_bytes=path.stat().st_size,
                              subject_counts=subject_counts, n_subjects=len(set(subjects.tolist())),
                              shared_subjects=subjects_in_several_splits(subjects, split))


def _count_table(title: str, names: list[str], counts: dict[str, dict[str, int]],
                 total_label: str = "total") -> list[str]:
    width = max([len(title)] + [len(c) for c in names] + [len(total_label)])
    lines = [f"{title:<{width}}  {'train':>6} {'val':>6} {'test':>6} {'total':>6}"]
    totals = {name: 0 for name in SPLIT_NAMES}
    for name in names:
        c = counts[name]
        for k in SPLIT_NAMES:
            totals[k] += c[k]
        lines.append(f"{name:<{width}}  {c['train']:>6} {c['val']:>6} {c['test']:>6} {sum(c.values()):>6}")
    lines.append(f"{total_label:<{width}}  {totals['train']:>6} {totals['val']:>6} {totals['test']:>6} "
                 f"{sum(totals.values()):>6}")
    return lines


def format_summary(s: DatasetSummary) -> str:
    """Human-readable text printed by ``hpc data info``."""
    cfg = s.attrs.get("config", {})
    split_cfg = cfg.get("split", {})
    method = split_cfg.get("method", "stratified")
    lines = [f"{s.path}  ({s.file_size_bytes / 1024:.1f} KiB, {s.attrs.get('format')} "
             f"v{s.attrs.get('format_version')})",
             f"images: {s.images_shape} {s.images_dtype}, slice axis {s.attrs.get('slice_axis')}, "
             f"{len(s.class_names)} classes, {s.n_subjects} subjects from {s.n_sources} source file(s)",
             "",
             "slices per class and split:"]
    lines += _count_table("class", s.class_names, s.counts)
    lines += ["", "subjects per class and split:"]
    lines += _count_table("class", s.class_names, s.subject_counts)
    if s.shared_subjects:
        shown = ", ".join(s.shared_subjects[:8]) + (" ..." if len(s.shared_subjects) > 8 else "")
        lines.append(f"subjects in more than one split: {len(s.shared_subjects)} ({shown})")
    else:
        lines.append("subjects in more than one split: none")
    leak = (" (per-slice split: slices of one subject in train and test, test accuracy is "
            "not on held-out subjects)") if is_leaky(method) else " (grouped by subject)"
    virtual = cfg.get("virtual_subjects") or {}
    lines += ["",
              f"created:       {s.attrs.get('created')}",
              f"input:         {cfg.get('input')}"
              + (f", {virtual.get('per_class')} virtual subjects per class (seed {virtual.get('seed')}, TorchIO)"
                 if cfg.get("input") == "sample" and virtual.get("per_class") else ""),
              f"processing:    resample={cfg.get('resample')} reference={cfg.get('reference')} "
              f"normalization={cfg.get('normalization')} image_size={cfg.get('image_size')}",
              f"split:         {method} seed={split_cfg.get('seed')}{leak}",
              "versions:      " + ", ".join(f"{k} {v}" for k, v in sorted(s.attrs.get("versions", {}).items())),
              "inputs (sha256):"]
    for name, digest in sorted(s.attrs.get("input_checksums", {}).items()):
        lines.append(f"  {digest[:16]}  {name}")
    return "\n".join(lines)
