"""Load one NIfTI file into a validated, canonical (RAS), optionally resampled float32 array.

Contract of ``load_volume``: it either returns a ``Volume`` whose data is 4-D
(X, Y, Z, T) float32, finite, not all zero, on the requested grid, or raises a
``VolumeError`` subclass whose message names the file and the problem. Nothing here knows
about slices, classes or HDF5.

Rules (documented in datasets/README.md):
- Only NIfTI-1/NIfTI-2 volumes (``.nii``, ``.nii.gz``, or a NIfTI-1 pair ``.hdr`` + ``.img``,
  given by its ``.hdr``); CIFTI-2 files and Analyze 7.5 headers (no NIfTI magic, so no
  defined orientation) are rejected.
- Trailing singleton dimensions beyond the third are dropped; what remains must be 3-D or
  4-D. A 4-D image gives one volume per time point (or only ``volume_index``).
- NaN/inf voxels: with ``nonfinite="zero"`` (default) they are counted, reported as a
  warning and set to 0 (the background value) *before* resampling, so they cannot spread;
  with ``nonfinite="reject"`` the file is rejected. A volume with no finite voxel, or whose
  finite voxels are all zero, is always rejected.
- Reorientation: to the closest canonical orientation (RAS+), as ``nibabel.as_closest_canonical``.
- Resampling: trilinear (``order=1``) by default onto the reference grid, 0 outside the
  field of view; a volume that ends up with no non-zero voxel is rejected.
"""
from __future__ import annotations

import dataclasses
import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation
from scipy import ndimage

from hpc.data.errors import (AffineMismatchError, BadDimensionsError, CorruptFileError,
                             EmptyVolumeError, MissingPairError, NonFiniteError, NoOverlapError,
                             NotNiftiError, VolumeError)

NIFTI_HEADER_BYTES = 348
AFFINE_ATOL_MM = 1e-3

# FSL's MNI152 2 mm grid (91x109x91), expressed in RAS voxel order: x -90..90, y -126..90,
# z -72..108 mm. FSL stores it LAS (x flipped); after canonical reorientation both are this.
MNI152_2MM_SHAPE: tuple[int, int, int] = (91, 109, 91)
MNI152_2MM_AFFINE = np.array([[2.0, 0.0, 0.0, -90.0],
                              [0.0, 2.0, 0.0, -126.0],
                              [0.0, 0.0, 2.0, -72.0],
                              [0.0, 0.0, 0.0, 1.0]])


@dataclasses.dataclass(frozen=True)
class Grid:
    """A voxel grid: 3-D shape plus the voxel -> world (mm, RAS) affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    def same_as(self, other: "Grid", atol: float = AFFINE_ATOL_MM) -> bool:
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol))

    def describe(self) -> str:
        zooms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return (f"shape {self.shape}, voxel {tuple(round(float(z), 3) for z in zooms)} mm, "
                f"origin {tuple(round(float(o), 2) for o in self.affine[:3, 3])} mm")


@dataclasses.dataclass
class Volume:
    """A loaded volume: ``data`` is (X, Y, Z, T) float32 on ``grid``.

    ``volume_indices`` are the time points of the original 4-D image kept in ``data``
    (``[0]`` for a 3-D image); ``warnings`` lists non-fatal problems (e.g. NaN voxels).
    """

    path: Path
    data: np.ndarray
    grid: Grid
    volume_indices: list[int]
    warnings: list[str]


def mni152_2mm_grid() -> Grid:
    return Grid(MNI152_2MM_SHAPE, MNI152_2MM_AFFINE.copy())


def reference_grid(spec: str) -> Grid:
    """``mni152_2mm`` or the path of a NIfTI file whose canonical grid is the reference."""
    if spec == "mni152_2mm":
        return mni152_2mm_grid()
    path = Path(spec)
    img = _open_nifti(path)
    shape = tuple(int(s) for s in img.shape[:3])
    if len(shape) != 3:
        raise BadDimensionsError(f"{path}: reference image must be at least 3-D, shape {img.shape}")
    ornt = io_orientation(img.affine)
    affine = img.affine @ inv_ornt_aff(ornt, shape)
    canon_shape = [0, 0, 0]
    for axis, (new_axis, _flip) in enumerate(ornt):
        canon_shape[int(new_axis)] = shape[axis]
    return Grid((canon_shape[0], canon_shape[1], canon_shape[2]), affine)


def _truncation_problem(path: Path) -> str | None:
    """Why a file nibabel cannot identify is damaged rather than foreign, or None."""
    if path.name.lower().endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(NIFTI_HEADER_BYTES)
        except EOFError:
            return "truncated gzip stream (file ends inside the NIfTI header)"
        except (OSError, zlib.error):
            return None
        if len(head) < NIFTI_HEADER_BYTES:
            return f"truncated: only {len(head)} bytes after decompression, a NIfTI header needs 348"
        return None
    size = path.stat().st_size
    if size < NIFTI_HEADER_BYTES:
        return f"truncated: {size} bytes, shorter than a NIfTI header (348)"
    return None


def _check_pair(path: Path) -> None:
    """A ``.hdr`` needs its ``.img`` beside it (same stem, either case)."""
    candidates = [path.with_suffix(s) for s in (".img", ".IMG")]
    if path.exists() and not any(c.is_file() for c in candidates):
        raise MissingPairError(f"{path}: NIfTI-1 pair header without its data file "
                               f"{candidates[0]}; copy the .img next to the .hdr")


def _open_nifti(path: Path) -> nib.Nifti1Image:
    """Open the header (no data yet) and insist on a NIfTI-1/2 volume."""
    lower = path.name.lower()
    if not lower.endswith((".nii", ".nii.gz", ".hdr")):
        raise NotNiftiError(f"{path}: not a NIfTI file name (expected .nii, .nii.gz or a "
                            f".hdr/.img pair)")
    if lower.endswith(".hdr"):
        _check_pair(path)
    try:
        img = nib.load(path)
    except FileNotFoundError:
        raise VolumeError(f"{path}: file not found") from None
    except (ImageFileError, nib.spatialimages.HeaderDataError, ValueError, OSError, EOFError,
            zlib.error) as exc:
        problem = _truncation_problem(path) if path.exists() else None
        if problem:
            raise CorruptFileError(f"{path}: {problem}") from None
        detail = "not gzip-compressed" if "not a gzip file" in str(exc) else "no valid NIfTI-1/NIfTI-2 header"
        raise NotNiftiError(f"{path}: not a NIfTI file ({detail})") from None
    if isinstance(img, nib.Cifti2Image):
        raise NotNiftiError(f"{path}: CIFTI-2 file (surface/grayordinate data), not a volume")
    if isinstance(img, nib.Nifti1Pair) and not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        return img  # NIfTI-1 pair (.hdr + .img): same header and affine rules as .nii
    if isinstance(img, nib.AnalyzeImage) and lower.endswith(".hdr"):
        raise NotNiftiError(f"{path}: Analyze 7.5 header (no NIfTI-1 magic 'ni1'), orientation "
                            f"undefined; convert it to NIfTI first")
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NotNiftiError(f"{path}: {type(img).__name__} is not a NIfTI-1/NIfTI-2 image")
    return img


def effective_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop trailing singleton dimensions beyond the third: (91,109,91,1) -> (91,109,91)."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _read_data(img: nib.Nifti1Image, path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except (EOFError, zlib.error) as exc:
        raise CorruptFileError(f"{path}: truncated or corrupt compressed data ({exc})") from None
    except (OSError, ValueError) as exc:
        msg = str(exc).replace("\n", " ")
        raise CorruptFileError(f"{path}: cannot read voxel data, file truncated or damaged ({msg})") from None
    return data.reshape(shape)


def _to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder/flip the first three axes to the closest RAS orientation (nibabel's rule)."""
    ornt = io_orientation(affine)
    new_affine = affine @ inv_ornt_aff(ornt, data.shape[:3])
    return np.ascontiguousarray(apply_orientation(data, ornt)), new_affine


def resample_to_grid(data: np.ndarray, source_affine: np.ndarray, grid: Grid,
                     order: int = 1) -> np.ndarray:
    """Resample a (X, Y, Z, T) array onto ``grid``; voxels outside the source are 0.

    Pure function: the mapping is target voxel -> world -> source voxel, evaluated with
    ``scipy.ndimage.affine_transform`` (spline ``order``; 1 = trilinear, 0 = nearest).
    """
    vox_to_vox = np.linalg.solve(source_affine, grid.affine)
    matrix, offset = vox_to_vox[:3, :3], vox_to_vox[:3, 3]
    if np.allclose(matrix, np.diag(np.diag(matrix))):
        matrix = np.diag(matrix)  # axis-aligned: scipy takes a faster path
    out = np.empty(grid.shape + (data.shape[3],), dtype=np.float32)
    for t in range(data.shape[3]):
        out[..., t] = ndimage.affine_transform(data[..., t], matrix, offset=offset,
                                               output_shape=grid.shape, order=order,
                                               mode="constant", cval=0.0, prefilter=False)
    return out


def load_volume(path: str | Path, *, grid: Grid | None = None, volume_index: int | None = None,
                nonfinite: str = "zero", interpolation_order: int = 1) -> Volume:
    """Load, validate, reorient and (if ``grid`` is given) resample one NIfTI file.

    ``grid=None`` keeps the volume's own canonical grid (resampling off); the caller then
    checks that every volume shares one grid with ``check_same_grid``.
    """
    path = Path(path)
    img = _open_nifti(path)
    shape = effective_shape(img.shape)
    if len(shape) < 3:
        raise BadDimensionsError(f"{path}: {len(shape)}-D image (shape {img.shape}), expected 3-D or 4-D")
    if len(shape) > 4:
        raise BadDimensionsError(f"{path}: {len(shape)}-D image (shape {img.shape}), expected 3-D or 4-D")
    if min(shape) == 0:
        raise BadDimensionsError(f"{path}: image has an empty dimension (shape {img.shape})")
    data = _read_data(img, path, shape)
    if data.ndim == 3:
        data = data[..., np.newaxis]
    indices = list(range(data.shape[3]))
    if volume_index is not None:
        if not -data.shape[3] <= volume_index < data.shape[3]:
            raise BadDimensionsError(f"{path}: volume_index {volume_index} out of range, image has "
                                     f"{data.shape[3]} volume(s)")
        keep = volume_index % data.shape[3]
        data, indices = data[..., keep:keep + 1], [keep]

    warnings: list[str] = []
    finite = np.isfinite(data)
    n_bad = int(finite.size - np.count_nonzero(finite))
    if n_bad == data.size:
        raise NonFiniteError(f"{path}: every voxel is NaN/inf, nothing to convert")
    if n_bad:
        if nonfinite == "reject":
            raise NonFiniteError(f"{path}: {n_bad} NaN/inf voxel(s) of {data.size} and "
                                 f"dataset.nonfinite is 'reject'")
        data = np.where(finite, data, np.float32(0.0))
        warnings.append(f"{path}: {n_bad} NaN/inf voxel(s) of {data.size} set to 0 "
                        f"(dataset.nonfinite: zero)")
    if not np.any(data):
        raise EmptyVolumeError(f"{path}: every voxel is zero, nothing to convert")

    data, affine = _to_canonical(data, img.affine)
    if grid is None:
        return Volume(path, data, Grid(tuple(data.shape[:3]), affine), indices, warnings)  # type: ignore[arg-type]
    data = resample_to_grid(data, affine, grid, order=interpolation_order)
    if not np.any(data):
        raise NoOverlapError(f"{path}: no non-zero voxel inside the reference grid after "
                             f"resampling ({grid.describe()}); wrong space or affine?")
    return Volume(path, data, grid, indices, warnings)


def check_same_grid(volume: Volume, reference: Volume) -> None:
    """With resampling off, every volume must share the first volume's canonical grid."""
    if not volume.grid.same_as(reference.grid):
        raise AffineMismatchError(
            f"{volume.path}: grid differs from {reference.path} and resampling is off "
            f"({volume.grid.describe()} vs {reference.grid.describe()}); "
            f"set dataset.resample: true or resample the inputs first")
