"""``make gpu-check`` / ``python -m hpc gpu-check``: fails fast without a GPU (this machine
has none; the test skips where one is present), and its plan and report are complete."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpc.kernels import gpu_check

ROOT = Path(__file__).resolve().parent.parent


def _has_gpu() -> bool:
    try:
        gpu_check.find_gpu()
        return True
    except gpu_check.NoGpuError:
        return False


no_gpu_here = pytest.mark.skipif(_has_gpu(), reason="a GPU is present: the fail-fast path cannot be seen")


@no_gpu_here
def test_python_entry_point_fails_fast_with_a_clear_message() -> None:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hpc", "gpu-check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert time.perf_counter() - t0 < 30
    assert proc.returncode == 2
    assert "no NVIDIA GPU found" in proc.stderr and "srun --gres=gpu:1" in proc.stderr
    assert not list(ROOT.glob("docs/benchmarks/gpu-*.md.tmp*"))


@no_gpu_here
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_target_fails_fast_before_any_setup(tmp_path: Path) -> None:
    venv = tmp_path / "venv-that-must-not-be-created"
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "-s", "gpu-check", f"VENV={venv}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert time.perf_counter() - t0 < 30
    assert proc.returncode != 0 and "no NVIDIA GPU found" in proc.stderr
    assert not venv.exists()


def test_a_failing_nvidia_smi_is_reported_as_no_gpu() -> None:
    with pytest.raises(gpu_check.NoGpuError, match="no NVIDIA GPU found.*says"):
        gpu_check.find_gpu(shutil.which("false") or "/bin/false")
    with pytest.raises(gpu_check.NoGpuError, match="failed"):
        gpu_check.find_gpu("/nonexistent/nvidia-smi")


def test_plan_runs_gpu_tests_benchmark_and_amp_channels_last_training(tmp_path: Path) -> None:
    steps = gpu_check.plan("python", tmp_path, install=True)
    assert [s.name for s in steps] == ["install", "tests", "bench", "train"]
    install = " ".join(steps[0].command)
    assert ".[gpu,test]" in install and "torch==" in install
    assert all(t in steps[1].command for t in gpu_check.GPU_TESTS)
    assert "experiments/kernels-gpu.yaml" in steps[2].command
    train = steps[3].command[-1]
    assert "--amp" in train and "--channels-last" in train and "--run gpu" in train
    assert sum(gpu_check.STEP_LIMITS_S.values()) < 8 * 60
    assert [s.name for s in gpu_check.plan("python", tmp_path, install=False)][0] == "tests"
    for f in gpu_check.GPU_TESTS:
        assert (ROOT / f).exists(), f


def test_report_names_device_driver_cuda_and_versions(tmp_path: Path) -> None:
    gpu = {"name": "NVIDIA H200", "driver": "570.1", "memory": "143771 MiB", "uuid": "GPU-x",
           "index": "0", "driver_cuda": "12.8", "count": "1"}
    steps = gpu_check.plan("python", tmp_path, install=False)
    steps[0].status, steps[0].tail = "ok", "SKIPPED [1] x: reason\n40 passed, 1 skipped in 9s"
    text = gpu_check.report_markdown(gpu, {"cupy": "13.6.0", "torch": "2.13.0", "torch_cuda": "12.8"},
                                     steps, "| a |", 0.96, "2026-12-02 10:00", 400.0)
    for needle in ("NVIDIA H200", "driver 570.1", "CUDA version 12.8", "cupy: 13.6.0", "torch_cuda: 12.8",
                   "40 passed", "| a |", "96.00 %", "reached"):
        assert needle in text, needle


def test_training_accuracy_reads_the_training_record(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(
        '{"kind": "training_epoch", "metrics": {"test_accuracy": 0.5}}\n'
        '{"kind": "training", "metrics": {"test_accuracy": 0.973}}\n')
    assert gpu_check.training_accuracy(tmp_path) == 0.973
    assert gpu_check.training_accuracy(tmp_path / "missing") is None
