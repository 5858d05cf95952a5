"""DDP on CPU under the real ``mpiexec -n 2`` (PyPI mpich, gloo backend)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hpc.records import read_records
from hpc.train.checkpoint import load_checkpoint
from hpc.train.synthetic import write_synthetic_dataset

MPIEXEC = Path(sys.executable).parent / "mpiexec"
pytestmark = [pytest.mark.mpi, pytest.mark.slow,
              pytest.mark.skipif(not MPIEXEC.exists(), reason=f"{MPIEXEC} not installed")]


def _mpiexec(n: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "SLURM_"))}
    env.pop("MASTER_ADDR", None)
    env.pop("MASTER_PORT", None)
    return subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "hpc", "train", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_two_rank_ddp_trains_and_only_rank0_writes(tmp_path: Path) -> None:
    h5 = write_synthetic_dataset(tmp_path / "syn.h5", n_per_class=40, size=32, seed=4)
    out = tmp_path / "ddp"
    r = _mpiexec(2, "run", "--ddp", "--data", str(h5), "--out-dir", str(out), "--epochs", "3",
                 "--batch-size", "16", "--width", "0.25", "--hidden", "64", "--device", "cpu",
                 "--baseline-images-per-s", "100", "--no-progress")
    assert r.returncode == 0, r.stderr
    # one final summary line: rank 1 printed and wrote nothing
    assert r.stderr.count("test accuracy") == 1
    recs = list(read_records([out / "metrics.jsonl"]))
    assert [x.kind for x in recs] == ["training_epoch"] * 3 + ["training", "ddp"]
    ddp = recs[-1]
    assert ddp.params["world_size"] == 2 and ddp.params["launcher"] == "mpich"
    assert ddp.metrics["images_per_s"] > 0
    assert ddp.metrics["scaling_efficiency"] == pytest.approx(ddp.metrics["images_per_s"] / 200)
    # metrics were reduced over both ranks: the test confusion matrix counts every test sample once
    final = recs[-2]
    assert sum(map(sum, final.metrics["confusion_matrix"])) == final.params["n_test"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "confusion_matrix.csv",
                                                     "confusion_matrix.png", "metrics.jsonl"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["config"]["world_size"] == 2 and len(state["rng_per_rank"]) == 2
    # each rank has its own dropout RNG stream, and both were saved for the resume
    assert not torch.equal(state["rng_per_rank"][0]["torch"], state["rng_per_rank"][1]["torch"])


def test_ddp_sweep_records_efficiency(tmp_path: Path) -> None:
    h5 = write_synthetic_dataset(tmp_path / "syn.h5", n_per_class=20, size=32, seed=5)
    r = subprocess.run([sys.executable, "-m", "hpc", "train", "ddp-sweep", "--ranks", "1,2",
                        "--out-dir", str(tmp_path / "sw"), "--", "--data", str(h5), "--epochs", "2",
                        "--batch-size", "8", "--width", "0.25", "--hidden", "32", "--device", "cpu",
                        "--no-progress"], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr
    recs = list(read_records([tmp_path / "sw" / "ddp_scaling.jsonl"]))
    assert [x.params["world_size"] for x in recs] == [1, 2]
    one, two = recs
    assert one.metrics["scaling_efficiency"] == 1.0
    assert two.metrics["scaling_efficiency"] == pytest.approx(
        two.metrics["images_per_s"] / (2 * one.metrics["images_per_s"]))
    assert two.metrics["speedup"] == pytest.approx(two.metrics["images_per_s"] / one.metrics["images_per_s"])


def test_allreduce_timing_under_mpiexec() -> None:
    r = _mpiexec(2, "ddp-allreduce", "--numel", "100000", "--repeats", "3")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 1  # rank 0 only
    import json
    res = json.loads(lines[0])
    assert res["world_size"] == 2 and res["bytes"] == 400000 and res["median_s"] > 0
