"""Optional PNG export of dataset slices, one folder per class (what the study used med2image for).

For looking at the data only: each image is min-max scaled to 8 bits on its own, so PNG
brightness says nothing about intensities across slices.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from hpc.atomic import atomic_path, ensure_writable_dir
from hpc.data.reader import _decode, open_dataset, read_subjects
from hpc.data.split import SPLIT_NAMES


def to_uint8(image: np.ndarray) -> np.ndarray:
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.uint8)
    return np.round((image - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _stem(source: str) -> str:
    name = Path(source).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def png_stem(subject: str, source: str) -> str:
    """File-name stem of a slice: its subject, plus the source file when a subject has several
    (sessions) or shares one (virtual subjects of one template)."""
    stem = _stem(source)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", subject)
    return name if _stem(subject) == stem else f"{name}_{stem}"


def export_png(dataset: str | Path, out_dir: str | Path, *, split: str | None = None,
               limit_per_class: int | None = None, scale: int = 1) -> int:
    """Write ``out_dir/<class>/<subject>[_<source>]_v<volume>_s<slice>.png``; return the number written."""
    out_dir = Path(out_dir)
    if split is not None and split not in SPLIT_NAMES:
        raise ValueError(f"split={split!r}: expected one of {SPLIT_NAMES}")
    if scale < 1:
        raise ValueError(f"scale={scale}: expected >= 1")
    ensure_writable_dir(out_dir)
    written = 0
    with open_dataset(dataset) as f:
        class_names = _decode(f["class_names"][()])
        labels, splits = f["labels"][()], f["split"][()]
        sources = _decode(f["source_file"][()])
        subjects = read_subjects(f)
        slice_idx, vol_idx = f["slice_index"][()], f["volume_index"][()]
        per_class = {name: 0 for name in class_names}
        for i in range(labels.size):
            if split is not None and splits[i] != SPLIT_NAMES.index(split):
                continue
            name = class_names[int(labels[i])]
            if limit_per_class is not None and per_class[name] >= limit_per_class:
                continue
            pixels = to_uint8(f["images"][i, 0])
            if scale > 1:
                pixels = np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))
            stem = png_stem(str(subjects[i]), sources[i])
            target = out_dir / name / f"{stem}_v{int(vol_idx[i]):03d}_s{int(slice_idx[i]):03d}.png"
            with atomic_path(target, suffix=".png") as tmp:
                Image.fromarray(pixels).save(tmp, format="PNG")
            per_class[name] += 1
            written += 1
    return written
