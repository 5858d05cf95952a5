"""Find the input volumes: a class-per-sub-directory tree, a CSV manifest, or the sample set.

Every source carries a *subject* (the person, or virtual person, the volume comes from), so
the split can keep all of a subject's slices on one side. In a class directory each file is
its own subject; a manifest may name subjects in an optional ``subject`` column (several
files per subject - sessions, runs - stay together); the sample set's subjects are virtual
(``hpc.data.virtual``).

Discovery never opens a volume; it only decides which file belongs to which class, in a
deterministic order (classes in order of first appearance / sorted names, files sorted), so
two builds of the same input produce byte-identical label assignments and splits.
Problems found here (an empty class directory, a file that is not named like NIfTI, a
manifest row pointing nowhere) are returned as rejections, not raised, so the other inputs
still convert. Only an input with no NIfTI file at all raises.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
from pathlib import Path

from hpc.data.errors import (EmptyClassError, EmptyInputError, InputError, ManifestError,
                             NotNiftiError, SubjectConflictError, VolumeError)

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".hdr")
PAIR_DATA_SUFFIX = ".img"          # data half of a NIfTI-1 pair; the .hdr is the source
SAMPLE_INPUT = "sample"
MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "subject")


@dataclasses.dataclass(frozen=True)
class Source:
    """One input volume and its class.

    path:  where to read it.
    label: class name.
    name:  how it is recorded in the HDF5 file (``source_file``, ``input_checksums``):
           relative to the input directory/manifest, or ``<package>/<path>`` for the sample set.
    subject: who the volume belongs to (``subject`` in the HDF5 file); defaults to ``name``
           without its NIfTI suffix, i.e. one subject per file.
    """

    path: Path
    label: str
    name: str
    subject: str = ""

    def __post_init__(self) -> None:
        if not self.subject:
            object.__setattr__(self, "subject", strip_nifti_suffix(self.name))


@dataclasses.dataclass(frozen=True)
class SampleVolume:
    """A real NIfTI volume shipped inside an installed wheel (no network needed)."""

    package: str
    relative_path: str
    label: str
    origin: str


# The default dataset: four classes, one whole-brain volume each, all in MNI space.
SAMPLE_VOLUMES: tuple[SampleVolume, ...] = (
    SampleVolume("nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                 "anatomical",
                 "ICBM 2009a nonlinear symmetric MNI152 T1 template, 1 mm, rescaled to uint8 "
                 "(nilearn.datasets.load_mni152_template)"),
    SampleVolume("nilearn", "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                 "grey_matter",
                 "ICBM 2009a MNI152 grey-matter probability template, 1 mm "
                 "(nilearn.datasets.load_mni152_gm_template)"),
    SampleVolume("nilearn", "datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
                 "white_matter",
                 "ICBM 2009a MNI152 white-matter probability template, 1 mm "
                 "(nilearn.datasets.load_mni152_wm_template)"),
    SampleVolume("nilearn", "datasets/data/image_10426.nii.gz",
                 "functional",
                 "NeuroVault image 10426: 'left vs right button press' motor-task t-map, 3 mm, "
                 "MNI space (nilearn.datasets.load_sample_motor_activation_image)"),
)


def package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it (nilearn imports slowly)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{package}: package not installed; the sample set needs it")
    return Path(next(iter(spec.submodule_search_locations)))


def sample_sources() -> list[Source]:
    """The default sample set, resolved to files inside the installed wheels."""
    sources = []
    for vol in SAMPLE_VOLUMES:
        path = package_dir(vol.package) / vol.relative_path
        if not path.is_file():
            raise InputError(f"{path}: sample volume missing from the installed {vol.package} "
                             f"package (reinstall it)")
        sources.append(Source(path=path, label=vol.label, name=f"{vol.package}/{vol.relative_path}",
                              subject=vol.label))
    return sources


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    """``anat/sub01.nii.gz`` -> ``anat/sub01`` (the default subject of a file)."""
    for suffix in sorted(NIFTI_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_pair_data(path: Path, siblings: set[Path] | None = None) -> bool:
    """An ``.img`` whose ``.hdr`` sits next to it: read through the header, not a source."""
    if path.suffix.lower() != PAIR_DATA_SUFFIX:
        return False
    header = path.with_suffix(".hdr")
    return header in siblings if siblings is not None else header.is_file()


def discover_directory(root: Path) -> tuple[list[Source], list[tuple[str, VolumeError | InputError]]]:
    """Classes are the sub-directories of ``root``; every file below one belongs to that class.

    Hidden files are ignored. Each file is one subject (``<class>/<file without suffix>``).
    NIfTI-1 pairs count once, through their ``.hdr``. Files that are not named
    ``*.nii``/``*.nii.gz``/``*.hdr`` (or the ``.img`` of a pair), and class directories
    without any NIfTI file, are returned as rejections.
    """
    if not root.is_dir():
        raise InputError(f"{root}: input directory does not exist")
    sources: list[Source] = []
    rejected: list[tuple[str, VolumeError | InputError]] = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for stray in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        rejected.append((str(stray), InputError(
            f"{stray}: file directly in the input directory; put it in a class sub-directory")))
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(class_dir).parts))
        present = set(files)
        niftis = [p for p in files if is_nifti_name(p)]
        for other in files:
            if not is_nifti_name(other) and not is_pair_data(other, present):
                rejected.append((str(other), NotNiftiError(f"{other}: {_not_nifti_reason(other)}")))
        if not niftis:
            rejected.append((str(class_dir), EmptyClassError(
                f"{class_dir}: class directory '{class_dir.name}' contains no NIfTI files "
                f"(.nii, .nii.gz, .hdr/.img); class skipped")))
        for p in niftis:
            sources.append(Source(path=p, label=class_dir.name, name=str(p.relative_to(root))))
    if not sources:
        raise EmptyInputError(f"{root}: no NIfTI files (.nii, .nii.gz) in any class sub-directory "
                              f"(expected {root}/<class>/*.nii.gz)")
    return sources, rejected


def _not_nifti_reason(path: Path) -> str:
    if path.suffix.lower() == PAIR_DATA_SUFFIX:
        return (f"NIfTI-1 pair data file without its header {path.with_suffix('.hdr')}; "
                f"skipped")
    return "not a NIfTI file name (expected .nii, .nii.gz or a .hdr/.img pair); skipped"


def discover_manifest(manifest: Path) -> tuple[list[Source], list[tuple[str, VolumeError | InputError]]]:
    """A CSV with a header row: ``path`` and ``label`` required, ``subject`` optional.

    Relative paths are taken relative to the manifest's directory; rows keep file order. An
    unknown column is an error (a misspelt ``subject`` would otherwise silently make every
    file its own subject). Without ``subject`` (or with an empty cell) each file is its own
    subject. A subject listed under two classes is rejected with all its rows: its slices
    would otherwise carry contradictory labels into one split.
    """
    try:
        with open(manifest, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            fields = set(rows[0].keys()) if rows else set()
    except FileNotFoundError:
        raise InputError(f"{manifest}: manifest not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{manifest}: cannot read manifest ({exc})") from None
    if rows and not {"path", "label"} <= fields:
        raise ManifestError(f"{manifest}: header must contain 'path' and 'label' columns, "
                            f"found {sorted(f for f in fields if f)}")
    unknown = sorted(str(f) for f in fields if f not in MANIFEST_COLUMNS)
    if unknown:
        raise ManifestError(f"{manifest}: unknown column(s) {unknown} in the header; allowed: "
                            f"{list(MANIFEST_COLUMNS)} (subject is optional)")
    sources: list[Source] = []
    rejected: list[tuple[str, VolumeError | InputError]] = []
    for lineno, row in enumerate(rows, start=2):
        raw_path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        subject = (row.get("subject") or "").strip()
        if not raw_path or not label:
            rejected.append((f"{manifest}:{lineno}", ManifestError(
                f"{manifest}:{lineno}: row needs both path and label")))
            continue
        path = Path(raw_path)
        if not path.is_absolute():
            path = manifest.parent / path
        if not path.is_file():
            rejected.append((str(path), InputError(f"{path}: file listed in {manifest}:{lineno} "
                                                   f"not found")))
        elif not is_nifti_name(path):
            rejected.append((str(path), NotNiftiError(f"{path}: {_not_nifti_reason(path)}")))
        else:
            sources.append(Source(path=path, label=label, name=raw_path, subject=subject))
    sources, conflicts = _reject_subjects_in_two_classes(sources, manifest)
    rejected.extend(conflicts)
    if not sources:
        raise EmptyInputError(f"{manifest}: manifest lists no readable NIfTI file")
    return sources, rejected


def _reject_subjects_in_two_classes(sources: list[Source], manifest: Path
                                    ) -> tuple[list[Source], list[tuple[str, VolumeError | InputError]]]:
    classes: dict[str, list[str]] = {}
    for src in sources:
        if src.label not in classes.setdefault(src.subject, []):
            classes[src.subject].append(src.label)
    bad = {subject for subject, labels in classes.items() if len(labels) > 1}
    rejected: list[tuple[str, VolumeError | InputError]] = []
    for subject in sorted(bad):
        files = [s.name for s in sources if s.subject == subject]
        rejected.append((f"{manifest}: subject {subject}", SubjectConflictError(
            f"{manifest}: subject '{subject}' has files in {len(classes[subject])} classes "
            f"{classes[subject]} ({', '.join(files)}); all its files skipped")))
    return [s for s in sources if s.subject not in bad], rejected


def discover(input_spec: str | Path) -> tuple[list[Source], list[tuple[str, VolumeError | InputError]]]:
    """Dispatch on the configured ``dataset.input``: ``sample``, a directory, or a ``.csv``."""
    if str(input_spec) == SAMPLE_INPUT:
        return sample_sources(), []
    path = Path(input_spec)
    if path.suffix.lower() == ".csv":
        return discover_manifest(path)
    return discover_directory(path)
