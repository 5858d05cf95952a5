"""Where a measurement came from: host, devices, versions, code, scheduler job.

Every result file carries this so a figure can be traced to the machine and commit that
produced it (the airbench habit).
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

_PACKAGES = ("numpy", "numba", "numba-cuda", "h5py", "nibabel", "mpi4py", "torch",
             "pyopencl", "cupy-cuda12x", "snakemake")
_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NAME",
               "SLURM_NTASKS", "SLURM_JOB_NODELIST", "SLURM_CLUSTER_NAME")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the checkout this package runs from (plus '-dirty'), or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions_of(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the named distributions; missing ones are left out."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    return versions_of(_PACKAGES)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def slurm_ids() -> dict[str, str]:
    return {k.lower(): os.environ[k] for k in _SLURM_VARS if k in os.environ}


def provenance() -> dict[str, Any]:
    """A JSON-safe dict describing this process's environment, cheap to call repeatedly."""
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "versions": package_versions(),
        **slurm_ids(),
    }
