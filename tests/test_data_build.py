"""End-to-end dataset builds (hpc.data.build): bad inputs are rejected one by one while the
good ones convert; the HDF5 file has the documented format and real content; writes are atomic."""
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from hpc.atomic import OutputNotWritableError
from hpc.config import load_config
from hpc.data.build import build_dataset
from hpc.data.errors import EmptyInputError, NothingConvertedError
from hpc.data.slices import voxel_to_pixel
from hpc.data.sources import SAMPLE_VOLUMES, package_dir
from hpc.data.volumes import MNI152_2MM_AFFINE
from hpc.data.writer import SliceTable, write_dataset

NIBABEL_DATA = package_dir("nibabel") / "tests" / "data"
ANATOMICAL = NIBABEL_DATA / "anatomical.nii"
FUNCTIONAL = NIBABEL_DATA / "functional.nii"
T1 = package_dir("nilearn") / SAMPLE_VOLUMES[0].relative_path


SLICE_SPLIT = {"method": "slice", "seed": 0, "val": 0.15, "test": 0.15, "test_first_k": 10}
SMALL_SAMPLE = {"per_class": 3, "seed": 0, "workers": 2}


def dataset_cfg(**overrides) -> dict:
    """The default dataset config, with a small virtual sample (3 subjects per class) and,
    for the tiny hand-made trees of one file per class, the per-slice split; tests of the
    subject split pass ``split=`` themselves."""
    cfg = copy.deepcopy(load_config()["dataset"])
    cfg["virtual_subjects"] = dict(SMALL_SAMPLE)
    if str(overrides.get("input", "sample")) != "sample":
        cfg["split"] = dict(SLICE_SPLIT)
    cfg.update(overrides)
    return cfg


def quiet_build(cfg: dict, output: Path, **kw):
    messages: list[str] = []
    result = build_dataset(cfg, output, progress=False, log=messages.append, **kw)
    return result, messages


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory) -> tuple[Path, object]:
    """3 virtual subjects per class (2 worker processes), the default subject split."""
    out = tmp_path_factory.mktemp("sample") / "slices.h5"
    result, _ = quiet_build(dataset_cfg(), out)
    return out, result


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


@pytest.fixture
def messy_tree(tmp_path: Path) -> Path:
    """Two good real volumes plus one of every bad input the issue lists."""
    root = tmp_path / "raw"
    (root / "anatomical").mkdir(parents=True)
    shutil.copy(ANATOMICAL, root / "anatomical" / "anatomical.nii")
    (root / "functional").mkdir()
    shutil.copy(FUNCTIONAL, root / "functional" / "functional.nii")
    bad = root / "anatomical"
    blob = T1.read_bytes()
    (bad / "truncated.nii.gz").write_bytes(blob[: len(blob) // 3])
    (bad / "notnifti.nii.gz").write_bytes(b"this is a text file\n")
    (bad / "readme.txt").write_text("not an image\n")
    _save(bad / "flat2d.nii.gz", np.ones((10, 10), dtype=np.float32))
    _save(bad / "five5d.nii.gz", np.ones((4, 4, 4, 2, 2), dtype=np.float32))
    _save(bad / "zeros.nii.gz", np.zeros((8, 8, 8), dtype=np.float32))
    _save(bad / "allnan.nii.gz", np.full((8, 8, 8), np.nan, dtype=np.float32))
    img = nib.load(ANATOMICAL)
    holes = np.asanyarray(img.dataobj).astype(np.float32)
    holes[5:7, 5:7, 5] = np.nan
    holes[20, 20, 12] = np.inf
    _save(root / "functional" / "with_nan.nii.gz", holes, img.affine)
    (root / "empty_class").mkdir()
    return root


EXPECTED_REJECTIONS = {
    "truncated.nii.gz": "truncated or corrupt compressed data",
    "notnifti.nii.gz": "not a NIfTI file (not gzip-compressed)",
    "readme.txt": "not a NIfTI file name",
    "flat2d.nii.gz": "2-D image",
    "five5d.nii.gz": "5-D image",
    "zeros.nii.gz": "every voxel is zero",
    "allnan.nii.gz": "every voxel is NaN/inf",
    "empty_class": "class directory 'empty_class' contains no NIfTI files",
}


def test_every_bad_input_is_rejected_with_its_reason_and_good_files_convert(messy_tree: Path,
                                                                            tmp_path: Path) -> None:
    # reference grid = anatomical.nii's own small grid keeps the 20-volume resample quick
    out = tmp_path / "out" / "slices.h5"
    result, messages = quiet_build(dataset_cfg(input=str(messy_tree), reference=str(ANATOMICAL)), out)
    assert sorted(result.converted) == ["anatomical/anatomical.nii", "functional/functional.nii",
                                        "functional/with_nan.nii.gz"]
    assert len(result.rejected) == len(EXPECTED_REJECTIONS)
    for name, reason in EXPECTED_REJECTIONS.items():
        hits = [m for where, m in result.rejected if Path(where).name == name]
        assert len(hits) == 1, (name, result.rejected)
        assert f"{name}" in hits[0] and reason in hits[0]
        assert any(name in m and m.startswith("rejected: ") for m in messages)
    assert any("with_nan.nii.gz: 5 NaN/inf voxel(s)" in w for w in result.warnings)
    with h5py.File(out) as f:
        assert [c.decode() for c in f["class_names"][()]] == ["anatomical", "functional"]
        assert np.isfinite(f["images"][()]).all()
        assert set(f["volume_index"][()][f["source_file"][()] == b"functional/functional.nii"]) == set(range(20))


def test_strict_mode_writes_nothing_when_anything_is_rejected(messy_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "strict.h5"
    result, _ = quiet_build(dataset_cfg(input=str(messy_tree), reference=str(ANATOMICAL)), out, strict=True)
    assert result.output is None and len(result.rejected) == len(EXPECTED_REJECTIONS)
    assert not out.exists()


def test_mismatched_grids_are_rejected_when_resampling_is_off(tmp_path: Path) -> None:
    img = nib.load(ANATOMICAL)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    shifted = img.affine.copy()
    shifted[:3, 3] += [4.0, 0.0, 0.0]
    _save(tmp_path / "raw" / "a" / "first.nii.gz", data, img.affine)
    _save(tmp_path / "raw" / "a" / "second.nii.gz", data, img.affine)
    _save(tmp_path / "raw" / "b" / "shifted.nii.gz", data, shifted)
    result, _ = quiet_build(dataset_cfg(input=str(tmp_path / "raw"), resample=False),
                            tmp_path / "grid.h5")
    assert result.converted == ["a/first.nii.gz", "a/second.nii.gz"]
    (where, message), = result.rejected
    assert where.endswith("shifted.nii.gz")
    assert "shifted.nii.gz: grid differs from" in message and "resampling is off" in message
    # the same inputs all convert once resampling puts them on one grid
    result, _ = quiet_build(dataset_cfg(input=str(tmp_path / "raw")), tmp_path / "grid2.h5")
    assert len(result.converted) == 3 and not result.rejected


def test_empty_input_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    with pytest.raises(EmptyInputError, match=r"raw: no NIfTI files"):
        quiet_build(dataset_cfg(input=str(tmp_path / "raw")), tmp_path / "x.h5")


def test_nothing_converted_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    _save(tmp_path / "raw" / "a" / "zeros.nii.gz", np.zeros((4, 4, 4), dtype=np.float32))
    with pytest.raises(NothingConvertedError, match="nothing converted, all 1 input"):
        quiet_build(dataset_cfg(input=str(tmp_path / "raw")), tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_unwritable_output_fails_before_reading_inputs(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("occupies the directory name\n")
    with pytest.raises(OutputNotWritableError, match=r"a_file: cannot create output directory"):
        quiet_build(dataset_cfg(input=str(tmp_path / "does-not-exist")), blocker / "slices.h5")
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(OutputNotWritableError, match=r"dir.h5: output path is a directory"):
        quiet_build(dataset_cfg(), tmp_path / "dir.h5")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory_is_reported(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputNotWritableError, match="ro: output directory is not writable"):
            quiet_build(dataset_cfg(), ro / "slices.h5")
    finally:
        ro.chmod(0o700)


def test_manifest_input_assigns_labels_from_the_csv(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,label\n{ANATOMICAL},anat\n{FUNCTIONAL},func\nmissing.nii.gz,anat\n")
    result, _ = quiet_build(dataset_cfg(input=str(manifest), volume_index=0), tmp_path / "m.h5")
    assert result.class_counts.keys() == {"anat", "func"}
    (where, message), = result.rejected
    assert "missing.nii.gz: file listed in" in message and "manifest.csv:4 not found" in message


# ---- the default sample build: format and real content ----

def test_sample_build_has_the_documented_format(sample_build) -> None:
    path, result = sample_build
    with h5py.File(path) as f:
        n = f["labels"].shape[0]
        assert f["images"].shape == (n, 1, 32, 32) and f["images"].dtype == np.float32
        assert f["images"].compression == "gzip" and f["images"].chunks is not None
        assert f["labels"].dtype == np.int64 and f["slice_index"].dtype == np.int32
        assert f["volume_index"].dtype == np.int32 and f["split"].dtype == np.uint8
        assert list(f["split"].attrs["names"]) == ["train", "val", "test"]
        assert [c.decode() for c in f["class_names"][()]] == [v.label for v in SAMPLE_VOLUMES]
        assert f.attrs["format"] == "hpc-slices" and f.attrs["format_version"] == 2
        subjects = [v.decode() for v in f["subject"][()]]
        assert f.attrs["slice_axis"] == "axial" and list(f.attrs["image_size"]) == [32, 32]
        assert json.loads(f.attrs["config"])["normalization"] == "zscore"
        assert {"nibabel", "h5py"} <= json.loads(f.attrs["versions"]).keys()
        checksums = json.loads(f.attrs["input_checksums"])
        assert len(checksums) == 4 and all(len(v) == 64 for v in checksums.values())
        images = f["images"][()]
        labels = f["labels"][()]
    assert np.allclose(images.mean(axis=(2, 3)), 0, atol=1e-4)       # z-scored per slice
    assert np.allclose(images.std(axis=(2, 3)), 1, atol=1e-3)
    assert all(3 * 40 <= np.count_nonzero(labels == k) <= 3 * 91 for k in range(4))
    names = [v.label for v in SAMPLE_VOLUMES]
    assert sorted(set(subjects)) == sorted(f"{c}-v{i:02d}" for c in names for i in (1, 2, 3))
    assert all(subjects[i].startswith(names[labels[i]]) for i in range(len(subjects)))
    assert result.subjects_per_split == {"train": 4, "val": 4, "test": 4}


def test_every_virtual_subject_records_its_seed_and_drawn_transforms(sample_build) -> None:
    path, _ = sample_build
    with h5py.File(path) as f:
        info = json.loads(f.attrs["subjects"])
        config = json.loads(f.attrs["config"])
    assert len(info) == 12 and config["virtual_subjects"]["per_class"] == 3
    seeds = {v["virtual"]["seed"] for v in info.values()}
    assert len(seeds) == 12
    for name, entry in info.items():
        steps = {t["transform"]: t for t in entry["virtual"]["transforms"]}
        assert list(steps) == ["Affine", "ElasticDeformation", "BiasField", "Gamma", "Noise"]
        assert all(abs(s - 1) <= 0.1 + 1e-6 for s in steps["Affine"]["scales"])
        assert all(abs(d) <= 8 + 1e-6 for d in steps["Affine"]["degrees"])
        assert 0 < steps["ElasticDeformation"]["max_displacement_drawn_mm"] <= 6 + 1e-6
        assert len(steps["BiasField"]["coefficients"]) == 20
        assert 0 <= steps["Noise"]["std"] <= 0.02
        assert entry["class"] == name.rsplit("-v", 1)[0] and len(entry["files"]) == 1


def test_virtual_subjects_differ_and_regenerate_exactly_from_their_seed() -> None:
    from hpc.data.virtual import VirtualSubjectConfig, make_subject
    from hpc.data.volumes import load_volume, mni152_2mm_grid

    base = load_volume(T1, grid=mni152_2mm_grid())
    cfg = VirtualSubjectConfig(per_class=2)
    a, prov_a = make_subject(base.data[..., 0], base.grid.affine, "anatomical", 0, cfg)
    b, _ = make_subject(base.data[..., 0], base.grid.affine, "anatomical", 1, cfg)
    again, prov_again = make_subject(base.data[..., 0], base.grid.affine, "anatomical", 0, cfg)
    assert np.array_equal(a, again) and prov_a == prov_again
    scaled = base.data[..., 0] / base.data.max()
    assert np.abs(a - b).mean() > 0.01 and np.abs(a - scaled).mean() > 0.01


def test_sample_build_is_identical_with_one_worker_or_two(sample_build, tmp_path: Path) -> None:
    path, _ = sample_build
    again, _ = quiet_build(dataset_cfg(virtual_subjects={**SMALL_SAMPLE, "workers": 1}),
                           tmp_path / "again.h5")
    with h5py.File(path) as a, h5py.File(again.output) as b:
        for name in ("labels", "split", "slice_index", "source_file", "subject"):
            assert np.array_equal(a[name][()], b[name][()])
        assert np.array_equal(a["images"][()], b["images"][()])
        assert a.attrs["subjects"] == b.attrs["subjects"]


def test_mni_template_voxel_lands_at_the_expected_slice_and_pixel(tmp_path: Path) -> None:
    """Known voxel of the 1 mm MNI T1 template -> its 2 mm grid position -> slice/pixel."""
    manifest = tmp_path / "t1.csv"
    manifest.write_text(f"path,label\n{T1},anatomical\n")
    cfg = dataset_cfg(input=str(manifest), image_size=None, normalization="none", drop_empty=False)
    result, _ = quiet_build(cfg, tmp_path / "t1.h5")
    t1 = nib.load(T1)
    raw = np.asanyarray(t1.dataobj)
    with h5py.File(result.output) as f:
        assert f["images"].shape == (91, 1, 109, 91)
        slice_index = f["slice_index"][()]
        for voxel in [(45, 63, 36), (30, 70, 50), (58, 40, 30)]:          # 2 mm grid voxels
            world = MNI152_2MM_AFFINE @ [*voxel, 1]                        # e.g. (0,0,0) mm
            src = tuple(np.round(np.linalg.solve(t1.affine, world)[:3]).astype(int))
            k, (row, col) = voxel_to_pixel(voxel, (91, 109, 91), "axial")
            n = int(np.flatnonzero(slice_index == k)[0])
            assert float(raw[src]) > 0
            assert f["images"][n, 0, row, col] == pytest.approx(float(raw[src]), abs=1e-3)


def test_functional_class_keeps_the_sign_of_the_t_map(sample_build) -> None:
    """The motor t-map has activations and deactivations; z-scored slices keep both tails."""
    path, _ = sample_build
    with h5py.File(path) as f:
        labels = f["labels"][()]
        k = [c.decode() for c in f["class_names"][()]].index("functional")
        func = f["images"][()][labels == k]
    assert (func.min(axis=(1, 2, 3)) < -2).mean() > 0.5 and (func.max(axis=(1, 2, 3)) > 2).mean() > 0.5


# ---- atomic writes ----

def _table(n: int, size: int) -> SliceTable:
    rng = np.random.default_rng(0)
    return SliceTable(images=rng.random((n, 1, size, size), dtype=np.float32),
                      labels=np.zeros(n, dtype=np.int64), class_names=["a"],
                      source_file=["a.nii"] * n, slice_index=np.arange(n, dtype=np.int32),
                      volume_index=np.zeros(n, dtype=np.int32), split=np.zeros(n, dtype=np.uint8))


def test_failure_mid_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "slices.h5"
    write_dataset(out, _table(4, 8), config={}, versions={}, input_checksums={}, slice_axis="axial")
    before = out.read_bytes()
    with pytest.raises(TypeError):  # images already written when the config attribute fails
        write_dataset(out, _table(50, 16), config={"bad": object()}, versions={},
                      input_checksums={}, slice_axis="axial")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slices.h5"]


_WRITER_SCRIPT = """
import sys, numpy as np
from hpc.data.writer import SliceTable, write_dataset
n = 3000
rng = np.random.default_rng(0)
t = SliceTable(images=rng.random((n, 1, 128, 128), dtype=np.float32), labels=np.zeros(n, dtype=np.int64),
               class_names=['a'], source_file=['a.nii'] * n, slice_index=np.arange(n, dtype=np.int32),
               volume_index=np.zeros(n, dtype=np.int32), split=np.zeros(n, dtype=np.uint8))
write_dataset(sys.argv[1], t, config={}, versions={}, input_checksums={}, slice_axis='axial',
              compression_level=9)
"""


def test_killed_writer_leaves_no_file_at_the_final_path(tmp_path: Path) -> None:
    out = tmp_path / "slices.h5"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(out)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in tmp_path.iterdir() if p.name.endswith(".h5.tmp")]
            if temps and temps[0].stat().st_size > 0:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "writer finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
