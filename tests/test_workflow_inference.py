"""The inference rules of the workflow: one job per (model, backend), GPU jobs request a
GPU, and a real run of the tiny inference experiment writes its records (a misspelt
backend becomes a failed inference_sweep record, torch-cuda without a GPU a skipped one)."""
from __future__ import annotations

import json
import re

import pytest

from workflow_support import job_counts, make_sandbox, snakemake

pytestmark = pytest.mark.slow

TINY = "tests/workflow/inference-tiny.yaml"
OUT = "results/inference/inference-tiny/alexnet-mri"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    box = make_sandbox(tmp_path_factory.mktemp("workflow-inference"))
    (box / "inference-config.yaml").write_text(f"experiments: [{TINY}]\n")
    return box


def test_dry_run_plans_one_job_per_model_and_backend(sandbox):
    proc = snakemake(sandbox, "-n", "--cores", "2", "--configfile", "inference-config.yaml", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = job_counts(proc.stdout)
    assert counts["bench_inference"] == 2 and counts["bench_inference_gpu"] == 1
    gpu = re.search(r"rule bench_inference_gpu:.*?resources: ([^\n]*)", proc.stdout, re.S).group(1)
    assert "gpu=1" in gpu
    assert f"{OUT}/torch.jsonl" in proc.stdout and f"{OUT}/no-such-backend.jsonl" in proc.stdout


def test_inference_jobs_run_and_every_point_leaves_a_record(sandbox):
    targets = [f"{OUT}/{b}.jsonl" for b in ("torch", "torch-cuda", "no-such-backend")]
    proc = snakemake(sandbox, *targets, "--cores", "2", "--configfile", "inference-config.yaml", timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]

    def records(name):
        return [json.loads(line) for line in (sandbox / OUT / f"{name}.jsonl").read_text().splitlines()]

    ok = records("torch")
    assert [(r["kind"], r["status"], r["params"].get("batch")) for r in ok] == [
        ("inference_batch", "ok", 1), ("inference_batch", "ok", 2), ("inference_sweep", "ok", None)]
    assert ok[-1]["metrics"]["fits"]["conv"]["n_points"] == 2
    failed = records("no-such-backend")
    assert [(r["kind"], r["status"]) for r in failed] == [("inference_sweep", "failed")]
    assert "no-such-backend" in failed[0]["error"] and "unknown inference backend" in failed[0]["error"]
    gpu = records("torch-cuda")
    assert all(r["kind"] == "inference_sweep" for r in gpu)
    assert all(r["status"] in ("ok", "skipped") for r in gpu)
