"""A training job on the local SLURM cluster that checkpoints on SLURM's pre-timeout
signal and requeues itself (slurm/jobs/train-gpu.sbatch); separate from the multi-node
module so that each stays short. Same cluster fixture (started and stopped here)."""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from test_slurm_cluster import _sbatch, _wait_for_job, _wait_for_step_teardown, cluster  # noqa: F401
from workflow_support import job_env, make_sandbox, read_jsonl

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Epochs of the run: enough that the signal (sent after the first epoch) arrives while it
# still trains, few enough to stay quick (a tiny network: ~1 s each).
EPOCHS = 15


def test_train_sbatch_job_checkpoints_on_usr1_and_requeues(cluster, tmp_path):  # noqa: F811
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
    # Only once the first start's steps are torn down: a start forced earlier is refused by
    # slurmd ("Job N already killed, do not launch batch job") and the job fails. That
    # teardown race is why SLURM itself holds requeued jobs for a while.
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
