"""Small synthetic datasets in the hpc-slices HDF5 format, for tests and smoke runs.

Real h5py files with exactly the layout ``hpc.data`` writes (see BRIEF), with images that a
network can learn but not trivially by mean intensity: class 0 a blob, class 1 horizontal
stripes, class 2 a ring, class 3 a cross..., each at a random position with noise, then
z-scored per slice like the real dataset.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np


def _pattern(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(size * 0.35, size * 0.65, 2)
    r = np.hypot(yy - cy, xx - cx)
    kind = cls % 4
    if kind == 0:
        img = np.exp(-(r / (size * 0.18)) ** 2)
    elif kind == 1:
        img = 0.5 + 0.5 * np.sin(2 * np.pi * yy / rng.uniform(5, 7) + rng.uniform(0, 6.3))
        img *= np.exp(-(r / (size * 0.4)) ** 2)
    elif kind == 2:
        img = np.exp(-((r - size * 0.25) / (size * 0.06)) ** 2)
    else:
        img = (np.exp(-((yy - cy) / (size * 0.06)) ** 2) + np.exp(-((xx - cx) / (size * 0.06)) ** 2))
        img *= np.exp(-(r / (size * 0.4)) ** 2)
    return img.astype(np.float32)


def write_synthetic_dataset(path: str | os.PathLike[str], n_per_class: int = 40, size: int = 32,
                            classes: int = 3, split_fractions: tuple[float, float] = (0.7, 0.1),
                            noise: float = 0.3, seed: int = 0,
                            empty_train_class: int | None = None) -> Path:
    """Write an hpc-slices v1 file; ``empty_train_class`` moves that class out of the
    training split (to exercise the "class with no training samples" error)."""
    rng = np.random.default_rng(seed)
    n = n_per_class * classes
    images = np.empty((n, 1, size, size), dtype=np.float32)
    labels = np.repeat(np.arange(classes), n_per_class).astype(np.int64)
    split = np.empty(n, dtype=np.uint8)
    n_train = int(round(n_per_class * split_fractions[0]))
    n_val = int(round(n_per_class * split_fractions[1]))
    for c in range(classes):
        order = rng.permutation(n_per_class)
        part = np.full(n_per_class, 2, dtype=np.uint8)
        part[order[:n_train]] = 0
        part[order[n_train:n_train + n_val]] = 1
        if c == empty_train_class:
            part[part == 0] = 2
        split[c * n_per_class:(c + 1) * n_per_class] = part
    for i, c in enumerate(labels):
        img = _pattern(int(c), size, rng) + noise * rng.standard_normal((size, size)).astype(np.float32)
        img = (img - img.mean()) / (img.std() + 1e-6)
        images[i, 0] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    str_dt = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(min(n, 64), 1, size, size), compression="gzip")
        f.create_dataset("labels", data=labels)
        f.create_dataset("class_names", data=np.array([f"class{c}" for c in range(classes)], dtype=object),
                         dtype=str_dt)
        f.create_dataset("source_file", data=np.array([f"synthetic_{c}.nii.gz" for c in labels], dtype=object),
                         dtype=str_dt)
        f.create_dataset("slice_index", data=np.arange(n, dtype=np.int32))
        f.create_dataset("volume_index", data=np.zeros(n, dtype=np.int32))
        d = f.create_dataset("split", data=split)
        d.attrs["names"] = ["train", "val", "test"]
        f.attrs["format"] = "hpc-slices"
        f.attrs["format_version"] = 1
        f.attrs["config"] = json.dumps({"synthetic": True, "seed": seed, "size": size,
                                        "split": {"method": "slice"}})  # per-image random split
        f.attrs["versions"] = json.dumps({"h5py": h5py.__version__})
        f.attrs["input_checksums"] = json.dumps({})
        f.attrs["created"] = "1970-01-01T00:00:00+00:00"
        f.attrs["slice_axis"] = "axial"
        f.attrs["image_size"] = size
    return path
