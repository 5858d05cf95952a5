"""Shared helpers of tests/test_workflow_*.py and tests/test_slurm_*.py.

The workflow tests run the real Snakefile, but in a *sandbox*: a temporary directory whose
entries link to the repository's workflow files (Snakefile, hpc/, config/, experiments/,
datasets/, analysis/, slurm/, tests/, environment.yml). Snakemake resolves every relative
path (config, experiment files, results/) against its working directory, so a run in the
sandbox is the repository's workflow writing into the sandbox; tests never touch the
repository's own results/ or .snakemake/ (a developer's `make run` keeps its lock).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINKED = ("Snakefile", "hpc", "config", "experiments", "datasets", "analysis", "slurm", "tests",
          "environment.yml")
TINY_CONFIG = "tests/workflow/config-tiny.yaml"
VENV_BIN = str(Path(sys.executable).parent)


def make_sandbox(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = path / name
        if not link.exists():
            link.symlink_to(REPO / name)
    return path


def job_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: the virtualenv's bin first, as `make` gives it."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([VENV_BIN, env.get("PATH", "")])
    env.pop("SNAKEMAKE_PROFILE", None)
    env.update(extra or {})
    return env


def snakemake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def snakemake(sandbox: Path, *args: str, timeout: float = 600,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(*args), cwd=sandbox, env=job_env(env), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run/dry run: rule -> number of jobs."""
    counts: dict[str, int] = {}
    match = re.search(r"Job stats:\n(.*?)\n\s*\n", output + "\n\n", re.S)
    if not match:
        return counts
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# What the tiny workflow (tests/workflow/config-tiny.yaml) must leave: record file ->
# the statuses of its records by kind.
TINY_EXPECTED = {
    "results/kernels/kernels-tiny/numpy.jsonl": {"kernel": {"ok"}},
    "results/kernels/kernels-tiny/cupy.jsonl": {"kernel": {"skipped"}},       # no GPU / no cupy
    "results/kernels/kernels-broken/numpi.jsonl": {"kernel": {"failed"}},     # misspelt backend
    "results/scaling/scaling-tiny/strong/n1.jsonl": {"scaling": {"ok"}},
    "results/scaling/scaling-tiny/strong/n2.jsonl": {"scaling": {"ok"}},
    "results/training/training-tiny/cpu/cpu/records.jsonl": {"training": {"ok"}, "training_epoch": {"ok"}},
    "results/training/training-tiny/ddp/ddp2/records.jsonl": {"training": {"ok"}, "training_epoch": {"ok"},
                                                               "ddp": {"ok"}},
}
GPU_TRAINING = "results/training/training-tiny/gpu/gpu/records.jsonl"


def statuses(path: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rec in read_jsonl(path):
        out.setdefault(rec["kind"], set()).add(rec["status"])
    return out


def has_gpu() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def check_tiny_results(sandbox: Path) -> None:
    """Every sweep point of the tiny workflow has its records, and the report exists."""
    for rel, expected in TINY_EXPECTED.items():
        path = sandbox / rel
        assert path.is_file(), f"{rel} missing"
        assert statuses(path) == expected, f"{rel}: {statuses(path)} != {expected}"
    gpu = statuses(sandbox / GPU_TRAINING)
    assert gpu == ({"training": {"ok"}, "training_epoch": {"ok"}} if has_gpu() else {"training": {"skipped"}})
    failed = read_jsonl(sandbox / "results/kernels/kernels-broken/numpi.jsonl")[0]
    assert "numpi" in failed["error"] and "exit status 2" in failed["error"]
    report = sandbox / "results/report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    html = report.read_text(encoding="utf-8", errors="replace")
    assert "numpi" in html, "the failed point must be shown in the report"
    import pandas as pd
    table = pd.read_csv(sandbox / "results/records/all.csv")
    by_status = table.groupby("status").size().to_dict()
    assert by_status.get("failed", 0) >= 1 and by_status.get("skipped", 0) >= 1
    assert by_status.get("ok", 0) >= 6
    # the finished run was added to the run history (config history_dir, default runs/)
    entry = pd.read_csv(sandbox / "results/records/history-entry.csv")
    index = pd.read_csv(sandbox / "runs/index.csv")
    assert entry["run_id"].iloc[0] in set(index["run_id"])
    assert (sandbox / "runs" / entry["run_id"].iloc[0] / "records.parquet").is_file()
    assert int(entry["n_records"].iloc[0]) >= by_status["ok"]
