"""The tiny workflow end to end on this machine: interrupted, resumed, and rerun after an
intermediate output is deleted. Real Snakemake, real mpiexec, real training, real report."""
from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from workflow_support import (TINY_CONFIG, TINY_EXPECTED, check_tiny_results, job_counts, job_env,
                              make_sandbox, snakemake, snakemake_cmd)

pytestmark = [pytest.mark.slow, pytest.mark.mpi]

RUN_ARGS = ("--cores", "2", "--configfile", TINY_CONFIG)
POINT_FILES = sorted(TINY_EXPECTED) + ["results/training/training-tiny/gpu/gpu/records.jsonl"]


def _mtimes(sandbox: Path) -> dict[str, float]:
    return {rel: (sandbox / rel).stat().st_mtime_ns for rel in POINT_FILES if (sandbox / rel).exists()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Start the tiny workflow, interrupt it (SIGINT, as Ctrl-C) during training, resume."""
    sandbox = make_sandbox(tmp_path_factory.mktemp("workflow-run"))
    log = open(sandbox / "first-run.log", "w")
    proc = subprocess.Popen(snakemake_cmd(*RUN_ARGS), cwd=sandbox, env=job_env(), stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    training_logs = sandbox / "results/logs/training/training-tiny"
    try:
        # interrupt while a training job is under way (they take the longest)
        while time.monotonic() < deadline and proc.poll() is None:
            if training_logs.is_dir() and any(training_logs.rglob("*.log")):
                break
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None, "the workflow ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    done_before = _mtimes(sandbox)
    # The README's resume command (what `make run` runs): --rerun-incomplete redoes a job
    # that Snakemake was stopped before it could register as finished.
    resumed = snakemake(sandbox, *RUN_ARGS, "--rerun-incomplete", timeout=900)
    return sandbox, done_before, resumed


def test_interrupted_run_resumes_and_redoes_only_unfinished_points(finished):
    sandbox, done_before, resumed = finished
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    after = _mtimes(sandbox)
    assert len(done_before) >= 1, "some points should have finished before the interrupt"
    assert len(done_before) < len(POINT_FILES), "some points should have been left to do"
    # outputs Snakemake flagged as incomplete (job blocks whose reason says so)
    incomplete = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", resumed.stdout):
        out = re.search(r"^\s+output: (.*)$", block, re.M)
        why = re.search(r"^\s+reason: (.*)$", block, re.M)
        # --rerun-incomplete forces those jobs ("Forced execution"; nothing else is forced here)
        if out and why and ("ncomplete" in why.group(1) or "Forced execution" in why.group(1)):
            incomplete.update(f.strip() for f in out.group(1).split(","))
    for rel, mtime in done_before.items():
        if rel in incomplete:
            continue  # finished in the instant Snakemake was stopped: redone, as flagged
        assert after[rel] == mtime, f"{rel} was finished before the interrupt but was redone"
    # the resumed run did the rest: every point not finished before, plus the report
    counts = job_counts(resumed.stdout)
    assert counts.get("report") == 1
    points_redone = sum(n for rule, n in counts.items() if rule not in ("aggregate", "report", "history", "all"))
    assert points_redone >= len(POINT_FILES) - len(done_before)


def test_tiny_workflow_leaves_every_point_and_the_report(finished):
    sandbox, _, _ = finished
    check_tiny_results(sandbox)
    assert (sandbox / "results/dataset/slices.h5").stat().st_size > 10_000
    # the training run's directory keeps what resuming needs
    assert (sandbox / "results/training/training-tiny/cpu/cpu/checkpoints/last.pt").is_file()


def test_redoing_one_point_reruns_only_that_job_and_the_report(finished):
    """`snakemake -R <record file>`: that point is redone, then the table and the report;
    every other point is kept (the README's way to retry a failed point)."""
    sandbox, _, _ = finished
    target = "results/scaling/scaling-tiny/strong/n2.jsonl"
    before = _mtimes(sandbox)
    dry = snakemake(sandbox, "-n", *RUN_ARGS, "-R", target, timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert job_counts(dry.stdout) == {"scale_mpi": 1, "aggregate": 1, "report": 1, "history": 1, "all": 1}
    rerun = snakemake(sandbox, *RUN_ARGS, "-R", target, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert job_counts(rerun.stdout) == {"scale_mpi": 1, "aggregate": 1, "report": 1, "history": 1, "all": 1}
    after = _mtimes(sandbox)
    assert after[target] != before[target]
    assert {k: v for k, v in after.items() if k != target} == {k: v for k, v in before.items() if k != target}
    check_tiny_results(sandbox)
    # and a run with nothing to do does nothing
    again = snakemake(sandbox, "-n", *RUN_ARGS, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout
