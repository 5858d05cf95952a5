"""The Snakemake workflow's shape: lint, and the jobs a dry run plans (one per sweep point)."""
from __future__ import annotations

import re

import pytest
import yaml

from hpc.config import load_config, load_experiment
from workflow_support import REPO, TINY_CONFIG, job_counts, make_sandbox, snakemake

pytestmark = pytest.mark.slow

GPU_BACKENDS = {"numba-cuda", "cupy", "torch-cuda", "cuda"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return make_sandbox(tmp_path_factory.mktemp("workflow-dag"))


def expected_jobs(config_path) -> dict[str, int]:
    """Jobs per rule, worked out from the experiment files the way the issue specifies:
    one benchmark job per backend, one MPI job per (mode, ranks), one job per training run,
    one inference job per (model, backend)."""
    cfg = load_config(REPO / "config/config.yaml")
    if config_path is not None:
        cfg["experiments"] = yaml.safe_load((REPO / config_path).read_text())["experiments"]
    jobs = {"build_dataset": 1, "aggregate": 1, "report": 1, "history": 1, "all": 1}

    def add(rule, n=1):
        jobs[rule] = jobs.get(rule, 0) + n

    for path in cfg["experiments"]:
        spec = load_experiment(REPO / path)
        if spec["kind"] == "kernels":
            for b in spec["backends"]:
                add("bench_kernels_gpu" if b in GPU_BACKENDS else "bench_kernels")
                if b == "study":  # its GPU round-trip variants: a job of the GPU rule
                    add("bench_kernels_gpu")
        elif spec["kind"] == "scaling":
            for _mode in spec["modes"]:
                for ranks in spec["ranks"]:
                    add("scale_single" if ranks == 1 else "scale_mpi")
        elif spec["kind"] == "compression":  # one job per run, plus the base network's job
            add("compress_run", len(spec["runs"]))
            if any(run["method"] != "conv" for run in spec["runs"]):
                add("compress_base")
        elif spec["kind"] == "inference":
            for _model in spec["models"]:
                for b in spec["backends"]:
                    add("bench_inference_gpu" if b == "torch-cuda" else "bench_inference")
        else:
            for run in spec["runs"]:
                ranks = run.get("ranks", 1)
                add("train_ddp" if ranks > 1 else "train_gpu" if run.get("device") == "cuda" else "train_cpu")
    return jobs


def test_lint_is_clean(sandbox):
    proc = snakemake(sandbox, "--lint", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Lints for" not in proc.stdout, proc.stdout[-3000:]


def test_default_dry_run_plans_one_job_per_sweep_point(sandbox):
    proc = snakemake(sandbox, "-n", "--cores", "2", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = job_counts(proc.stdout)
    assert counts == expected_jobs(None)
    assert counts["scale_mpi"] >= 1 and counts["train_ddp"] >= 1 and counts["bench_kernels"] >= 3
    # MPI points run under the `mpi` launcher with one task per rank; locally that is mpiexec
    block = re.search(r"rule scale_mpi:.*?resources: ([^\n]*)", proc.stdout, re.S).group(1)
    assert "mpi=mpiexec" in block and "tasks=2" in block
    assert "results/scaling/scaling-laptop/weak/n2.jsonl" in proc.stdout
    assert "results/report.html" in proc.stdout


def test_tiny_dry_run(sandbox):
    proc = snakemake(sandbox, "-n", "--cores", "2", "--configfile", TINY_CONFIG, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = job_counts(proc.stdout)
    assert counts == expected_jobs(TINY_CONFIG)
    assert counts == {"build_dataset": 1, "aggregate": 1, "report": 1, "history": 1, "all": 1, "bench_kernels": 2,
                      "bench_kernels_gpu": 1, "scale_single": 1, "scale_mpi": 1, "train_cpu": 1,
                      "train_gpu": 1, "train_ddp": 1}
    gpu = re.search(r"rule train_gpu:.*?resources: ([^\n]*)", proc.stdout, re.S).group(1)
    assert "gpu=1" in gpu


def test_slurm_profile_dry_run_uses_srun_and_requests_gpus(sandbox):
    proc = snakemake(sandbox, "-n", "--profile", "slurm", "--configfile", TINY_CONFIG, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert job_counts(proc.stdout) == expected_jobs(TINY_CONFIG)
    mpi = re.search(r"rule scale_mpi:.*?resources: ([^\n]*)", proc.stdout, re.S).group(1)
    assert "mpi=srun --mpi=pmi2" in mpi and "tasks=2" in mpi and "cpus_per_task=1" in mpi
    assert "--exclusive" in mpi
    ddp = re.search(r"rule train_ddp:.*?resources: ([^\n]*)", proc.stdout, re.S).group(1)
    assert "mpi=srun --mpi=pmi2" in ddp and "tasks=2" in ddp and "gpu=0" in ddp
    # every MPI command checks its rank count, and runs one thread per rank
    for rule in ("scale_mpi", "train_ddp"):
        block = re.search(rf"rule {rule}:.*?\n\n", proc.stdout, re.S).group(0)
        assert "threads: 1" in block or "threads:" not in block, block
    assert proc.stdout.count("--expect-ranks 2") == 2
    gpu = re.search(r"rule bench_kernels_gpu:.*?resources: ([^\n]*)", proc.stdout, re.S).group(1)
    assert "gpu=1" in gpu and "runtime=60" in gpu


def test_invalid_experiment_fails_at_parse_time(sandbox, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: scaling\nname: bad\nranks: [0]\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"experiments: [{bad}]\n")
    proc = snakemake(sandbox, "-n", "--cores", "1", "--configfile", str(cfg), timeout=300)
    assert proc.returncode != 0
    assert str(bad) in proc.stdout and "ranks" in proc.stdout


def test_compression_base_comes_from_the_training_run_it_names(sandbox):
    proc = snakemake(sandbox, "-n", "-p", "--cores", "2", "results/compression/compression-laptop/base/records.jsonl",
                     timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert job_counts(proc.stdout) == {"build_dataset": 1, "train_cpu": 1, "compress_base": 1}
    assert ("--from-checkpoint results/training/training-laptop/cpu/cpu/checkpoints/best.pt"
            in proc.stdout)


def test_compression_from_a_training_run_not_in_the_config_is_named(sandbox, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("experiments: [experiments/compression-laptop.yaml]\n")
    proc = snakemake(sandbox, "-n", "--cores", "1", "--configfile", str(cfg), timeout=300)
    assert proc.returncode != 0
    assert ("experiments/compression-laptop.yaml: base.from_training training-laptop/cpu: no training "
            "experiment 'training-laptop'" in proc.stdout), proc.stdout[-3000:]
