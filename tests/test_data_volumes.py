"""Loading, validating, reorienting and resampling single volumes (hpc.data.volumes).

Real files: the MNI152 T1 template from the nilearn wheel and nibabel's own test volumes;
the bad inputs are made from them (truncated copies) or written with nibabel.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hpc.data.errors import (BadDimensionsError, CorruptFileError, EmptyVolumeError, NonFiniteError,
                             NoOverlapError, NotNiftiError)
from hpc.data.sources import SAMPLE_VOLUMES, package_dir
from hpc.data.volumes import (MNI152_2MM_AFFINE, effective_shape, load_volume, mni152_2mm_grid,
                              reference_grid)

NIBABEL_DATA = package_dir("nibabel") / "tests" / "data"
ANATOMICAL = NIBABEL_DATA / "anatomical.nii"       # 33x41x25, 2 mm, LAS
FUNCTIONAL = NIBABEL_DATA / "functional.nii"       # 17x21x3x20, 4-D
NIFTI2 = NIBABEL_DATA / "example_nifti2.nii.gz"    # NIfTI-2, 4-D
T1 = package_dir("nilearn") / SAMPLE_VOLUMES[0].relative_path


def _save(tmp_path: Path, name: str, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def test_las_volume_is_flipped_to_ras_keeping_world_positions() -> None:
    img = nib.load(ANATOMICAL)
    raw = np.asanyarray(img.dataobj).astype(np.float32)
    vol = load_volume(ANATOMICAL, grid=None)
    assert nib.aff2axcodes(vol.grid.affine) == ("R", "A", "S")
    assert vol.data.shape == raw.shape + (1,)
    # the same world point reads the same value before and after reorientation
    i, j, k = 5, 17, 11
    world = img.affine @ [i, j, k, 1]
    ci, cj, ck = np.round(np.linalg.solve(vol.grid.affine, world)[:3]).astype(int)
    assert vol.data[ci, cj, ck, 0] == raw[i, j, k]


def test_mni_template_voxel_survives_resampling_to_2mm_exactly() -> None:
    t1 = nib.load(T1)
    raw = np.asanyarray(t1.dataobj)
    vol = load_volume(T1, grid=mni152_2mm_grid())
    assert vol.data.shape == (91, 109, 91, 1)
    # 2 mm voxel (45, 63, 36) is world (0, 0, 0) mm, i.e. T1 voxel (98, 134, 72)
    assert np.allclose(MNI152_2MM_AFFINE @ [45, 63, 36, 1], [0, 0, 0, 1])
    for ijk in [(45, 63, 36), (30, 50, 40), (60, 80, 55)]:
        world = MNI152_2MM_AFFINE @ [*ijk, 1]
        src = np.round(np.linalg.solve(t1.affine, world)[:3]).astype(int)
        assert vol.data[(*ijk, 0)] == pytest.approx(float(raw[tuple(src)]), abs=1e-3)


@pytest.mark.slow  # importing nilearn alone takes seconds
def test_resampling_matches_nilearn_trilinear() -> None:
    from nilearn.image import resample_img

    anat = nib.load(ANATOMICAL)
    ours = load_volume(ANATOMICAL, grid=mni152_2mm_grid(), interpolation_order=1).data[..., 0]
    ref = resample_img(anat, target_affine=MNI152_2MM_AFFINE, target_shape=(91, 109, 91),
                       interpolation="linear", force_resample=True, copy_header=True).get_fdata()
    assert np.abs(ours - ref).max() < 1e-2 * np.abs(ref).max()


def test_4d_volume_gives_every_time_point_or_the_chosen_one() -> None:
    every = load_volume(FUNCTIONAL, grid=None)
    assert every.data.shape[3] == 20 and every.volume_indices == list(range(20))
    third = load_volume(FUNCTIONAL, grid=None, volume_index=3)
    assert third.volume_indices == [3]
    assert np.array_equal(third.data[..., 0], every.data[..., 3])


def test_volume_index_out_of_range_is_reported() -> None:
    with pytest.raises(BadDimensionsError, match=r"functional.nii: volume_index 20 out of range.*20 volume"):
        load_volume(FUNCTIONAL, grid=None, volume_index=20)


def test_nifti2_files_load() -> None:
    vol = load_volume(NIFTI2, grid=None)
    assert vol.data.shape == (32, 20, 12, 2)


def test_trailing_singleton_dimensions_are_dropped() -> None:
    assert effective_shape((91, 109, 91, 1, 1)) == (91, 109, 91)
    assert effective_shape((4, 4, 4, 2, 2)) == (4, 4, 4, 2, 2)
    assert effective_shape((10, 10)) == (10, 10)


def test_truncated_gz_is_a_corrupt_file(tmp_path: Path) -> None:
    blob = T1.read_bytes()
    path = tmp_path / "half.nii.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CorruptFileError, match=r"half.nii.gz: truncated or corrupt compressed data"):
        load_volume(path, grid=None)


def test_gz_truncated_inside_the_header_is_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "stub.nii.gz"
    path.write_bytes(T1.read_bytes()[:60])
    with pytest.raises(CorruptFileError, match=r"stub.nii.gz: truncated gzip stream"):
        load_volume(path, grid=None)


def test_truncated_uncompressed_nii_is_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "short.nii"
    path.write_bytes(ANATOMICAL.read_bytes()[:20000])
    with pytest.raises(CorruptFileError, match=r"short.nii: cannot read voxel data, file truncated"):
        load_volume(path, grid=None)


@pytest.mark.parametrize("name,content,detail", [
    ("notes.nii.gz", b"subject 1 scanned on Monday\n", "not gzip-compressed"),
    ("notes.nii", b"subject 1 scanned on Monday\n" * 40, "no valid NIfTI-1/NIfTI-2 header"),
    ("image.nii.gz", gzip.compress(b"\x89PNG not a brain" * 100), "no valid NIfTI-1/NIfTI-2 header"),
])
def test_file_that_is_not_nifti_is_rejected(tmp_path: Path, name: str, content: bytes, detail: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NotNiftiError, match=f"{name}: not a NIfTI file \\({detail}\\)"):
        load_volume(path, grid=None)


def test_cifti_file_is_not_a_volume() -> None:
    with pytest.raises(NotNiftiError, match="row_major.dconn.nii: CIFTI-2"):
        load_volume(NIBABEL_DATA / "row_major.dconn.nii", grid=None)


def test_2d_image_is_rejected(tmp_path: Path) -> None:
    path = _save(tmp_path, "flat.nii.gz", np.ones((10, 12), dtype=np.float32))
    with pytest.raises(BadDimensionsError, match=r"flat.nii.gz: 2-D image \(shape \(10, 12\)\), expected 3-D or 4-D"):
        load_volume(path, grid=None)


def test_5d_image_is_rejected(tmp_path: Path) -> None:
    path = _save(tmp_path, "five.nii.gz", np.ones((4, 4, 4, 2, 2), dtype=np.float32))
    with pytest.raises(BadDimensionsError, match=r"five.nii.gz: 5-D image \(shape \(4, 4, 4, 2, 2\)\)"):
        load_volume(path, grid=None)


def test_all_zero_volume_is_rejected(tmp_path: Path) -> None:
    path = _save(tmp_path, "zeros.nii.gz", np.zeros((8, 8, 8), dtype=np.float32))
    with pytest.raises(EmptyVolumeError, match="zeros.nii.gz: every voxel is zero"):
        load_volume(path, grid=None)


@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_volume_without_any_finite_voxel_is_rejected(tmp_path: Path, fill: float) -> None:
    path = _save(tmp_path, "nan.nii.gz", np.full((8, 8, 8), fill, dtype=np.float32))
    with pytest.raises(NonFiniteError, match="nan.nii.gz: every voxel is NaN/inf"):
        load_volume(path, grid=None)


def _anatomical_with_nonfinite(tmp_path: Path) -> tuple[Path, np.ndarray]:
    img = nib.load(ANATOMICAL)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[3, 4, 5], data[10, 10, 10], data[0, 0, 0] = np.nan, np.inf, -np.inf
    return _save(tmp_path, "holes.nii.gz", data, img.affine), data


def test_nonfinite_voxels_are_reported_and_set_to_zero(tmp_path: Path) -> None:
    path, data = _anatomical_with_nonfinite(tmp_path)
    vol = load_volume(path, grid=mni152_2mm_grid())
    assert np.isfinite(vol.data).all()
    assert len(vol.warnings) == 1 and "holes.nii.gz: 3 NaN/inf voxel(s)" in vol.warnings[0]
    native = load_volume(path, grid=None).data[..., 0]
    expected = np.where(np.isfinite(data), data, 0)[::-1]  # LAS -> RAS flips x
    assert np.array_equal(native, expected)


def test_nonfinite_voxels_reject_when_configured(tmp_path: Path) -> None:
    path, _ = _anatomical_with_nonfinite(tmp_path)
    with pytest.raises(NonFiniteError, match="holes.nii.gz: 3 NaN/inf voxel.*'reject'"):
        load_volume(path, grid=None, nonfinite="reject")


def test_volume_outside_the_reference_grid_is_rejected(tmp_path: Path) -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = 5000.0  # 5 m away from the MNI box
    path = _save(tmp_path, "far.nii.gz", np.ones((8, 8, 8), dtype=np.float32), affine)
    with pytest.raises(NoOverlapError, match="far.nii.gz: no non-zero voxel inside the reference grid"):
        load_volume(path, grid=mni152_2mm_grid())


def test_reference_grid_from_a_file_is_its_canonical_grid() -> None:
    grid = reference_grid(str(ANATOMICAL))
    assert grid.shape == (33, 41, 25)
    assert nib.aff2axcodes(grid.affine) == ("R", "A", "S")
    vol = load_volume(ANATOMICAL, grid=grid)
    assert np.allclose(vol.data, load_volume(ANATOMICAL, grid=None).data, atol=1e-3)
