"""The package installed from its wheel (not editable) works from any directory.

Builds the wheel from a copy of the sources, installs it with --no-deps into a fresh
virtual environment under a temporary directory (the dependencies come from this test
run's environment through a .pth line, so nothing is downloaded), then runs the commands
that need package data (report template, published tables, config schema and default
configuration) from a directory outside the checkout.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import analysis_fixtures as fx
from hpc.records import write_records

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src)
    shutil.copytree(REPO / "config", src / "config")
    shutil.copytree(REPO / "hpc", src / "hpc", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
          "-w", str(root / "dist"), "-q"], root, env)
    [wheel] = list((root / "dist").glob("hpc_mri-*.whl"))
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     root, env).stdout.strip())
    # this environment's packages (numpy, pandas, ...) without its own hpc: a plain path
    # entry does not run the editable install's finder
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
          "-q", str(wheel)], root, env)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return py, env, elsewhere


@pytest.mark.slow
def test_installed_package_is_the_wheel_not_the_checkout(installed):
    py, env, cwd = installed
    where = _run([str(py), "-c", "import hpc; print(hpc.__file__)"], cwd, env).stdout.strip()
    assert "site-packages" in where and str(REPO) not in where


@pytest.mark.slow
def test_report_compare_and_config_from_another_directory(installed):
    py, env, cwd = installed
    fx.write_all(cwd / "a")
    write_records(cwd / "b" / "kernels.jsonl", fx.kernel_records())
    _run([str(py), "-m", "hpc", "report", "build", "--records", "a", "--output", "report.html"], cwd, env)
    text = (cwd / "report.html").read_text()
    assert "004_c5ca47a4e4bae5f9.txt" in text and "Published figures of the studies" in text
    out = _run([str(py), "-m", "hpc", "compare", "a", "b", "--html", "cmp.html"], cwd, env).stdout
    assert "only in A" in out and (cwd / "cmp.html").is_file()
    _run([str(py), "-m", "hpc", "references", "update", "a", "--system", "ci"], cwd, env)
    assert (cwd / "experiments" / "references" / "ci.yaml").is_file()
    # the default configuration and its schema are package data
    code = "from hpc.config import load_config; print(load_config()['results_dir'])"
    assert _run([str(py), "-c", code], cwd, env).stdout.strip() == "results"
