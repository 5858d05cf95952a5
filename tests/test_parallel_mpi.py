"""hpc.parallel under a real MPI: ``mpiexec -n P`` (PyPI mpich's hydra, oversubscribing the
CI machine's 2 cores without extra flags) running programs in tests/mpi_programs and the
``hpc scale`` CLI. Several checks are batched per launch: each launch pays process start,
MPI init and numba/OpenCL start-up.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "mpi_programs"
BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")

pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)      # "no GPU" must mean no GPU here
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env.update(extra)
    return env


def mpirun(n: int, args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], cwd=ROOT, env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


GROUPS = {1: "pool,batch,matmul", 2: "pool,batch,matmul,hetero", 3: "pool,batch,matmul,hetero",
          4: "pool,batch,matmul,hetero"}


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_distributed_equals_single_process(ranks, tmp_path):
    """Images and batches, odd sizes, k > s, padding, ceil_mode, uneven and weighted splits,
    both data paths, per-rank backends, matmul 1-D and SUMMA (4 ranks as 2x2): all exact."""
    proc = mpirun(ranks, [str(PROGRAMS / "check_distributed.py"), str(tmp_path), GROUPS[ranks]])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith(f"P={ranks} ")]
    assert summary and summary[0].endswith(" 0 failures"), proc.stdout
    assert int(summary[0].split(": ")[1].split()[0]) > 50       # the checks really ran


@pytest.mark.slow
def test_cpu_and_simulated_cuda_ranks_agree(tmp_path):
    """A CPU rank and a numba-cuda rank (numba's CUDA simulator: no GPU in CI) together."""
    proc = mpirun(2, [str(PROGRAMS / "check_distributed.py"), str(tmp_path), "cuda"],
                  NUMBA_ENABLE_CUDASIM="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "0 failures" in proc.stdout


@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_failing_rank_ends_the_job_quickly(mode, tmp_path):
    out = tmp_path / "never.jsonl"
    start = time.monotonic()
    proc = mpirun(3, [str(PROGRAMS / "inject_failure.py"), mode, str(out)], timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 60, f"job took {elapsed:.0f}s to end after one rank failed"
    assert not out.exists(), "results must only be written when every rank succeeded"
    if mode == "raise":
        assert "rank 1/3 on" in proc.stderr and "RuntimeError: injected failure on purpose" in proc.stderr
        assert "Traceback" in proc.stderr and "aborting all ranks" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "2", "--ops", "maxpool2d"], "more ranks than output rows"),
    (["--devices", "tpu"], "unknown device 'tpu'"),
    (["--devices", "cpu,cpu,cuda"], "device 'cuda' requested but no backend for it can run here"),
])
def test_argument_errors_reported_by_every_rank(argv, message, tmp_path):
    out = tmp_path / "r.jsonl"
    proc = mpirun(3, ["-m", "hpc", "scale", "--path", "scatter", "--workdir", str(tmp_path),
                      "--output", str(out), *argv], timeout=120)
    assert proc.returncode != 0
    # every rank prints it as its first output; the launcher may interleave the ranks'
    # lines on the shared stderr pipe, so count occurrences rather than lines
    assert proc.stderr.count("hpc scale: error:") == 3, proc.stderr
    assert proc.stderr.startswith("hpc scale: error:"), proc.stderr
    assert proc.stderr.count(message) == 3, proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_scale_driver_writes_one_record_per_point(tmp_path):
    """The real driver on 2 heterogeneous ranks (numba CPU + OpenCL when PoCL is there)."""
    from hpc.kernels.registry import backend_info
    devices = "cpu,opencl" if backend_info("opencl").available else "cpu"
    out = tmp_path / "scale.jsonl"
    proc = mpirun(2, ["-m", "hpc", "scale", "--mode", "strong,weak", "--ops", "maxpool2d,matmul",
                      "--sizes", "96", "--matmul-sizes", "32", "--path", "scatter,parallel-io",
                      "--devices", devices, "--split", "weighted", "--repeats", "2", "--warmup", "1",
                      "--workdir", str(tmp_path / "work"), "--output", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    # 2 modes x (1 pool size x 2 paths + 1 matmul size x 2 paths x 2 algorithms)
    assert len(records) == 12
    for rec in records:
        assert rec["kind"] == "scaling" and rec["status"] == "ok"
        p, m = rec["params"], rec["metrics"]
        expected_rows = {"maxpool2d": {"strong": 96, "weak": 192}, "matmul": {"strong": 32, "weak": 64}}
        assert p["shape"][0] == expected_rows[p["op"]][p["mode"]]     # weak: rows grow with ranks
        assert p["ranks"] == 2 and len(p["hosts"]) == 2 and p["mpi_library_version"]
        assert p["devices"] == devices.split(",") * (2 if devices == "cpu" else 1)
        rc = m["rank_compute_s"]
        assert len(rc) == 2 and m["load_imbalance"] == pytest.approx(max(rc) / (sum(rc) / 2))
        assert m["total_s"] == pytest.approx(float(np.median(m["total_s_repeats"])))
        assert m["compute_s"] == pytest.approx(float(np.median(m["compute_s_repeats"]))) and m["compute_s"] > 0
        if p["path"] == "scatter":
            assert m["distribute_s"] > 0 and m["gather_s"] > 0
        elif p.get("algorithm") == "summa":  # its panel broadcasts are distribution
            assert m["distribute_s"] > 0 and m["read_s"] > 0 and m["write_s"] > 0
        else:
            assert m["distribute_s"] == 0 and m["read_s"] > 0 and m["write_s"] > 0
        if p["op"] == "maxpool2d":
            assert m["copy_bandwidth_gbs"] > 0 and sum(p["rows_per_rank"]) == p["shape"][0] // 2
            assert p["weights"] is not None and len(p["weights"]) == 2
            if devices == "cpu,opencl":
                assert p["emulated"] == [False, True]
        assert rec["provenance"]
    modes = {(r["params"]["op"], r["params"]["mode"], r["params"]["path"], r["params"].get("algorithm"))
             for r in records}
    assert len(modes) == 12


@pytest.mark.slow
def test_parallel_io_output_is_one_virtual_dataset(tmp_path):
    """No MPI h5py here: per-rank part files joined by a virtual dataset that reads back as
    the full result, and stays valid when its directory moves (relative source paths)."""
    import h5py
    import numpy as np

    from hpc.kernels import api
    x = np.random.default_rng(5).standard_normal((50, 40)).astype(np.float32)
    src = tmp_path / "a" / "in.h5"
    src.parent.mkdir()
    with h5py.File(src, "w") as fh:
        fh["images"] = x
    script = ("import sys; from hpc.parallel import distributed_avgpool2d as f; "
              "f(sys.argv[1] + ':/images', 3, 2, 1, path='parallel-io', backend='numpy', "
              "out=sys.argv[2] + ':/pooled')")
    out = tmp_path / "a" / "out.h5"
    proc = mpirun(3, ["-c", script, str(src), str(out)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)
    with h5py.File(moved / "out.h5", "r") as fh:
        dset = fh["pooled"]
        assert dset.is_virtual and len(dset.virtual_sources()) == 3
        np.testing.assert_array_equal(dset[...], api.avgpool2d(x, 3, 2, 1, backend="numpy"))
    assert sorted(p.name for p in (moved / "out.h5.parts").iterdir()) == \
        ["part-00000.h5", "part-00001.h5", "part-00002.h5"]
