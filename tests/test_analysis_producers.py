"""The report reads what the real producers write (not only hand-written records).

Runs the kernel benchmark CLI (NumPy reference and the study's method, tiny sizes) and the
MPI scaling driver under a real mpiexec (1 and 2 ranks), then aggregates and builds the
report from their JSONL files: catches field-name drift between producers and the report.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpc.analysis import aggregate, report, tables
from hpc.cli import main

MPIEXEC = Path(sys.executable).parent / "mpiexec"


@pytest.mark.slow
def test_report_from_real_kernel_benchmark(tmp_path):
    rec = tmp_path / "kernels.jsonl"
    assert main(["bench", "kernels", "--ops", "maxpool2d", "matmul", "--backends", "numpy", "study",
                 "--sizes", "16", "32", "--kernel", "2", "--repeats", "2", "--warmup", "1",
                 "--output", str(rec), "--quiet"]) == 0
    df = aggregate.load_frame([rec])
    kt = tables.kernel_table(df)
    pools = kt[kt["op"] == "maxpool2d"]
    assert set(pools["backend"]) == {"numpy", "study"}
    assert set(pools["window"]) == {"k2 s2"}
    assert sorted(pools["elements"].unique()) == [16 * 16, 32 * 32]
    assert pools["bound_fraction"].notna().all() and (pools["bound_fraction"] > 0).all()
    mm = kt[kt["op"] == "matmul"]
    assert mm["gflops_fraction"].notna().all() and mm["bound_fraction"].isna().all()
    assert len(tables.study_speedups(kt)) == 4       # study method vs numpy at 2 ops x 2 sizes
    text = report.build_report([rec], tmp_path / "r.html").read_text()
    assert "maxpool2d: time vs size" in text and "k2 s2" in text


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
def test_report_from_real_scaling_driver(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    files = []
    for n in (1, 2):
        out = tmp_path / f"scaling-n{n}.jsonl"
        cmd = [str(MPIEXEC), "-n", str(n), sys.executable, "-m", "hpc", "scale", "--mode", "strong",
               "--ops", "maxpool2d", "--sizes", "256", "--path", "scatter", "--repeats", "1",
               "--warmup", "1", "--workdir", str(tmp_path / "work"), "--output", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        files.append(out)
    st = tables.scaling_table(aggregate.load_frame(files))
    assert st["ranks"].tolist() == [1, 2]
    assert st["baseline_ranks"].tolist() == [1, 1]
    for c in ("t_distribute_s", "t_compute_s", "t_gather_s", "t_total_s", "speedup", "efficiency"):
        assert st[c].notna().all(), c
    assert st["speedup"].iloc[1] == pytest.approx(st["t_total_s"].iloc[0] / st["t_total_s"].iloc[1])
    assert st["window"].tolist() == ["k2 s2", "k2 s2"] and st["problem"].iloc[0] == "256x256"
    [fit] = tables.law_fits(st)
    assert fit.law == "Amdahl" and 0.0 <= fit.parallel_fraction <= 1.0
    text = report.build_report(files, tmp_path / "r.html").read_text()
    assert "Amdahl (ours, least-squares fit)" in text
    assert "Per-rank figures" in text
