"""The HDF5 slice dataset (format ``hpc-slices`` v1, written by ``hpc.data``) as a torch Dataset.

The file is opened lazily, in the process that first reads an item, and re-opened after a
``fork``: an h5py file handle must never cross into DataLoader worker processes (HDF5 is not
fork-safe), so ``__init__`` only validates the file and reads the small metadata arrays,
then closes it. With ``preload=True`` the first ``__getitem__`` in each process reads the
whole split with one sorted fancy-indexed read (one decompression per chunk instead of one
per item), which is what makes CPU training on small datasets fast.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
REQUIRED_DATASETS: tuple[str, ...] = ("images", "labels", "class_names", "split")


class DatasetError(ValueError):
    """The dataset file is missing, not HDF5, or not in the expected format; names the file."""


def _decode(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def validate_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check ``path`` is an hpc-slices HDF5 file; return its metadata (no image data).

    Raises DatasetError naming the file and the problem: missing file, not HDF5, missing
    datasets, inconsistent lengths, label out of range, unknown split codes.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: dataset file not found (build it with 'python -m hpc data build')")
    if not path.is_file():
        raise DatasetError(f"{path}: not a file")
    if not h5py.is_hdf5(path):
        raise DatasetError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in REQUIRED_DATASETS if name not in f]
            if missing:
                raise DatasetError(f"{path}: missing HDF5 dataset(s) {missing}; expected "
                                   f"{list(REQUIRED_DATASETS)} (format hpc-slices)")
            images = f["images"]
            if images.ndim != 4:
                raise DatasetError(f"{path}: /images has shape {images.shape}; expected (N, C, H, W)")
            n = images.shape[0]
            labels = np.asarray(f["labels"][...], dtype=np.int64)
            split = np.asarray(f["split"][...], dtype=np.int64)
            class_names = _decode(f["class_names"][...])
            # who each slice comes from: /subject (format v2), else its source file (v1)
            subject_ds = "subject" if "subject" in f else ("source_file" if "source_file" in f else None)
            subjects = (np.array(_decode(f[subject_ds][...]), dtype=object) if subject_ds
                        else np.array([f"slice-{i}" for i in range(f["labels"].shape[0])], dtype=object))
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            shape = tuple(int(d) for d in images.shape[1:])
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read HDF5 file ({exc})") from None
    if labels.shape != (n,) or split.shape != (n,):
        raise DatasetError(f"{path}: /labels {labels.shape} and /split {split.shape} must both "
                           f"have length N={n} of /images")
    if n == 0:
        raise DatasetError(f"{path}: /images is empty")
    k = len(class_names)
    if k < 2:
        raise DatasetError(f"{path}: /class_names has {k} class(es); need at least 2")
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.size:
        raise DatasetError(f"{path}: /labels has value {int(bad[0])} outside 0..{k - 1}")
    unknown = sorted(set(np.unique(split).tolist()) - set(SPLITS.values()))
    if unknown:
        raise DatasetError(f"{path}: /split has unknown code(s) {unknown}; expected 0 train, 1 val, 2 test")
    if subjects.shape != (n,):
        raise DatasetError(f"{path}: /{subject_ds} has {subjects.shape[0]} rows, /images has N={n}")
    return {"path": str(path), "n": n, "image_shape": shape, "labels": labels, "split": split,
            "class_names": class_names, "attrs": attrs, "subjects": subjects,
            "split_method": split_method(attrs)}


def split_method(attrs: dict[str, Any]) -> str:
    """Name of the split the dataset was built with (``dataset.split.method``), from the
    file's ``config`` attribute; ``unknown`` for files written by other tools."""
    import json

    try:
        cfg = json.loads(attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return "unknown"
    method = (cfg.get("split") or {}).get("method")
    # files written before the subject split existed used the per-slice split by default
    return str(method) if method else ("stratified" if cfg else "unknown")


def check_training_classes(meta: dict[str, Any]) -> None:
    """Every class must have training samples, else the classifier can never learn it."""
    train_labels = meta["labels"][meta["split"] == SPLITS["train"]]
    if train_labels.size == 0:
        raise DatasetError(f"{meta['path']}: the training split is empty")
    counts = np.bincount(train_labels, minlength=len(meta["class_names"]))
    empty = [meta["class_names"][i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DatasetError(f"{meta['path']}: class(es) {empty} have no training samples")


class SliceDataset(Dataset):
    """One split of an hpc-slices file; items are ``(image float32 (C,H,W), label int64)``."""

    def __init__(self, path: str | os.PathLike[str], split: str = "train", preload: bool = True,
                 meta: dict[str, Any] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: expected one of {list(SPLITS)}")
        self.meta = meta if meta is not None else validate_file(path)
        self.path = Path(path)
        self.split = split
        self.preload = preload
        self.indices = np.flatnonzero(self.meta["split"] == SPLITS[split])
        self.labels = self.meta["labels"][self.indices]
        self.subjects: np.ndarray = self.meta["subjects"][self.indices]
        self.class_names: list[str] = self.meta["class_names"]
        self.image_shape: tuple[int, ...] = self.meta["image_shape"]
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._cache: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getstate__(self) -> dict[str, Any]:
        # never pickle an open handle or a cache into a worker (spawn start method)
        state = self.__dict__.copy()
        state.update(_file=None, _pid=None, _cache=None)
        return state

    def _images(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file["images"]

    def load_all(self) -> np.ndarray:
        """All images of this split as one (n, C, H, W) float32 array (one HDF5 read)."""
        if self._cache is None or self._pid != os.getpid():
            images = self._images()
            self._cache = np.asarray(images[self.indices] if self.indices.size else
                                     np.empty((0, *self.image_shape)), dtype=np.float32)
        return self._cache

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.preload:
            img = self.load_all()[i]
        else:
            img = np.asarray(self._images()[int(self.indices[i])], dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(img)), torch.tensor(int(self.labels[i]))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._pid, self._cache = None, None, None


def channel_stats(dataset: SliceDataset, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over a split (the training split, so val/test
    statistics never leak into normalisation). Float64 accumulation, streamed in chunks."""
    n = len(dataset)
    c = dataset.image_shape[0]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    count = 0
    with h5py.File(dataset.path, "r") as f:
        images = f["images"]
        for start in range(0, n, chunk):
            idx = dataset.indices[start:start + chunk]
            x = np.asarray(images[idx], dtype=np.float64)
            total += x.sum(axis=(0, 2, 3))
            total_sq += (x * x).sum(axis=(0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std == 0] = 1.0
    return mean.tolist(), std.tolist()
