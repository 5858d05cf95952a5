"""The workflow on a real three-node SLURM cluster (slurm/local-cluster.sh: one slurmd per
network/UTS namespace, MpiDefault=none), through `snakemake --profile` and `sbatch`, and
what happens when a node crashes under a running MPI job.

Needs root, iproute2/util-linux and Debian (apt-get installs slurm-wlm and munge when
missing); skipped with the reason otherwise. The cluster is started once for this module
and stopped at its end, and the test checks that nothing of it is left behind.

Inter-node MPI traffic: the node namespaces share /dev/shm, PIDs and the boot id, so
MPICH (ch4:ucx) would take two nodes for one host and use shared memory between them.
UCX_TLS=tcp,self (exported to every job) makes ranks on different nodes talk over the
veth links, and test_mpi_traffic_crosses_the_network checks the links' byte counters.
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
                              read_jsonl, snakemake, snakemake_cmd)

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.mpi]

CLUSTER = REPO / "slurm" / "local-cluster.sh"
NODES = ("hpcn1", "hpcn2", "hpcn3")
NET_ENV = {"UCX_TLS": "tcp,self"}
FAULT_POINT = "results/scaling/scaling-fault/strong/n2.jsonl"
FAULT_LOG = "results/logs/scaling/scaling-fault/strong/n2.log"


def _skip_reason() -> str | None:
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "the local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (network namespaces; munged, slurmctld, slurmd)"
    missing = [t for t in ("ip", "nsenter", "unshare") if not shutil.which(t)]
    if missing:
        return f"the local SLURM cluster needs {', '.join(missing)} (iproute2, util-linux)"
    have = all(shutil.which(t) for t in ("slurmctld", "slurmd", "munged", "sbatch"))
    if not have and not shutil.which("apt-get"):
        return "slurm-wlm/munge are not installed and there is no apt-get to install them (not Debian)"
    return None


def _run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 60, check: bool = False
         ) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, env=job_env(env),
                          timeout=timeout, check=check)


def _leftovers() -> list[str]:
    """Anything of the cluster still on this machine (daemons, namespaces, links, files)."""
    found = []
    netns = Path("/run/netns")
    for node in NODES:
        if (netns / node).exists():
            found.append(f"netns {node}")
        if _run("ip", "link", "show", f"hv-{node}").returncode == 0:
            found.append(f"veth hv-{node}")
    if _run("ip", "link", "show", "hpcbr0").returncode == 0:
        found.append("bridge hpcbr0")
    for pattern in ("slurmctld", "slurmd", "slurmstepd", "munged.*hpc-local-slurm"):
        out = _run("pgrep", "-af", pattern).stdout.strip()
        if out:
            found.append(f"processes {pattern!r}: {out}")
    found += [f"job process {pid}" for pid in _job_processes()]
    if Path("/tmp/hpc-local-slurm").exists():
        found.append("/tmp/hpc-local-slurm")
    return found


def _job_processes(cwd: Path | None = None) -> list[int]:
    """Processes of this cluster's jobs (batch scripts, wrappers, ranks): they carry
    SLURM_JOB_ID or our SLURM_CONF; with ``cwd``, only those working below it. Other
    users of this machine are never matched."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            env = proc.joinpath("environ").read_bytes().split(b"\0")
            if not any(e.startswith(b"SLURM_JOB_ID=") or e == b"SLURM_CONF=/tmp/hpc-local-slurm/slurm.conf"
                       for e in env):
                continue
            if cwd is not None and not os.readlink(proc / "cwd").startswith(str(cwd)):
                continue
            if b"slurmstepd" in proc.joinpath("cmdline").read_bytes():
                continue
            pids.append(int(proc.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


@pytest.fixture(scope="module")
def cluster():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    start = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=900)
    if start.returncode != 0:
        subprocess.run([str(CLUSTER), "stop"], capture_output=True, timeout=120)
        pytest.fail(f"local-cluster.sh start failed:\n{start.stdout}\n{start.stderr}")
    env = dict(NET_ENV)
    for line in start.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    assert "SLURM_CONF" in env, start.stdout
    status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout
    assert all(re.search(rf"^{n}\s.*idle", status.stdout, re.M) for n in NODES), status.stdout
    try:
        yield env
    finally:
        stop = subprocess.run([str(CLUSTER), "stop"], capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, stop.stderr
        status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True, timeout=60)
        assert status.returncode != 0 and "not running" in status.stdout
        assert _leftovers() == []


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return make_sandbox(tmp_path_factory.mktemp("slurm-cluster"))


def _profile(sandbox: Path, name: str, **rule_extra: dict) -> str:
    """The repository's profile, adapted the way its comments say for this cluster: no
    GPUs (gpu: 0: GPU points run on a CPU node and record themselves as skipped), one CPU
    per job on these 2-CPU nodes, no --exclusive (the site turns it off), MPI points
    spread over two nodes (nodes: 2), a quicker first status check."""
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    for rule in ("bench_kernels_gpu", "train_gpu"):
        profile["set-resources"][rule]["gpu"] = 0
    for res in profile["set-resources"].values():
        res.pop("slurm_extra", None)
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    for rule in ("scale_mpi", "train_ddp"):
        profile["set-resources"][rule]["nodes"] = 2
    for rule, extra in rule_extra.items():
        profile["set-resources"].setdefault(rule, {}).update(extra)
    profile["slurm-init-seconds-before-status-checks"] = 1
    (sandbox / name).mkdir(exist_ok=True)
    (sandbox / name / "config.yaml").write_text(yaml.safe_dump(profile))
    return name


def _wait_for_job(jobid: str, env: dict[str, str], timeout: float = 300) -> str:
    """Poll squeue (no accounting here, so no sacct) until the job has ended; its state."""
    deadline = time.monotonic() + timeout
    state = "?"
    while time.monotonic() < deadline:
        out = _run("squeue", "--states=all", "-h", "-j", jobid, "-o", "%T", env=env)
        state = out.stdout.strip() or state
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return state
        time.sleep(1)
    raise AssertionError(f"SLURM job {jobid} still {state} after {timeout} s")


def _wait_for_step_teardown(jobid: str, timeout: float = 60) -> None:
    """Until no slurmstepd of the job is left on any node (then a short grace period)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _run("pgrep", "-f", f"slurmstepd: \\[{jobid}\\.").returncode != 0:
            time.sleep(1)
            return
        time.sleep(0.5)
    raise AssertionError(f"steps of job {jobid} still running {timeout} s after its requeue")


def _sbatch(sandbox: Path, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], cwd=sandbox, env=job_env(env),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def _veth_bytes() -> int:
    return sum(int(Path(f"/sys/class/net/hv-{n}/statistics/tx_bytes").read_text())
               + int(Path(f"/sys/class/net/hv-{n}/statistics/rx_bytes").read_text()) for n in NODES)


# ----------------------------------------------------------------------------- launching


def test_srun_without_mpi_plugin_is_refused_by_expect_ranks(cluster, sandbox):
    """MpiDefault=none: plain srun starts independent 1-rank programs; each must fail."""
    proc = subprocess.run(
        ["srun", "-N2", "-n2", "python", "-m", "hpc", "scale", "--experiment",
         "tests/workflow/scaling-tiny.yaml", "--workdir", "work-plain", "--output", "plain.jsonl",
         "--expect-ranks", "2"], cwd=sandbox, env=job_env(cluster), capture_output=True,
        text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.count("started as 1 rank, expected 2") == 2, proc.stderr
    assert "srun --mpi=" in proc.stderr
    assert not (sandbox / "plain.jsonl").exists()


def test_mpi_traffic_crosses_the_network(cluster, sandbox):
    """srun --mpi=pmi2 makes one 2-rank job on two hosts, and its 40 MB message really
    travels over the nodes' veth links (their byte counters grow by about that)."""
    nbytes = 40_000_000
    program = ("from mpi4py import MPI; import numpy as np, socket; c = MPI.COMM_WORLD; "
               f"a = np.ones({nbytes} // 8); "
               "c.Send(a, 1) if c.rank == 0 else c.Recv(a, 0); "
               "print(c.rank, c.size, socket.gethostname(), flush=True)")
    before = _veth_bytes()
    proc = _run("srun", "--mpi=pmi2", "-N2", "-n2", "python", "-c", program, env=cluster, timeout=120)
    grown = _veth_bytes() - before
    assert proc.returncode == 0, proc.stderr
    lines = sorted(proc.stdout.split("\n"))[-2:]
    assert [ln.split()[:2] for ln in lines] == [["0", "2"], ["1", "2"]], proc.stdout
    assert len({ln.split()[2] for ln in lines}) == 2, proc.stdout
    # counted on both ends' links (tx of one, rx of the other): ~2x the message
    assert 2 * nbytes <= grown < 2 * nbytes * 1.25, grown


# ----------------------------------------------------------------------------- the workflow


def test_tiny_workflow_through_the_slurm_profile_spans_nodes(cluster, sandbox):
    proc = snakemake(sandbox, "--profile", _profile(sandbox, "profile"), "--configfile",
                     TINY_CONFIG, timeout=900, env=cluster)
    assert proc.returncode == 0, proc.stdout[-5000:]
    check_tiny_results(sandbox)
    slurm_logs = sandbox / "results/logs/slurm"
    for rule in ("build_dataset", "bench_kernels", "scale_single", "scale_mpi", "train_cpu", "train_ddp"):
        assert list((slurm_logs / f"rule_{rule}").rglob("*.log")), f"no SLURM job log for {rule}"
    log = (sandbox / "results/logs/scaling/scaling-tiny/strong/n2.log").read_text()
    assert "$ srun --mpi=pmi2 -n 2 python -m hpc scale" in log and "--expect-ranks 2" in log
    (rec,) = read_jsonl(sandbox / "results/scaling/scaling-tiny/strong/n2.jsonl")
    assert rec["status"] == "ok" and rec["provenance"].get("slurm_job_id")
    assert rec["params"]["ranks"] == 2 and len(set(rec["params"]["hosts"])) == 2, rec["params"]["hosts"]
    ddp = [r for r in read_jsonl(sandbox / "results/training/training-tiny/ddp/ddp2/records.jsonl")
           if r["kind"] == "ddp"]
    assert ddp and ddp[0]["provenance"].get("slurm_job_id")
    assert ddp[0]["params"]["world_size"] == 2 and len(set(ddp[0]["params"]["hosts"])) == 2


def test_scaling_sbatch_job_runs_four_ranks_on_two_nodes(cluster, sandbox):
    env = dict(cluster, RANKS="4", MODES="strong", RESULTS="results-sbatch")
    jobid = _sbatch(sandbox, env, "--nodes=2", "--ntasks=4", "--mem-per-cpu=1000",
                    "--time=00:10:00", "--output=scaling-%j.out", "slurm/jobs/scaling.sbatch",
                    "tests/workflow/scaling-tiny.yaml")
    state = _wait_for_job(jobid, cluster)
    out = (sandbox / f"scaling-{jobid}.out").read_text()
    assert state == "COMPLETED", out
    (rec,) = read_jsonl(sandbox / "results-sbatch/scaling/scaling-tiny/strong/n4.jsonl")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["provenance"]["slurm_job_id"] == jobid
    assert rec["params"]["ranks"] == 4
    hosts = rec["params"]["hosts"]
    assert len(hosts) == 4 and len(set(hosts)) == 2, hosts


# ----------------------------------------------------------------------------- node failures


def _fault_config(sandbox: Path) -> str:
    cfg = yaml.safe_load((REPO / TINY_CONFIG).read_text())
    cfg["experiments"] = list(cfg["experiments"]) + ["tests/workflow/scaling-fault.yaml"]
    (sandbox / "config-fault.yaml").write_text(yaml.safe_dump(cfg))
    return "config-fault.yaml"


def _start_fault_run(sandbox: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    (sandbox / FAULT_LOG).unlink(missing_ok=True)   # so that "[1/1]" below is this run's
    return subprocess.Popen(snakemake_cmd(*args), cwd=sandbox, env=job_env(env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _running_fault_job(sandbox: Path, env: dict[str, str], wf: subprocess.Popen,
                       timeout: float = 240) -> tuple[str, str, list[str]]:
    """(job id, batch host, nodes) of the fault point's job once its ranks compute."""
    deadline = time.monotonic() + timeout
    log = sandbox / FAULT_LOG
    while time.monotonic() < deadline:
        assert wf.poll() is None, wf.stdout.read() if wf.stdout else ""
        if log.exists() and "[1/1]" in log.read_text(errors="replace"):
            out = _run("squeue", "-h", "-t", "R", "-o", "%i %D %B %N", env=env).stdout
            for line in out.splitlines():
                jobid, nnodes, batch, nodelist = line.split()
                if nnodes == "2":
                    nodes = _run("scontrol", "show", "hostnames", nodelist, env=env).stdout.split()
                    return jobid, batch, nodes
        time.sleep(0.3)
    raise AssertionError(f"the fault point did not start computing in {timeout} s")


def _finish(wf: subprocess.Popen, timeout: float = 400) -> str:
    out, _ = wf.communicate(timeout=timeout)
    assert wf.returncode == 0, out[-5000:]
    return out


def test_node_crash_mid_job_requeues_and_reruns_on_healthy_nodes(cluster, sandbox):
    """Crash the batch node of a running 2-node MPI point: SLURM marks it down and requeues
    the job, which reruns on the two healthy nodes; the point's record is correct, the
    failed attempt is in the logs, nothing half-written is published, no rank survives."""
    wf = _start_fault_run(sandbox, cluster, FAULT_POINT, "--profile", _profile(sandbox, "profile"),
                          "--configfile", _fault_config(sandbox))
    try:
        jobid, batch, nodes = _running_fault_job(sandbox, cluster, wf)
        assert batch in nodes and len(nodes) == 2
        crash = subprocess.run([str(CLUSTER), "kill-node", batch], capture_output=True, text=True,
                               timeout=60)
        assert crash.returncode == 0, crash.stderr
        assert not (sandbox / FAULT_POINT).exists()
        # SLURM notices (SlurmdTimeout), cancels the job on the other node, requeues it.
        deadline = time.monotonic() + 120
        info = ""
        while time.monotonic() < deadline:
            info = _run("scontrol", "show", "job", jobid, env=cluster).stdout
            if "Restarts=1" in info and "JobState=PENDING" in info:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"job {jobid} was not requeued:\n{info}")
        state = _run("sinfo", "-h", "-N", "-n", batch, "-o", "%t", env=cluster).stdout.strip()
        assert state.startswith("down"), state
        # SLURM holds a requeued job ~2 minutes (BeginTime); let it start now instead.
        _wait_for_step_teardown(jobid)
        _run("scontrol", "update", f"JobId={jobid}", "StartTime=now", env=cluster, check=True)
        out = _finish(wf)
    finally:
        if wf.poll() is None:
            wf.kill()
    (rec,) = read_jsonl(sandbox / FAULT_POINT)
    assert rec["status"] == "ok", rec.get("error")
    hosts = rec["params"]["hosts"]
    assert len(set(hosts)) == 2 and batch not in hosts, hosts
    assert rec["provenance"]["slurm_job_id"] == jobid
    # the failed first attempt is visible: the point's attempts log (kept when Snakemake
    # deletes the log for the rerun) has a start on the crashed node that never ended,
    # then a start and an ok end on a healthy node, both in the same SLURM job
    attempts = (sandbox / (FAULT_LOG + ".attempts")).read_text().splitlines()
    events = [(ln.split()[1], re.search(r"host=(\S+)", ln).group(1)) for ln in attempts]
    assert events[-3:] == [("start", batch), ("start", events[-2][1]), ("end", events[-2][1])], attempts
    assert events[-2][1] != batch and "end ok exit=0" in attempts[-1]
    assert all(f"slurm_job={jobid}" in ln for ln in attempts[-3:]), attempts
    assert not list((sandbox / "results").rglob("*.part")), "a half-written stage was left"
    assert _job_processes(sandbox) == [], "a rank or job process is still running"
    assert "1 of 1 steps (100%) done" in out, out[-3000:]


def test_node_crash_that_slurm_cannot_recover_is_recorded_failed(cluster, sandbox):
    """With --no-kill (no requeue: the job goes on without the node), crash the other node
    of a running 2-node point: srun fails with a node failure, the point ends as a failed
    record naming it, and the rest of the workflow (the report) still finishes."""
    report = sandbox / "results/report.html"
    before = report.stat().st_mtime if report.exists() else 0
    profile = _profile(sandbox, "profile-nokill", scale_mpi={"slurm_extra": "'--no-kill'"})
    wf = _start_fault_run(sandbox, cluster, "--profile", profile, "--configfile",
                          _fault_config(sandbox), "-R", FAULT_POINT)
    try:
        jobid, batch, nodes = _running_fault_job(sandbox, cluster, wf)
        victim = next(n for n in nodes if n != batch)
        crash = subprocess.run([str(CLUSTER), "kill-node", victim], capture_output=True, text=True,
                               timeout=60)
        assert crash.returncode == 0, crash.stderr
        _finish(wf)
    finally:
        if wf.poll() is None:
            wf.kill()
    (rec,) = read_jsonl(sandbox / FAULT_POINT)
    assert rec["status"] == "failed"
    assert rec["error"].startswith(f"node failure on {victim}"), rec["error"]
    assert rec["provenance"]["slurm_job_id"] == jobid
    assert report.is_file() and report.stat().st_mtime > before
    assert _job_processes(sandbox) == [], "a rank or job process is still running"
