"""``python -m hpc data build|info|export-png``: exit codes, messages, printed summary, PNGs."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from hpc.cli import main
from hpc.data.sources import package_dir
from hpc.records import read_records

REPO = Path(__file__).resolve().parent.parent
ANATOMICAL = package_dir("nibabel") / "tests" / "data" / "anatomical.nii"


@pytest.fixture(scope="module")
def sample_h5(tmp_path_factory) -> Path:
    """The default dataset, exactly as `make run` builds it (48 virtual subjects)."""
    out = tmp_path_factory.mktemp("cli") / "slices.h5"
    rc = main(["data", "build", "--output", str(out), "--records", "", "--no-progress"])
    assert rc == 0
    return out


def _slice_split(tmp_path: Path) -> list[str]:
    """--config for trees of one file (= one subject) per class: the per-slice split."""
    cfg = tmp_path / "slice-split.yaml"
    cfg.write_text("dataset:\n  split:\n    method: slice\n")
    return ["--config", str(cfg)]


def _tree_with_one_bad_file(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    (root / "anat").mkdir(parents=True)
    shutil.copy(ANATOMICAL, root / "anat" / "good.nii")
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), dtype=np.float32), np.eye(4)), root / "anat" / "zeros.nii.gz")
    return root


def test_build_reports_counts_and_exits_zero_despite_a_rejected_file(tmp_path: Path, capsys) -> None:
    root = _tree_with_one_bad_file(tmp_path)
    records = tmp_path / "records.jsonl"
    rc = main(["data", "build", *_slice_split(tmp_path), "--input", str(root), "--output", str(tmp_path / "d.h5"),
               "--records", str(records), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "rejected: " in err and "zeros.nii.gz: every voxel is zero" in err
    assert "converted 1 file(s) into" in err and "rejected 1" in err
    (rec,) = list(read_records([records]))
    assert rec.kind == "dataset" and rec.status == "failed"
    assert rec.metrics["n_converted"] == 1 and rec.metrics["n_rejected"] == 1
    assert rec.metrics["file_size_bytes"] == (tmp_path / "d.h5").stat().st_size


def test_build_strict_exits_one_and_writes_nothing(tmp_path: Path, capsys) -> None:
    root = _tree_with_one_bad_file(tmp_path)
    rc = main(["data", "build", *_slice_split(tmp_path), "--input", str(root), "--output", str(tmp_path / "d.h5"),
               "--records", "", "--strict", "--no-progress"])
    assert rc == 1 and not (tmp_path / "d.h5").exists()
    assert "strict mode" in capsys.readouterr().err


def test_build_exits_one_when_nothing_converted(tmp_path: Path, capsys) -> None:
    root = _tree_with_one_bad_file(tmp_path)
    (root / "anat" / "good.nii").unlink()
    rc = main(["data", "build", *_slice_split(tmp_path), "--input", str(root), "--output", str(tmp_path / "d.h5"),
               "--records", "", "--no-progress"])
    assert rc == 1 and "nothing converted" in capsys.readouterr().err


def test_empty_input_directory_is_a_one_line_user_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "raw").mkdir()
    rc = main(["data", "build", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "d.h5"),
               "--records", "", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("hpc data: error: ") and "raw: no NIfTI files" in err
    assert len(err.splitlines()) == 1


def test_unwritable_output_is_a_one_line_user_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    rc = main(["data", "build", "--output", str(tmp_path / "file" / "d.h5"), "--records", "",
               "--no-progress"])
    assert rc == 2 and "cannot create output directory" in capsys.readouterr().err


def test_invalid_config_value_is_reported_with_its_key(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("dataset:\n  slice_axis: diagonal\n")
    rc = main(["data", "build", "--config", str(cfg), "--output", str(tmp_path / "d.h5")])
    assert rc == 2 and "dataset.slice_axis" in capsys.readouterr().err


def test_info_prints_shape_class_counts_splits_and_provenance(sample_h5: Path, capsys) -> None:
    assert main(["data", "info", str(sample_h5)]) == 0
    out = capsys.readouterr().out
    with h5py.File(sample_h5) as f:
        n = f["labels"].shape[0]
        n_test = int(np.count_nonzero(f["split"][()] == 2))
        n_anat_train = int(np.count_nonzero((f["labels"][()] == 0) & (f["split"][()] == 0)))
    assert f"images: ({n}, 1, 32, 32) float32, slice axis axial, 4 classes" in out
    anat_row = next(line for line in out.splitlines() if line.startswith("anatomical"))
    assert anat_row.split()[1] == str(n_anat_train)
    total_row = next(line for line in out.splitlines() if line.startswith("total"))
    assert total_row.split()[3:] == [str(n_test), str(n)]
    assert "nibabel" in out and "h5py" in out
    assert "nilearn/datasets/data/image_10426.nii.gz" in out


def test_info_on_the_default_dataset_shows_subjects_per_split_without_overlap(sample_h5: Path, capsys) -> None:
    assert main(["data", "info", str(sample_h5)]) == 0
    out = capsys.readouterr().out
    subjects_part = out.split("subjects per class and split:")[1]
    rows = {line.split()[0]: [int(v) for v in line.split()[1:5]]
            for line in subjects_part.splitlines()[2:7]}
    for name in ("anatomical", "grey_matter", "white_matter", "functional"):
        train, val, test, total = rows[name]
        assert total >= 12 and min(train, val, test) >= 1 and train + val + test == total
    assert "subjects in more than one split: none" in out
    assert "split:         subject seed=0 (grouped by subject)" in out
    with h5py.File(sample_h5) as f:
        subjects = np.array([s.decode() for s in f["subject"][()]])
        split = f["split"][()]
    assert all(len(set(split[subjects == s])) == 1 for s in set(subjects))    # checked, not just printed
    assert int(np.count_nonzero(split == 2)) >= 200                           # >= 200 held-out test slices


def test_info_on_a_non_dataset_file_is_a_user_error(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "x.h5"
    with h5py.File(bogus, "w") as f:
        f["data"] = np.zeros(3)
    assert main(["data", "info", str(bogus)]) == 2
    assert "x.h5: not an hpc-slices dataset" in capsys.readouterr().err


def test_export_png_writes_one_folder_per_class_with_the_slice_pixels(sample_h5: Path, tmp_path: Path) -> None:
    out = tmp_path / "png"
    assert main(["data", "export-png", str(sample_h5), "--out", str(out), "--split", "test",
                 "--scale", "1"]) == 0
    with h5py.File(sample_h5) as f:
        names = [c.decode() for c in f["class_names"][()]]
        split, labels = f["split"][()], f["labels"][()]
        i = int(np.flatnonzero(split == 2)[0])
        image = f["images"][i, 0]
        src = f["source_file"][i].decode()
        subject = f["subject"][i].decode()
        k, v = int(f["slice_index"][i]), int(f["volume_index"][i])
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert sum(1 for _ in out.rglob("*.png")) == int(np.count_nonzero(split == 2))
    stem = Path(src).name.removesuffix(".nii.gz")
    png = np.asarray(Image.open(out / names[labels[i]] / f"{subject}_{stem}_v{v:03d}_s{k:03d}.png"))
    expected = np.round((image - image.min()) / (image.max() - image.min()) * 255)
    assert png.shape == (32, 32) and np.abs(png.astype(float) - expected).max() <= 1


def test_module_entry_point_runs_data_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "hpc", "data", "build", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--strict" in proc.stdout
