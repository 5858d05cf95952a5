"""Exceptions of the dataset stage.

Every message starts with the file (or directory) it is about and says what is wrong, so a
build report can list rejected inputs one per line and a researcher can act on each.
"""
from __future__ import annotations

from hpc.atomic import OutputNotWritableError

__all__ = [
    "DatasetError", "InputError", "EmptyInputError", "EmptyClassError", "ManifestError",
    "VolumeError", "NotNiftiError", "CorruptFileError", "BadDimensionsError", "EmptyVolumeError",
    "NonFiniteError", "AffineMismatchError", "NoOverlapError", "NothingConvertedError",
    "NotADatasetError", "OutputNotWritableError", "SubjectConflictError", "TooFewSubjectsError",
    "MissingPairError",
]


class DatasetError(Exception):
    """Base class of every dataset-stage error."""


class InputError(DatasetError):
    """The input location (directory, manifest, sample set) cannot be used."""


class EmptyInputError(InputError):
    """The input directory or manifest lists no NIfTI files at all."""


class EmptyClassError(InputError):
    """A class directory holds no NIfTI files; the class is skipped, other classes convert."""


class ManifestError(InputError):
    """A CSV manifest is malformed (missing columns, unreadable)."""


class SubjectConflictError(InputError):
    """A manifest lists one subject under two classes; all of that subject's files are skipped."""


class TooFewSubjectsError(InputError):
    """A class has fewer subjects than the subject split needs (one per non-empty split)."""


class VolumeError(DatasetError):
    """One input file cannot be converted; the build rejects it and goes on with the others."""


class NotNiftiError(VolumeError):
    """The file is not a NIfTI-1/NIfTI-2 volume (wrong name, other format, CIFTI)."""


class MissingPairError(VolumeError):
    """A NIfTI-1 ``.hdr`` whose ``.img`` data file is missing."""


class CorruptFileError(VolumeError):
    """The file looks like NIfTI but its data cannot be read (truncated, bad compression)."""


class BadDimensionsError(VolumeError):
    """The image is not 3-D or 4-D (after dropping trailing singleton dimensions)."""


class EmptyVolumeError(VolumeError):
    """Every voxel is zero: there is nothing to slice."""


class NonFiniteError(VolumeError):
    """Every voxel is NaN/inf, or some are and the configured rule is to reject."""


class AffineMismatchError(VolumeError):
    """With resampling off, the volume's grid differs from the first volume's grid."""


class NoOverlapError(VolumeError):
    """After resampling, the volume has no non-zero voxel on the reference grid."""


class NothingConvertedError(DatasetError):
    """Every input was rejected; no dataset is written."""


class NotADatasetError(DatasetError):
    """A file given to ``hpc data info``/``export-png`` is not an hpc-slices HDF5 file."""
