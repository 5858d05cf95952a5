"""Subjects in real-data inputs: class directories (file = subject), manifests with a
``subject`` column, NIfTI-1 ``.hdr``/``.img`` pairs, and the bad inputs around them."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from hpc.config import load_config
from hpc.data.build import build_dataset
from hpc.data.errors import ManifestError, MissingPairError
from hpc.data.sources import discover, package_dir
from hpc.data.split import TEST, TRAIN, VAL
from hpc.data.volumes import load_volume

ANATOMICAL = package_dir("nibabel") / "tests" / "data" / "anatomical.nii"
SUBJECT_SPLIT = {"method": "subject", "seed": 0, "val": 0.2, "test": 0.2, "test_first_k": 10}


def cfg_for(input_path: Path, **overrides) -> dict:
    """Small real volumes on their own grid (quick), subject split."""
    cfg = copy.deepcopy(load_config()["dataset"])
    cfg.update(input=str(input_path), reference=str(ANATOMICAL), split=dict(SUBJECT_SPLIT))
    cfg.update(overrides)
    return cfg


def build(cfg: dict, out: Path):  # type: ignore[no-untyped-def]
    return build_dataset(cfg, out, progress=False, log=lambda _: None)


def _volume(seed: int) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(ANATOMICAL)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    rng = np.random.default_rng(seed)
    return data * rng.uniform(0.8, 1.2) + rng.normal(0, 1, data.shape).astype(np.float32) * (data > 0), img.affine


def _write(path: Path, seed: int, pair: bool = False) -> Path:
    data, affine = _volume(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save((nib.Nifti1Pair if pair else nib.Nifti1Image)(data, affine), path)
    return path


def _split_of(path: Path) -> dict[str, set[int]]:
    with h5py.File(path) as f:
        subjects = [s.decode() for s in f["subject"][()]]
        split = f["split"][()]
    out: dict[str, set[int]] = {}
    for subject, code in zip(subjects, split.tolist()):
        out.setdefault(subject, set()).add(code)
    return out


# ---- NIfTI-1 pairs ----

def test_hdr_img_pair_converts_like_the_same_volume_as_nii(tmp_path: Path) -> None:
    nii = _write(tmp_path / "a.nii", seed=1)
    hdr = _write(tmp_path / "b.hdr", seed=1, pair=True)
    assert (tmp_path / "b.img").is_file()
    a, b = load_volume(nii), load_volume(hdr)
    assert np.array_equal(a.data, b.data) and a.grid.same_as(b.grid)


def test_hdr_without_its_img_is_rejected_naming_both_paths(tmp_path: Path) -> None:
    hdr = _write(tmp_path / "c" / "x.hdr", seed=2, pair=True)
    (tmp_path / "c" / "x.img").unlink()
    with pytest.raises(MissingPairError) as err:
        load_volume(hdr)
    assert str(hdr) in str(err.value) and str(tmp_path / "c" / "x.img") in str(err.value)


def test_directory_of_pairs_counts_each_pair_once_and_rejects_orphans(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    for c in ("anat", "other"):
        for i in range(5):
            _write(root / c / f"sub{i}.hdr", seed=10 * i + len(c), pair=True)
    (root / "anat" / "sub4.img").unlink()                   # header without data
    (root / "other" / "sub4.hdr").unlink()                  # data without header
    result = build(cfg_for(root), tmp_path / "pairs.h5")
    assert sorted(result.converted) == sorted([f"anat/sub{i}.hdr" for i in range(4)]
                                              + [f"other/sub{i}.hdr" for i in range(4)])
    messages = dict(result.rejected)
    assert "without its data file" in messages[str(root / "anat" / "sub4.hdr")]
    assert str(root / "anat" / "sub4.img") in messages[str(root / "anat" / "sub4.hdr")]
    assert "pair data file without its header" in messages[str(root / "other" / "sub4.img")]
    assert result.subjects_per_class == {"anat": 4, "other": 4}
    with h5py.File(result.output) as f:
        import json
        checksums = json.loads(f.attrs["input_checksums"])
    assert {"anat/sub0.hdr", "anat/sub0.img"} <= checksums.keys()


# ---- directory input: one subject per file, grouped split ----

def test_directory_files_are_subjects_and_no_subject_spans_two_splits(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    for c in ("a", "b"):
        for i in range(5):
            _write(root / c / f"s{i}.nii.gz", seed=100 + 10 * i + ord(c))
    result = build(cfg_for(root), tmp_path / "dir.h5")
    by_subject = _split_of(result.output)
    assert set(by_subject) == {f"{c}/s{i}" for c in "ab" for i in range(5)}
    assert all(len(codes) == 1 for codes in by_subject.values())
    assert result.subjects_per_split == {"train": 6, "val": 2, "test": 2}
    assert {c for codes in by_subject.values() for c in codes} == {TRAIN, VAL, TEST}


# ---- manifests ----

def _manifest(tmp_path: Path, rows: list[tuple[str, str, str]], header: str = "path,label,subject") -> Path:
    m = tmp_path / "manifest.csv"
    m.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return m


def test_manifest_subject_column_keeps_a_subjects_sessions_in_one_split(tmp_path: Path) -> None:
    rows = []
    for c in ("x", "y"):
        for subj in range(4):
            for session in range(2):
                p = _write(tmp_path / "v" / f"{c}{subj}-ses{session}.nii.gz", seed=subj * 7 + session + ord(c))
                rows.append((str(p), c, f"{c}-subj{subj}"))
    result = build(cfg_for(_manifest(tmp_path, rows)), tmp_path / "m.h5")
    assert result.subjects_per_class == {"x": 4, "y": 4} and len(result.converted) == 16
    by_subject = _split_of(result.output)
    assert len(by_subject) == 8 and all(len(codes) == 1 for codes in by_subject.values())


def test_manifest_without_subject_column_makes_each_file_a_subject(tmp_path: Path) -> None:
    rows = [(str(_write(tmp_path / f"{c}{i}.nii", seed=i + ord(c))), c) for c in "pq" for i in range(3)]
    m = tmp_path / "plain.csv"
    m.write_text("path,label\n" + "".join(f"{p},{c}\n" for p, c in rows))
    sources, rejected = discover(m)
    assert not rejected and [s.subject for s in sources] == [str(tmp_path / f"{c}{i}") for c in "pq" for i in range(3)]


def test_manifest_with_an_unknown_column_is_an_error_naming_file_and_column(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.nii", seed=1)
    m = _manifest(tmp_path, [(str(p), "a", "s1")], header="path,label,subjet")
    with pytest.raises(ManifestError, match=r"manifest.csv: unknown column\(s\) \['subjet'\]"):
        discover(m)


def test_subject_in_two_classes_is_rejected_by_name_and_the_rest_converts(tmp_path: Path) -> None:
    rows = [(str(_write(tmp_path / f"{c}{i}.nii", seed=i + ord(c))), c, f"{c}{i}")
            for c in "pq" for i in range(3)]
    clash = _write(tmp_path / "clash.nii", seed=99)
    rows.append((str(clash), "q", "p0"))                      # p0 also appears under class p
    result = build(cfg_for(_manifest(tmp_path, rows), split={**SUBJECT_SPLIT, "val": 0.0}),
                   tmp_path / "c.h5")
    (where, message), = result.rejected
    assert "subject 'p0' has files in 2 classes ['p', 'q']" in message and "manifest.csv" in message
    assert "clash.nii" in message and result.subjects_per_class == {"p": 2, "q": 3}


def test_class_with_too_few_subjects_is_rejected_naming_it_and_the_others_convert(tmp_path: Path) -> None:
    rows = [(str(_write(tmp_path / f"{c}{i}.nii", seed=i + len(c))), c, f"{c}{i}")
            for c, n in (("big", 4), ("small", 2)) for i in range(n)]
    result = build(cfg_for(_manifest(tmp_path, rows)), tmp_path / "few.h5")
    (where, message), = result.rejected
    assert "class 'small' has 2 subject(s) ['small0', 'small1']" in message
    assert "needs at least 3" in message and "manifest.csv" in message
    assert result.class_counts.keys() == {"big"} and result.subjects_per_class == {"big": 4}


def test_copied_volume_in_a_class_dir_keeps_its_own_subject(tmp_path: Path) -> None:
    """Two files with the same name in different classes are different subjects."""
    root = tmp_path / "raw"
    for c in ("a", "b"):
        for i in range(3):
            shutil.copy(_write(tmp_path / "src" / f"{c}{i}.nii", seed=i + ord(c)), (root / c).mkdir(
                parents=True, exist_ok=True) or root / c / f"sub{i}.nii")
    sources, _ = discover(root)
    assert len({s.subject for s in sources}) == 6
