"""Run the numba-cuda and study GPU tests under numba's CUDA simulator, in a subprocess.

Why a subprocess: NUMBA_ENABLE_CUDASIM is read once, when numba.cuda is first imported,
and it replaces numba.cuda for the whole process. Setting it in this pytest process (or
in a conftest) would turn every other test's numba.cuda into the simulator too, and the
registry's probe results are cached per process. A child process with the variable set
runs exactly the GPU test files and nothing else sees the simulator.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/test_gpu_numba_cuda.py", "tests/test_gpu_study.py"]


@pytest.mark.slow
def test_cuda_kernels_under_the_simulator() -> None:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *FILES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    assert "skipped" not in summary, f"simulator run skipped tests: {summary}"
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 30, summary
