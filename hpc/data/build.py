"""Orchestrate one dataset build: discover -> load each volume -> slices -> split -> HDF5.

A bad input never stops the build: each rejected file (or empty class directory) is
reported with the reason, the others convert, and ``BuildResult`` says N converted / M
rejected. The caller (``hpc data build``) exits non-zero only in strict mode or when
nothing converted (``NothingConvertedError``); in strict mode no file is written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from hpc.atomic import OutputNotWritableError, ensure_writable_dir
from hpc.data.errors import DatasetError, NothingConvertedError, VolumeError
from hpc.data.slices import axis_number, nonempty_slice_indices, prepare_slice, slice_image
from hpc.data.sources import Source, discover
from hpc.data.split import make_split
from hpc.data.volumes import Volume, check_same_grid, load_volume, reference_grid
from hpc.data.writer import SliceTable, write_dataset
from hpc.provenance import versions_of

VERSION_PACKAGES = ("numpy", "scipy", "nibabel", "nilearn", "h5py", "pillow", "hpc-mri")


@dataclasses.dataclass
class BuildResult:
    output: Path | None
    converted: list[str]
    rejected: list[tuple[str, str]]     # (file or directory, message)
    warnings: list[str]
    n_slices: int
    class_counts: dict[str, int]
    elapsed_s: float
    file_size_bytes: int

    @property
    def ok(self) -> bool:
        return not self.rejected


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    return {"python": sys.version.split()[0], **versions_of(VERSION_PACKAGES)}


def check_output_path(output: Path) -> None:
    """Fail before any work if the dataset could not be written."""
    if output.is_dir():
        raise OutputNotWritableError(f"{output}: output path is a directory, expected a file name")
    ensure_writable_dir(output.parent)
    if output.exists() and not output.is_file():
        raise OutputNotWritableError(f"{output}: exists and is not a regular file")


@dataclasses.dataclass
class _Rows:
    images: list[np.ndarray] = dataclasses.field(default_factory=list)
    labels: list[str] = dataclasses.field(default_factory=list)
    source_file: list[str] = dataclasses.field(default_factory=list)
    slice_index: list[int] = dataclasses.field(default_factory=list)
    volume_index: list[int] = dataclasses.field(default_factory=list)


def volume_slices(volume: Volume, cfg: dict[str, Any]) -> list[tuple[int, int, np.ndarray]]:
    """(time point, slice index, prepared image) for every kept slice of one volume."""
    out = []
    axis = cfg["slice_axis"]
    n_slices = volume.data.shape[axis_number(axis)]
    for t_pos, t in enumerate(volume.volume_indices):
        vol3 = volume.data[..., t_pos]
        if cfg["drop_empty"]:
            keep = nonempty_slice_indices(vol3, axis, cfg["foreground_threshold"],
                                          cfg["min_foreground_fraction"])
        else:
            keep = list(range(n_slices))
        for k in keep:
            image = prepare_slice(slice_image(vol3, axis, k), image_size=cfg["image_size"],
                                  keep_aspect=cfg["keep_aspect"], normalization=cfg["normalization"],
                                  percentiles=tuple(cfg["percentiles"]))
            out.append((t, k, image))
    return out


def build_dataset(cfg: dict[str, Any], output: str | Path, *, strict: bool = False,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> BuildResult:
    """Build the dataset described by the validated ``dataset`` config section.

    Raises ``OutputNotWritableError`` (before reading inputs), ``InputError``/``EmptyInputError``
    for unusable inputs, ``NothingConvertedError`` when every input was rejected.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    t0 = time.perf_counter()
    output = Path(output)
    check_output_path(output)
    sources, early_rejects = discover(cfg["input"])
    rejected: list[tuple[str, str]] = [(where, str(err)) for where, err in early_rejects]
    warnings: list[str] = []
    grid = reference_grid(cfg["reference"]) if cfg["resample"] else None

    rows = _Rows()
    converted: list[Source] = []
    first_volume: Volume | None = None
    for source in tqdm(sources, desc="volumes", unit="file", disable=not progress, file=sys.stderr):
        try:
            volume = load_volume(source.path, grid=grid, volume_index=cfg["volume_index"],
                                 nonfinite=cfg["nonfinite"],
                                 interpolation_order=cfg["interpolation_order"])
            if grid is None:
                if first_volume is None:
                    first_volume = volume
                else:
                    check_same_grid(volume, first_volume)
            kept = volume_slices(volume, cfg)
            if not kept:
                raise VolumeError(f"{source.path}: no slice passes the empty-slice filter "
                                  f"(foreground_threshold={cfg['foreground_threshold']}, "
                                  f"min_foreground_fraction={cfg['min_foreground_fraction']})")
        except VolumeError as exc:
            rejected.append((str(source.path), str(exc)))
            continue
        warnings.extend(volume.warnings)
        converted.append(source)
        for t, k, image in kept:
            rows.images.append(image)
            rows.labels.append(source.label)
            rows.source_file.append(source.name)
            rows.slice_index.append(k)
            rows.volume_index.append(t)

    for where, message in rejected:
        log(f"rejected: {message}")
    for message in warnings:
        log(f"warning: {message}")
    if not converted:
        raise NothingConvertedError(f"{cfg['input']}: nothing converted, all {len(rejected)} "
                                    f"input(s) rejected; no dataset written")
    class_names = list(dict.fromkeys(rows.labels))
    if strict and rejected:
        return BuildResult(None, [s.name for s in converted], rejected, warnings, len(rows.images),
                           {}, time.perf_counter() - t0, 0)

    labels = np.array([class_names.index(label) for label in rows.labels], dtype=np.int64)
    table = SliceTable(images=np.stack(rows.images)[:, np.newaxis].astype(np.float32),
                       labels=labels, class_names=class_names, source_file=rows.source_file,
                       slice_index=np.array(rows.slice_index, dtype=np.int32),
                       volume_index=np.array(rows.volume_index, dtype=np.int32),
                       split=make_split(labels, cfg["split"]))
    checksums = {s.name: sha256_file(s.path) for s in converted}
    write_dataset(output, table, config=cfg, versions=versions(), input_checksums=checksums,
                  slice_axis=cfg["slice_axis"], compression_level=cfg["compression_level"])
    counts = {name: int(np.count_nonzero(labels == k)) for k, name in enumerate(class_names)}
    return BuildResult(output, [s.name for s in converted], rejected, warnings, len(labels), counts,
                       time.perf_counter() - t0, output.stat().st_size)


__all__ = ["BuildResult", "build_dataset", "check_output_path", "DatasetError"]
