"""MPI entry points refuse a launch with the wrong number of ranks (--expect-ranks), and
ranks bind their GPU by node-local rank before any CUDA context."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpc.parallel.devices import bind_gpu_to_local_rank, local_rank_from_env
from hpc.parallel.launch import LaunchError, check_rank_count, rank_count_problem

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
SCALING = "tests/workflow/scaling-tiny.yaml"


def _mpiexec(n: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, "-m", "hpc", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_rank_count_messages():
    assert rank_count_problem(4, 4) is None and rank_count_problem(3, None) is None
    one = rank_count_problem(1, 4)
    assert one.startswith("started as 1 rank, expected 4: srun started independent processes")
    assert "srun --mpi=" in one
    assert rank_count_problem(3, 4).startswith("started as 3 ranks, expected 4")
    with pytest.raises(LaunchError, match="expected 2"):
        check_rank_count(1, 2)


@pytest.mark.mpi
def test_scale_under_mpiexec_with_other_rank_count_fails_on_every_rank(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    proc = _mpiexec(2, "scale", "--experiment", str(repo / SCALING), "--workdir", str(tmp_path / "w"),
                    "--output", str(tmp_path / "o.jsonl"), "--expect-ranks", "3", cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("started as 2 ranks, expected 3") == 2, proc.stderr
    assert "rank 0:" in proc.stderr and "rank 1:" in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.mpi
def test_single_rank_launch_of_a_multi_rank_point_names_the_mpi_plugin(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    proc = _mpiexec(1, "scale", "--experiment", str(repo / SCALING), "--workdir", str(tmp_path / "w"),
                    "--output", str(tmp_path / "o.jsonl"), "--expect-ranks", "2", cwd=tmp_path)
    assert proc.returncode != 0
    assert "started as 1 rank, expected 2: srun started independent processes" in proc.stderr


@pytest.mark.mpi
def test_ddp_training_checks_its_rank_count(tmp_path):
    proc = _mpiexec(2, "train", "run", "--ddp", "--data", str(tmp_path / "none.h5"), "--out-dir",
                    str(tmp_path / "o"), "--device", "cpu", "--expect-ranks", "3", cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("started as 2 ranks, expected 3") == 2, proc.stderr


def test_local_rank_from_launcher_variables():
    assert local_rank_from_env({"SLURM_LOCALID": "3", "MPI_LOCALRANKID": "1"}) == 3
    assert local_rank_from_env({"MPI_LOCALRANKID": "1"}) == 1
    assert local_rank_from_env({"OMPI_COMM_WORLD_LOCAL_RANK": "2"}) == 2
    assert local_rank_from_env({}) is None


def test_gpu_binding_by_local_rank_restricts_visibility_to_one_gpu():
    env = {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    assert bind_gpu_to_local_rank(5, env, gpu_ids=["4", "5", "6", "7"]) == "5"
    assert env["CUDA_VISIBLE_DEVICES"] == "5"
    env = {}
    assert bind_gpu_to_local_rank(1, env, gpu_ids=["0", "1"]) == "1" and env["CUDA_VISIBLE_DEVICES"] == "1"
    env = {}
    assert bind_gpu_to_local_rank(0, env, gpu_ids=[]) is None and env == {}


def test_gpu_binding_happens_before_cuda_is_initialised():
    """In a fresh process: bind, then import torch; CUDA stays uninitialised until used, and
    torch sees exactly the one bound device (or none on a machine without GPUs)."""
    code = ("import os\nfrom hpc.parallel.devices import bind_gpu_to_local_rank, cuda_initialized\n"
            "os.environ.pop('CUDA_VISIBLE_DEVICES', None)\n"
            "got = bind_gpu_to_local_rank(1, gpu_ids=['0', '1'])\n"
            "import torch\nassert not cuda_initialized()\n"
            "print(got, os.environ['CUDA_VISIBLE_DEVICES'], torch.cuda.device_count() <= 1)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "True"]
