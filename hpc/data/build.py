"""Orchestrate one dataset build: discover -> load each volume -> (virtual subjects) ->
slices -> split -> HDF5.

Every slice carries its subject. For the sample set with ``virtual_subjects.per_class > 0``
each class's volume is the base of that many TorchIO-augmented virtual subjects
(``hpc.data.virtual``), made in worker processes; their drawn transform parameters go into
the file's ``subjects`` attribute. With the subject split, a class with fewer subjects than
the split needs is rejected (named, with its subjects) and the other classes convert.

A bad input never stops the build: each rejected file (or empty class directory) is
reported with the reason, the others convert, and ``BuildResult`` says N converted / M
rejected. The caller (``hpc data build``) exits non-zero only in strict mode or when
nothing converted (``NothingConvertedError``); in strict mode no file is written.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from hpc.atomic import OutputNotWritableError, ensure_writable_dir
from hpc.data.errors import DatasetError, NothingConvertedError, TooFewSubjectsError, VolumeError
from hpc.data.slices import axis_number, nonempty_slice_indices, prepare_slice, slice_image
from hpc.data.sources import SAMPLE_INPUT, Source, discover
from hpc.data.split import SPLIT_NAMES, make_split, min_subjects
from hpc.data.volumes import Volume, check_same_grid, load_volume, reference_grid
from hpc.data.writer import SliceTable, write_dataset
from hpc.provenance import versions_of

VERSION_PACKAGES = ("numpy", "scipy", "nibabel", "nilearn", "h5py", "pillow", "torch", "torchio",
                    "simpleitk", "hpc-mri")


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
    split_method: str = ""
    subjects_per_class: dict[str, int] = dataclasses.field(default_factory=dict)
    subjects_per_split: dict[str, int] = dataclasses.field(default_factory=dict)
    slices_per_split: dict[str, int] = dataclasses.field(default_factory=dict)
    virtual_subjects_per_class: int | None = None

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
    subject: list[str] = dataclasses.field(default_factory=list)

    def add(self, kept: list[tuple[int, int, np.ndarray]], label: str, source_name: str,
            subject: str) -> None:
        for t, k, image in kept:
            self.images.append(image)
            self.labels.append(label)
            self.source_file.append(source_name)
            self.slice_index.append(k)
            self.volume_index.append(t)
            self.subject.append(subject)

    def drop_labels(self, labels: set[str]) -> None:
        keep = [i for i, label in enumerate(self.labels) if label not in labels]
        for f in dataclasses.fields(self):
            values = getattr(self, f.name)
            setattr(self, f.name, [values[i] for i in keep])


def slices_3d(vol3: np.ndarray, cfg: dict[str, Any]) -> list[tuple[int, np.ndarray]]:
    """(slice index, prepared image) for every kept slice of one 3-D volume (pure)."""
    axis = cfg["slice_axis"]
    if cfg["drop_empty"]:
        keep = nonempty_slice_indices(vol3, axis, cfg["foreground_threshold"],
                                      cfg["min_foreground_fraction"])
    else:
        keep = list(range(vol3.shape[axis_number(axis)]))
    return [(k, prepare_slice(slice_image(vol3, axis, k), image_size=cfg["image_size"],
                              keep_aspect=cfg["keep_aspect"], normalization=cfg["normalization"],
                              percentiles=tuple(cfg["percentiles"])))
            for k in keep]


def volume_slices(volume: Volume, cfg: dict[str, Any]) -> list[tuple[int, int, np.ndarray]]:
    """(time point, slice index, prepared image) for every kept slice of one volume."""
    return [(t, k, image) for t_pos, t in enumerate(volume.volume_indices)
            for k, image in slices_3d(volume.data[..., t_pos], cfg)]


def _slice_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    keys = ("slice_axis", "drop_empty", "foreground_threshold", "min_foreground_fraction",
            "image_size", "keep_aspect", "normalization", "percentiles")
    return {k: cfg[k] for k in keys}


def virtual_config(cfg: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The virtual-subject settings when they apply (sample input, per_class > 0), else None."""
    from hpc.data.virtual import VirtualSubjectConfig

    if str(cfg["input"]) != SAMPLE_INPUT:
        return None
    vcfg = VirtualSubjectConfig.from_config(cfg.get("virtual_subjects"))
    return vcfg if vcfg.per_class > 0 else None


def _empty_filter_message(where: str, cfg: dict[str, Any]) -> str:
    return (f"{where}: no slice passes the empty-slice filter "
            f"(foreground_threshold={cfg['foreground_threshold']}, "
            f"min_foreground_fraction={cfg['min_foreground_fraction']})")


def _checksums(converted: list[Source]) -> dict[str, str]:
    """sha256 of every input file; a NIfTI-1 pair records its .hdr and its .img."""
    out = {}
    for s in converted:
        out[s.name] = sha256_file(s.path)
        if s.path.suffix.lower() == ".hdr":
            img = next((p for p in (s.path.with_suffix(".img"), s.path.with_suffix(".IMG"))
                        if p.is_file()), None)
            if img is not None:
                out[s.name[: -len(".hdr")] + img.suffix] = sha256_file(img)
    return out


def _too_few_subjects(rows: _Rows, split_cfg: dict[str, Any], where: str) -> dict[str, str]:
    """Classes that cannot be split by subject: {class: rejection message}."""
    if split_cfg.get("method", "subject") != "subject":
        return {}
    need = min_subjects(val=split_cfg["val"], test=split_cfg["test"])
    out = {}
    for label in dict.fromkeys(rows.labels):
        subjects = sorted({s for s, lab in zip(rows.subject, rows.labels) if lab == label})
        if len(subjects) < need:
            out[label] = str(TooFewSubjectsError(
                f"{where}: class '{label}' has {len(subjects)} subject(s) {subjects}; the subject "
                f"split (val={split_cfg['val']}, test={split_cfg['test']}) needs at least {need} "
                f"per class; class skipped (add subjects, or use split.method 'slice')"))
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
    vcfg = virtual_config(cfg)
    bases: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    base_source: dict[str, Source] = {}
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
            if vcfg is not None:
                bases[source.label] = (volume.data[..., 0], volume.grid.affine)
                base_source[source.label] = source
                kept = []
            else:
                kept = volume_slices(volume, cfg)
                if not kept:
                    raise VolumeError(_empty_filter_message(str(source.path), cfg))
        except VolumeError as exc:
            rejected.append((str(source.path), str(exc)))
            continue
        warnings.extend(volume.warnings)
        converted.append(source)
        rows.add(kept, source.label, source.name, source.subject)

    subjects_info: dict[str, dict[str, Any]] = {}
    if vcfg is not None and bases:
        from hpc.data.virtual import generate

        reduce = functools.partial(slices_3d, cfg=_slice_settings(cfg))
        for label, subject, kept3, prov in tqdm(
                generate(bases, vcfg, reduce), total=vcfg.per_class * len(bases),
                desc="virtual subjects", unit="subject", disable=not progress, file=sys.stderr):
            if not kept3:
                rejected.append((subject, _empty_filter_message(f"virtual subject {subject}", cfg)))
                continue
            rows.add([(0, k, image) for k, image in kept3], label, base_source[label].name, subject)
            subjects_info[subject] = {"class": label, "files": [base_source[label].name],
                                      "virtual": prov}
    if vcfg is None:
        for src in converted:
            info = subjects_info.setdefault(src.subject, {"class": src.label, "files": []})
            info["files"].append(src.name)

    few = _too_few_subjects(rows, cfg["split"], str(cfg["input"]))
    rejected.extend((f"{cfg['input']}: class {label}", message) for label, message in few.items())
    rows.drop_labels(set(few))
    kept_subjects = set(rows.subject)
    subjects_info = {k: v for k, v in subjects_info.items() if k in kept_subjects}

    for where, message in rejected:
        log(f"rejected: {message}")
    for message in warnings:
        log(f"warning: {message}")
    if not converted or not rows.labels:
        raise NothingConvertedError(f"{cfg['input']}: nothing converted, all {len(rejected)} "
                                    f"input(s) rejected; no dataset written")
    class_names = list(dict.fromkeys(rows.labels))
    if strict and rejected:
        return BuildResult(None, [s.name for s in converted], rejected, warnings, len(rows.images),
                           {}, time.perf_counter() - t0, 0)

    labels = np.array([class_names.index(label) for label in rows.labels], dtype=np.int64)
    split = make_split(labels, cfg["split"], rows.subject)
    table = SliceTable(images=np.stack(rows.images)[:, np.newaxis].astype(np.float32),
                       labels=labels, class_names=class_names, source_file=rows.source_file,
                       slice_index=np.array(rows.slice_index, dtype=np.int32),
                       volume_index=np.array(rows.volume_index, dtype=np.int32),
                       split=split, subject=rows.subject)
    write_dataset(output, table, config=cfg, versions=versions(), input_checksums=_checksums(converted),
                  slice_axis=cfg["slice_axis"], compression_level=cfg["compression_level"],
                  subjects=subjects_info)
    counts = {name: int(np.count_nonzero(labels == k)) for k, name in enumerate(class_names)}
    subj = np.asarray(rows.subject, dtype=object)
    return BuildResult(
        output, [s.name for s in converted], rejected, warnings, len(labels), counts,
        time.perf_counter() - t0, output.stat().st_size,
        split_method=cfg["split"].get("method", "subject"),
        subjects_per_class={name: len(set(subj[labels == k])) for k, name in enumerate(class_names)},
        subjects_per_split={name: len(set(subj[split == code])) for code, name in enumerate(SPLIT_NAMES)},
        slices_per_split={name: int(np.count_nonzero(split == code)) for code, name in enumerate(SPLIT_NAMES)},
        virtual_subjects_per_class=vcfg.per_class if vcfg is not None else None)


__all__ = ["BuildResult", "build_dataset", "check_output_path", "DatasetError"]
