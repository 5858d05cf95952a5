"""Distributed heterogeneous inference under a real ``mpiexec`` at 1-3 ranks: the gathered
scores equal the single-process OpenCL result exactly when every rank runs the same kernels,
and agree within the golden tolerance when torch-CPU and OpenCL ranks are mixed."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inference_opencl_util import ATOL, RTOL, opencl_device_or_skip
from test_parallel_mpi import MPIEXEC, mpirun

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    opencl_device_or_skip()
    from hpc.inference.opencl import OpenCLEngine
    from hpc.models.squeezenet import SqueezeNet11
    d = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    model = SqueezeNet11(num_classes=10).eval()
    torch.save(model.state_dict(), d / "w.pt")
    x = np.random.default_rng(0).standard_normal((5, 3, 40, 40)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "single.npy", OpenCLEngine(model, style="tiled").forward(x))
    with torch.no_grad():
        np.save(d / "torch.npy", model(torch.from_numpy(x)).numpy())
    return {"dir": d, "weights": d / "w.pt", "input": d / "x.npy"}


def _infer(ranks: int, files: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return mpirun(ranks, ["-m", "hpc", "infer", "--model", "squeezenet1_1", "--weights", str(files["weights"]),
                          "--input", str(files["input"]), "--output", str(out), "--style", "tiled",
                          "--expect-ranks", str(ranks), *extra], timeout=300)


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_same_kernels_on_every_rank_equal_the_single_process_result(ranks, files, tmp_path) -> None:
    out = tmp_path / "y.npy"
    proc = _infer(ranks, files, out, "--devices", "opencl")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    np.testing.assert_array_equal(np.load(out), np.load(files["dir"] / "single.npy"))
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("rank ") for line in lines) == ranks
    assert sum(line.startswith("image ") for line in lines) == 5


@pytest.mark.slow
@pytest.mark.parametrize("ranks, devices", [(2, "cpu,opencl"), (3, "opencl,cpu,opencl")])
def test_mixed_torch_and_opencl_ranks_agree_within_tolerance(ranks, devices, files, tmp_path) -> None:
    out = tmp_path / "y.npy"
    proc = _infer(ranks, files, out, "--devices", devices)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    got = np.load(out)
    np.testing.assert_allclose(got, np.load(files["dir"] / "torch.npy"), rtol=RTOL, atol=ATOL)
    assert "calibrated" in proc.stdout and "cpu:" in proc.stdout and "opencl:" in proc.stdout


def test_wrong_rank_count_fails_on_every_rank(files, tmp_path) -> None:
    out = tmp_path / "y.npy"
    proc = mpirun(2, ["-m", "hpc", "infer", "--model", "squeezenet1_1", "--weights", str(files["weights"]),
                      "--input", str(files["input"]), "--output", str(out), "--devices", "opencl",
                      "--expect-ranks", "3"], timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.count("--expect-ranks 3: started as 2 ranks, expected 3") == 2, proc.stderr
    assert not out.exists()
