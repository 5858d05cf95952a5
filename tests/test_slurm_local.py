"""The workflow on a real one-node SLURM cluster (slurm/local-cluster.sh: munged, slurmctld,
slurmd from Debian's slurm-wlm), through `snakemake --profile` and through `sbatch`.

Needs root and Debian (apt-get installs slurm-wlm and munge when missing); skipped with
the reason otherwise. The cluster is started once for this module and stopped at its end.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workflow_support import (REPO, TINY_CONFIG, check_tiny_results, job_env, make_sandbox,
                              read_jsonl, snakemake)

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.mpi]

CLUSTER = REPO / "slurm" / "local-cluster.sh"
# Epochs of the requeue test's run: enough that the signal (sent after the first epoch)
# arrives while it still trains, few enough to stay quick (a tiny network: ~1 s each).
EPOCHS = 15


def _skip_reason() -> str | None:
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "the local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (it starts munged, slurmctld and slurmd)"
    have = all(shutil.which(t) for t in ("slurmctld", "slurmd", "munged", "sbatch"))
    if not have and not shutil.which("apt-get"):
        return "slurm-wlm/munge are not installed and there is no apt-get to install them (not Debian)"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    start = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=900)
    if start.returncode != 0:
        subprocess.run([str(CLUSTER), "stop"], capture_output=True, timeout=120)
        pytest.fail(f"local-cluster.sh start failed:\n{start.stdout}\n{start.stderr}")
    env = {}
    for line in start.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    assert "SLURM_CONF" in env, start.stdout
    status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "idle" in status.stdout, status.stdout
    try:
        yield env
    finally:
        stop = subprocess.run([str(CLUSTER), "stop"], capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, stop.stderr
        status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True, timeout=60)
        assert status.returncode != 0 and "not running" in status.stdout


def _wait_for_job(jobid: str, env: dict[str, str], timeout: float = 600) -> str:
    """Poll squeue (no accounting here, so no sacct) until the job has ended; its state."""
    deadline = time.monotonic() + timeout
    state = "?"
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "--states=all", "-h", "-j", jobid, "-o", "%T"],
                             capture_output=True, text=True, env=job_env(env), timeout=60)
        state = out.stdout.strip() or state
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return state
        time.sleep(2)
    raise AssertionError(f"SLURM job {jobid} still {state} after {timeout} s")


def _wait_for_step_teardown(jobid: str, timeout: float = 60) -> None:
    """Until no slurmstepd of the job's batch step is left (then a short grace period)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", f"slurmstepd: \\[{jobid}\\.batch\\]"],
                              capture_output=True, text=True)
        if left.returncode != 0:
            time.sleep(2)
            return
        time.sleep(0.5)
    raise AssertionError(f"batch step of job {jobid} still running {timeout} s after its requeue")


def _sbatch(sandbox: Path, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], cwd=sandbox, env=job_env(env),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def test_tiny_workflow_through_the_slurm_profile(cluster, tmp_path):
    sandbox = make_sandbox(tmp_path / "wf")
    # The repository's profile, adapted the way its comments say for a cluster like this
    # one: no GPUs (gpu: 0 -> GPU points run on a CPU node and record themselves as
    # skipped) and 2-CPU nodes; quicker first status check.
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    for rule in ("bench_kernels_gpu", "train_gpu"):
        profile["set-resources"][rule]["gpu"] = 0
    # one CPU per job, so that two jobs share the 2-CPU node at a time
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    profile["slurm-init-seconds-before-status-checks"] = 5
    (sandbox / "profile").mkdir()
    (sandbox / "profile/config.yaml").write_text(yaml.safe_dump(profile))

    proc = snakemake(sandbox, "--profile", "profile", "--configfile", TINY_CONFIG,
                     timeout=1500, env=cluster)
    assert proc.returncode == 0, proc.stdout[-5000:]
    check_tiny_results(sandbox)
    # every point was a SLURM job: the executor's per-job logs exist, and the MPI point ran
    # under srun inside its own 2-task allocation
    slurm_logs = sandbox / "results/logs/slurm"
    for rule in ("build_dataset", "bench_kernels", "scale_single", "scale_mpi", "train_cpu", "train_ddp"):
        assert list((slurm_logs / f"rule_{rule}").rglob("*.log")), f"no SLURM job log for {rule}"
    log = (sandbox / "results/logs/scaling/scaling-tiny/strong/n2.log").read_text()
    assert "$ srun -n 2 python -m hpc scale" in log
    (rec,) = read_jsonl(sandbox / "results/scaling/scaling-tiny/strong/n2.jsonl")
    assert rec["status"] == "ok" and rec["provenance"].get("slurm_job_id")
    ddp = [r for r in read_jsonl(sandbox / "results/training/training-tiny/ddp/ddp2/records.jsonl")
           if r["kind"] == "ddp"]
    assert ddp and ddp[0]["provenance"].get("slurm_job_id")


def test_scaling_sbatch_job_runs_mpi_ranks_with_srun(cluster, tmp_path):
    sandbox = make_sandbox(tmp_path / "sb")
    jobid = _sbatch(sandbox, cluster, "--ntasks=2", "--mem-per-cpu=1000", "--time=00:10:00",
                    "--output=scaling-%j.out", "slurm/jobs/scaling.sbatch",
                    "tests/workflow/scaling-tiny.yaml")
    state = _wait_for_job(jobid, cluster)
    out = (sandbox / f"scaling-{jobid}.out").read_text()
    assert state == "COMPLETED", out
    for ranks in (1, 2):
        (rec,) = read_jsonl(sandbox / f"results/scaling/scaling-tiny/strong/n{ranks}.jsonl")
        assert rec["status"] == "ok", rec.get("error")
        assert rec["provenance"]["slurm_job_id"] == jobid
    assert "strong, 2 ranks" in out


def test_train_sbatch_job_checkpoints_on_usr1_and_requeues(cluster, tmp_path):
    """The pre-timeout signal (what --signal=B:USR1@120 sends): the job checkpoints, exits
    99, requeues itself, and the second start resumes and finishes the run."""
    sandbox = make_sandbox(tmp_path / "tr")
    data = sandbox / "results/dataset/slices.h5"
    build = subprocess.run(["python", "-m", "hpc", "data", "build", "--output", str(data), "--records", "",
                            "--no-progress"], cwd=sandbox, env=job_env(), capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stderr
    env = dict(cluster, DEVICE="cpu",
               EXTRA_ARGS=f"--epochs {EPOCHS} --width 0.25 --hidden 64 --batch-size 32 --threads 1")
    jobid = _sbatch(sandbox, env, "--gpus=0", "--cpus-per-task=1", "--mem=3000",
                    "--output=train-%j.out", "slurm/jobs/train-gpu.sbatch",
                    "tests/workflow/training-tiny.yaml", "cpu")
    metrics = sandbox / "results/training/training-tiny/gpu/cpu/metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for the first finished epoch
        if metrics.exists() and any(r["kind"] == "training_epoch" for r in read_jsonl(metrics)):
            break
        time.sleep(0.5)
    else:
        raise AssertionError((sandbox / f"train-{jobid}.out").read_text())
    sig = subprocess.run(["scancel", "--signal=USR1", "--batch", jobid], env=job_env(cluster),
                         capture_output=True, text=True, timeout=60)
    assert sig.returncode == 0, sig.stderr
    # The job requeues itself: it pends again with Restarts=1. SLURM holds a requeued batch
    # job for ~2 minutes before it may start again; let it start now instead (this only
    # shortens the wait: the requeue and the second start are the job's own).
    deadline = time.monotonic() + 300
    info = ""
    while time.monotonic() < deadline:
        info = subprocess.run(["scontrol", "show", "job", jobid], env=job_env(cluster),
                              capture_output=True, text=True, timeout=60).stdout
        if "Restarts=1" in info and "JobState=PENDING" in info:
            break
        assert not re.search(r"JobState=(COMPLETED|FAILED|CANCELLED)", info), \
            f"the job ended instead of requeueing itself:\n{info}\n{(sandbox / f'train-{jobid}.out').read_text()}"
        time.sleep(0.5)
    else:
        raise AssertionError(f"job {jobid} did not requeue itself:\n{info}")
    # Only once the first start's batch step is torn down: a start forced earlier is
    # refused by slurmd ("Job N already killed, do not launch batch job") and the job fails.
    # That teardown race is why SLURM itself holds requeued jobs for a while.
    _wait_for_step_teardown(jobid)
    subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], env=job_env(cluster),
                   check=True, capture_output=True, timeout=60)
    state = _wait_for_job(jobid, cluster, timeout=900)
    out = (sandbox / f"train-{jobid}.out").read_text()
    assert state == "COMPLETED", out
    assert "got SIGUSR1" in out and "requeueing job" in out
    assert "restart 1" in out and "resuming" in out
    recs = read_jsonl(metrics)
    assert len([r for r in recs if r["kind"] == "training_epoch"]) == EPOCHS
    assert any(r["kind"] == "training" and r["status"] == "ok" for r in recs)
