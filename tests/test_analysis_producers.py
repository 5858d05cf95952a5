"""The report reads what the real producers write, run now on tiny inputs.

Runs the kernel benchmark CLI (NumPy reference and the study's method), the MPI scaling
driver under a real mpiexec (1 and 2 ranks) and a one-epoch training run, then checks the
derived tables against numbers worked out from the producers' own raw fields: catches
field-name drift between producers, schema and report.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpc.analysis import aggregate, report, tables
from hpc.cli import main
from hpc.records import check_record, read_records

MPIEXEC = Path(sys.executable).parent / "mpiexec"


@pytest.mark.slow
def test_report_from_real_kernel_benchmark(tmp_path):
    rec = tmp_path / "kernels.jsonl"
    assert main(["bench", "kernels", "--ops", "maxpool2d", "matmul", "--backends", "numpy", "study",
                 "--sizes", "16", "32", "--kernel", "2", "--repeats", "2", "--warmup", "1",
                 "--output", str(rec), "--quiet"]) == 0
    assert all(check_record(r) is None for r in read_records([rec]))
    df = aggregate.load_frame([rec])
    kt = tables.kernel_table(df)
    pools = kt[kt["op"] == "maxpool2d"].set_index(["backend", "shape"])
    assert set(pools.index) == {(b, f"1x1x{n}x{n}") for b in ("numpy", "study") for n in (16, 32)}
    assert set(pools["window"]) == {"k2 s2"} and set(pools["device_class"]) == {"cpu"}
    raw = df[df["params.op"] == "maxpool2d"]
    for _, r in raw.iterrows():
        n = r["params.shape"][-1]
        assert r["metrics.bytes_moved"] == (n * n + (n // 2) ** 2) * 4           # float32 in + out
        row = pools.loc[(r["params.backend_name"], f"1x1x{n}x{n}")]
        assert row["bandwidth_gbs"] == pytest.approx(r["metrics.bytes_moved"] / r["metrics.median_s"] / 1e9)
        assert row["bound_fraction"] == pytest.approx(row["bandwidth_gbs"] / row["bound_gbs"])
    mm = kt[kt["op"] == "matmul"]
    assert mm["gflops_fraction"].tolist() == pytest.approx((mm["gflops"] / mm["bound_gflops"]).tolist())
    assert mm["bound_fraction"].isna().all()
    ss = tables.study_speedups(kt)
    assert len(ss) == 4 and set(ss["fastest_backend"]) == {"numpy"}
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
    df = aggregate.load_frame(files)
    assert (df["status"] == "ok").all()
    st = tables.scaling_table(df)
    assert st["ranks"].tolist() == [1, 2] and st["baseline_ranks"].tolist() == [1, 1]
    raw = df.sort_values("params.ranks")
    t1, t2 = raw["metrics.total_s"].tolist()
    assert st["speedup"].tolist() == pytest.approx([1.0, t1 / t2])
    assert st["t_distribute_s"].tolist() == pytest.approx((raw["metrics.read_s"] + raw["metrics.distribute_s"]).tolist())
    assert st["imbalance"].iloc[1] == pytest.approx(max(raw["metrics.rank_compute_s"].iloc[1])
                                                    / (sum(raw["metrics.rank_compute_s"].iloc[1]) / 2))
    assert st["window"].tolist() == ["k2 s2", "k2 s2"] and st["problem"].iloc[0] == "256x256"
    [fit] = tables.law_fits(st)
    # two points (1, 1) and (2, S): Amdahl fits exactly, f = 2 (1 - 1/S), clipped to [0, 1]
    s = t1 / t2
    assert fit.law == "Amdahl" and fit.parallel_fraction == pytest.approx(min(1.0, max(0.0, 2 * (1 - 1 / s))), abs=1e-6)
    pr = tables.per_rank_table(df)
    assert pr["rows"].tolist() == [128, 64, 64]          # output rows of a 256-row image pooled k2 s2
    text = report.build_report(files, tmp_path / "r.html").read_text()
    assert "Amdahl (ours, least-squares fit)" in text and "Per-rank figures" in text


@pytest.mark.slow
def test_report_from_a_real_training_run(tmp_path):
    from hpc.train.synthetic import write_synthetic_dataset
    h5 = write_synthetic_dataset(tmp_path / "syn.h5", n_per_class=12, size=32, seed=1)
    out = tmp_path / "run"
    assert main(["train", "run", "--data", str(h5), "--out-dir", str(out), "--epochs", "1", "--batch-size", "16",
                 "--width", "0.25", "--hidden", "32", "--threads", "1", "--device", "cpu", "--no-progress"]) == 0
    df = aggregate.load_frame([out / "metrics.jsonl"])
    assert (df["status"] == "ok").all()
    final = df[df["kind"] == "training"].iloc[0]
    tt = tables.training_table(df)
    assert tt.loc[0, "test_acc"] == final["metrics.test_accuracy"] and tt.loc[0, "device_class"] == "cpu"
    [(_, names, mat)] = tables.confusion_matrices(df)
    assert mat.sum() == final["params.n_test"] and names == final["params.class_names"]
    assert mat.trace() / mat.sum() == pytest.approx(final["metrics.test_accuracy"])
    et = tables.epoch_table(df)
    assert et["epoch"].tolist() == [1] and et["images_per_s"].iloc[0] == df[df["kind"] == "training_epoch"][
        "metrics.images_per_s"].iloc[0]
