"""End-to-end training on a small synthetic HDF5 file: learning, outputs, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hpc.records import read_records
from hpc.train.checkpoint import load_checkpoint
from hpc.train.loop import Settings, run_training
from hpc.train.synthetic import write_synthetic_dataset

TINY = ["--batch-size", "32", "--width", "0.25", "--hidden", "128", "--threads", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("d") / "syn.h5", n_per_class=60, size=32,
                                   seed=1)


@pytest.fixture
def hpc(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``python -m hpc ...`` in this process (the CLI's real main; saves interpreter
    start-up) and return (exit code, stderr)."""
    from hpc.cli import main

    def _run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        rc = main(list(args))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), rc, captured.out, captured.err)
    return _run


def tiny(h5: Path, out: Path, **kw) -> Settings:
    base = dict(data=str(h5), out_dir=str(out), epochs=8, batch_size=32, lr=1e-3, width=0.25,
                hidden=128, threads=1, device="cpu", progress=False, seed=0)
    base.update(kw)
    return Settings(**base)


def test_training_learns_and_writes_outputs(h5: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_training(tiny(h5, out)) == 0
    recs = list(read_records([out / "metrics.jsonl"]))
    assert [r.kind for r in recs] == ["training_epoch"] * 8 + ["training"]
    final = recs[-1].metrics
    assert final["test_accuracy"] >= 0.7  # chance is 1/3
    assert set(final["precision"]) == {"class0", "class1", "class2"}
    assert sum(map(sum, final["confusion_matrix"])) == recs[-1].params["n_test"]
    assert final["images_per_s"] > 0 and final["wall_s"] > 0
    n = recs[-1].params["n_test"]
    assert final["test_count"] == n and final["test_correct"] == round(final["test_accuracy"] * n)
    low, high = final["test_accuracy_ci95"]
    assert 0 <= low <= final["test_accuracy"] <= high <= 1
    # synthetic data: one source file (= subject) per class, so three test subjects
    assert final["subject_test_count"] == 3 and 0 <= final["subject_test_correct"] <= 3
    assert recs[-1].params["split"] == "slice"
    assert recs[0].metrics["val_accuracy"] is not None and recs[0].provenance["config"]["lr"] == 1e-3
    assert (out / "confusion_matrix.csv").read_text().splitlines()[0] == "true\\predicted,class0,class1,class2"
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"last.pt", "best.pt"}


def test_refuses_nonempty_out_dir(h5: Path, tmp_path: Path, hpc) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    r = hpc("train", "run", "--data", str(h5), "--out-dir", str(out), "--epochs", "1", *TINY)
    assert r.returncode == 2 and "not empty" in r.stderr and "--overwrite" in r.stderr
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("case", ["missing", "not-hdf5", "no-train-class", "batch", "cuda", "experiment"])
def test_bad_input_clear_errors(case: str, h5: Path, tmp_path: Path, hpc) -> None:
    args = ["--data", str(h5), "--out-dir", str(tmp_path / "o"), "--epochs", "1", *TINY]
    if case == "missing":
        args[1] = str(tmp_path / "absent.h5")
        expect = "absent.h5: dataset file not found"
    elif case == "not-hdf5":
        (tmp_path / "x.h5").write_text("nope")
        args[1] = str(tmp_path / "x.h5")
        expect = "x.h5: not an HDF5 file"
    elif case == "no-train-class":
        args[1] = str(write_synthetic_dataset(tmp_path / "h.h5", n_per_class=6, empty_train_class=2))
        expect = "['class2'] have no training samples"
    elif case == "batch":
        args += ["--batch-size", "10000"]
        expect = "--batch-size 10000 is larger than the training set (126 samples"
    elif case == "cuda":
        if torch.cuda.is_available():
            pytest.skip("a CUDA GPU is present; the error case cannot be exercised")
        args += ["--device", "cuda"]
        expect = "--device cuda: no CUDA GPU is available here"
    else:
        exp = tmp_path / "e.yaml"
        exp.write_text("kind: training\nname: e\nruns:\n  - {name: a, epochs: 0}\n")
        args += ["--experiment", str(exp)]
        expect = "runs.0.epochs: 0 is less than the minimum of 1"
    r = hpc("train", "run", *args)
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "metrics.jsonl").exists()


def test_stale_resume_moves_old_run_aside_and_starts_fresh(h5: Path, tmp_path: Path, hpc) -> None:
    """--resume over a run with other settings (or another model) keeps the old run under
    a new name and trains from scratch, saying why, instead of mixing two runs."""
    out = tmp_path / "r"
    assert run_training(tiny(h5, out, epochs=1)) == 0
    r = hpc("train", "run", "--data", str(h5), "--out-dir", str(out), "--epochs", "2", "--resume",
            "--lr", "0.01", "--batch-size", "32", *TINY)
    assert r.returncode == 0, r.stderr
    assert "checkpoint is from a different configuration" in r.stderr
    assert "lr (0.001 in checkpoint, 0.01 now)" in r.stderr and "starting a new run" in r.stderr
    (aside,) = tmp_path.glob("r.stale-*")
    assert load_checkpoint(aside / "checkpoints" / "last.pt")["config"]["lr"] == 0.001
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["config"]["lr"] == 0.01 and len(state["history"]) == 2   # fresh: epochs 1 and 2
    r = hpc("train", "run", "--data", str(h5), "--out-dir", str(out), "--epochs", "2", "--resume",
            "--lr", "0.01", "--batch-size", "32", *[a if a != "0.25" else "0.5" for a in TINY])
    assert r.returncode == 0 and "different model" in r.stderr
    assert len(list(tmp_path.glob("r.stale-*"))) == 2


def test_resume_over_a_rebuilt_dataset_starts_fresh(h5: Path, tmp_path: Path, hpc) -> None:
    """A dataset built from other inputs/options is another run: its content hash (input
    checksums and conversion options) is part of the run's identity."""
    other = write_synthetic_dataset(tmp_path / "other.h5", n_per_class=60, size=32, seed=99)
    out = tmp_path / "r"
    assert run_training(tiny(h5, out, epochs=1)) == 0
    r = hpc("train", "run", "--data", str(other), "--out-dir", str(out), "--epochs", "1", "--resume",
            "--batch-size", "32", *TINY)
    assert r.returncode == 0, r.stderr
    assert "data.content" in r.stderr and "starting a new run" in r.stderr
    assert len(list(tmp_path.glob("r.stale-*"))) == 1


def test_experiment_file_and_lr_find(h5: Path, tmp_path: Path, hpc) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"kind: training\nname: t\ndata: {h5}\nruns:\n"
                   "  - {name: cpu, device: cpu, epochs: 1, batch_size: 32, width: 0.25, hidden: 64, threads: 1}\n"
                   "  - {name: ddp, device: cpu, ranks: 2, epochs: 1}\n")
    r = hpc("train", "run", "--experiment", str(exp), "--run", "cpu", "--out-dir", str(tmp_path / "o"),
            "--no-progress")
    assert r.returncode == 0, r.stderr
    rec = [x for x in read_records([tmp_path / "o" / "metrics.jsonl"]) if x.kind == "training"][0]
    assert rec.params["batch_size"] == 32 and rec.params["width"] == 0.25 and rec.name == "cpu"
    r = hpc("train", "run", "--experiment", str(exp), "--run", "ddp", "--out-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "mpiexec -n 2" in r.stderr
    r = hpc("train", "lr-find", "--experiment", str(exp), "--run", "cpu", "--out-dir",
            str(tmp_path / "lr"), "--num-iter", "30", "--end-lr", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    # known value: the steepest descent of the smoothed curve the run wrote (recomputed here)
    from hpc.train.lr_find import suggest
    rows = [line.split(",") for line in (tmp_path / "lr" / "lr_find.csv").read_text().splitlines()[1:]]
    lrs, smoothed = [float(r[0]) for r in rows], [float(r[2]) for r in rows]
    assert summary["suggested_lr"] == pytest.approx(suggest(lrs, smoothed)[0], rel=1e-5)
    assert lrs[0] == pytest.approx(1e-7) and lrs == sorted(lrs)  # the requested grid, ascending
    assert (tmp_path / "lr" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "lr" / "lr_find.csv").read_text().splitlines()) == summary["steps"] + 1
