"""Kill-and-resume: a run interrupted by SIGTERM/SIGUSR1 (checkpoint, exit 99) or SIGKILL
(last atomic checkpoint) and resumed ends with bit-identical weights to an uninterrupted run
(deterministic CPU mode)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hpc.records import read_records
from hpc.train.checkpoint import load_checkpoint
from hpc.train.loop import Settings, run_training
from hpc.train.signals import EXIT_PREEMPTED
from hpc.train.synthetic import write_synthetic_dataset

EPOCHS = 10
OPTS = dict(epochs=EPOCHS, batch_size=16, lr=1e-3, width=0.25, hidden=64, threads=1, device="cpu",
            seed=3, deterministic=True, progress=False)


@pytest.fixture(scope="module")
def h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("d") / "syn.h5", n_per_class=24, size=32, seed=2)


@pytest.fixture(scope="module")
def reference(h5: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("ref")
    assert run_training(Settings(data=str(h5), out_dir=str(out), **OPTS)) == 0
    return load_checkpoint(out / "checkpoints" / "last.pt")


def _cli_args(h5: Path, out: Path) -> list[str]:
    args = [sys.executable, "-m", "hpc", "train", "run", "--data", str(h5), "--out-dir", str(out)]
    for k, v in OPTS.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        elif v is False:
            args.append("--no-" + k.replace("_", "-"))
        else:
            args += [flag, str(v)]
    return args


def _epochs_written(out: Path) -> int:
    try:
        return sum(1 for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip())
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_and_resumed_run_matches_uninterrupted(sig: signal.Signals, h5: Path, tmp_path: Path,
                                                           reference: dict) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli_args(h5, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while _epochs_written(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == EXIT_PREEMPTED, err
        assert f"{sig.name} received" in err and "--resume" in err
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert 1 <= state["epoch"] < EPOCHS  # really interrupted mid-way
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp files

    assert run_training(Settings(data=str(h5), out_dir=str(out), resume=True, **OPTS)) == 0
    final = load_checkpoint(out / "checkpoints" / "last.pt")
    assert final["epoch"] == EPOCHS
    for name, tensor in reference["model"].items():
        assert torch.equal(tensor, final["model"][name]), name
    for a, b in zip(reference["optimizer"]["state"].values(), final["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    recs = list(read_records([out / "metrics.jsonl"]))
    assert [r.params.get("epoch") for r in recs if r.kind == "training_epoch"] == list(range(1, EPOCHS + 1))
    assert recs[-1].kind == "training"
