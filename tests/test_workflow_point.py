"""hpc.workflow point: how one sweep point's outcome becomes records (real subprocesses)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpc import workflow
from hpc.records import read_records


def _point(tmp_path: Path, command: list[str], *extra: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    out, log = tmp_path / "point.jsonl", tmp_path / "logs" / "point.log"
    proc = subprocess.run(
        [sys.executable, "-m", "hpc.workflow", "point", "--output", str(out), "--log", str(log),
         "--kind", "scaling", "--name", "demo strong ranks=2", "--param", "ranks=2",
         "--param", "mode=strong", *extra, "--", *command],
        capture_output=True, text=True, timeout=120)
    return proc, out, log


def test_failing_command_becomes_failed_record_and_job_succeeds(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('boom: 3 ranks > 2 rows'); sys.exit(3)"]
    proc, out, log = _point(tmp_path, cmd)
    assert proc.returncode == 0, proc.stderr
    (rec,) = list(read_records([out]))
    assert rec.status == "failed" and rec.kind == "scaling"
    assert rec.name == "demo strong ranks=2"
    assert rec.params["ranks"] == 2 and rec.params["mode"] == "strong"
    assert rec.error.startswith("exit status 3:")
    assert "boom: 3 ranks > 2 rows" in rec.error  # the log's tail travels with the record
    assert "boom: 3 ranks > 2 rows" in log.read_text()
    assert rec.provenance["host"]


def test_failed_record_is_appended_after_finished_points(tmp_path):
    """A sweep that appended some points and then crashed keeps those points."""
    script = ("import sys\nfrom hpc.records import Record, append_record\n"
              "append_record(sys.argv[1], Record('kernel', 'p1', {}, {'median_s': 1.0}))\n"
              "raise RuntimeError('second point crashed')\n")
    out = tmp_path / "point.jsonl"
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", script, str(out)])
    assert proc.returncode == 0
    recs = list(read_records([out]))
    assert [r.status for r in recs] == ["ok", "failed"]
    assert recs[0].metrics == {"median_s": 1.0}
    assert "second point crashed" in recs[1].error


def test_success_without_output_is_a_failure(tmp_path):
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", "pass"])
    assert proc.returncode == 0
    (rec,) = list(read_records([out]))
    assert rec.status == "failed" and "wrote no" in rec.error


def test_success_leaves_the_commands_records_alone(tmp_path):
    out = tmp_path / "point.jsonl"
    script = ("import sys\nfrom hpc.records import Record, write_records\n"
              "write_records(sys.argv[1], [Record('scaling', 'x', {'ranks': 2}, {'total_s': 0.5})])\n")
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", script, str(out)])
    assert proc.returncode == 0
    (rec,) = list(read_records([out]))
    assert rec.status == "ok" and rec.metrics == {"total_s": 0.5}


def test_preempted_exit_is_passed_on_without_a_record(tmp_path):
    """Exit 99 (checkpointed on SIGUSR1/SIGTERM) must fail the job so the rerun resumes."""
    from hpc.train.signals import EXIT_PREEMPTED
    assert workflow.EXIT_PREEMPTED == EXIT_PREEMPTED
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", f"raise SystemExit({EXIT_PREEMPTED})"])
    assert proc.returncode == EXIT_PREEMPTED
    assert not out.exists()


def test_missing_executable_is_a_failed_record(tmp_path):
    proc, out, _ = _point(tmp_path, [str(tmp_path / "no-such-launcher"), "-n", "2"])
    assert proc.returncode == 0
    (rec,) = list(read_records([out]))
    assert rec.status == "failed" and "cannot start" in rec.error


def test_needs_gpu_skips_on_a_machine_without_one(tmp_path):
    import torch
    marker = tmp_path / "ran"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"]
    proc, out, _ = _point(tmp_path, cmd, "--needs-gpu")
    assert proc.returncode == 0
    if torch.cuda.is_available():
        assert marker.exists()
    else:
        assert not marker.exists(), "the command must not run without a GPU"
        (rec,) = list(read_records([out]))
        assert rec.status == "skipped" and "no CUDA GPU" in rec.error


def test_params_parsing_and_errors():
    assert workflow.parse_params(["ranks=4", "mode=weak", "x=-2"]) == {"ranks": 4, "mode": "weak", "x": -2}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        workflow.parse_params(["oops"])


def test_experiment_name(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    exp = repo / "tests" / "workflow" / "scaling-tiny.yaml"
    proc = subprocess.run([sys.executable, "-m", "hpc.workflow", "experiment-name", "--kind", "scaling",
                           str(exp)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "scaling-tiny"
    proc = subprocess.run([sys.executable, "-m", "hpc.workflow", "experiment-name", "--kind", "training",
                           str(exp)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "expected 'training'" in proc.stderr


def test_stage_is_published_only_when_the_point_is_over(tmp_path):
    stage = tmp_path / "point.jsonl.part"
    stage.write_text('{"stale": "from an interrupted attempt"}\n')
    script = ("import sys\nfrom hpc.records import Record, append_record\n"
              "append_record(sys.argv[1], Record('kernel', 'p1', {}, {'median_s': 2.0}))\n")
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", script, str(stage)], "--stage", str(stage))
    assert proc.returncode == 0, proc.stderr
    assert not stage.exists()
    (rec,) = list(read_records([out]))  # the stale line is gone, the new point is there
    assert rec.name == "p1" and rec.metrics == {"median_s": 2.0}


def test_a_non_part_stage_is_copied_and_kept(tmp_path):
    stage = tmp_path / "run" / "metrics.jsonl"
    script = ("import sys\nfrom hpc.records import Record, write_records\n"
              "write_records(sys.argv[1], [Record('training', 'cpu', {}, {'test_accuracy': 0.5})])\n")
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", script, str(stage)], "--stage", str(stage))
    assert proc.returncode == 0
    assert stage.read_text() == out.read_text()


def _start_and_signal(tmp_path, script: str, sig: int) -> tuple[int, Path, Path]:
    out, log = tmp_path / "point.jsonl", tmp_path / "point.log"
    started = tmp_path / "started"
    stage = tmp_path / "point.jsonl.part"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpc.workflow", "point", "--output", str(out), "--log", str(log),
         "--stage", str(stage), "--kind", "training", "--name", "demo", "--",
         sys.executable, "-c", script, str(started)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the command did not start"
    proc.send_signal(sig)
    return proc.wait(timeout=60), out, stage


def test_interrupted_point_records_nothing(tmp_path):
    """Ctrl-C/SIGTERM to the job is not a result: nothing is published, the job fails."""
    script = "import sys, time\nopen(sys.argv[1], 'w').close()\ntime.sleep(60)\n"
    rc, out, stage = _start_and_signal(tmp_path, script, signal.SIGTERM)
    assert rc == 130
    assert not out.exists()


def test_sigterm_is_passed_on_so_training_can_checkpoint(tmp_path):
    """The wrapper forwards SIGTERM and waits: a trainer that checkpoints and exits 99 is
    reported as preempted (exit 99), not killed."""
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(99))\n"
              "open(sys.argv[1], 'w').close()\n"
              "time.sleep(60)\n")
    rc, out, _ = _start_and_signal(tmp_path, script, signal.SIGTERM)
    assert rc == 99
    assert not out.exists()


def test_sigkilled_command_becomes_failed_record_with_peak_rss(tmp_path):
    """What the kernel's OOM killer does: the command dies of SIGKILL while the wrapper
    was not signalled. The point is recorded as failed, with the reason and the memory
    the command had touched, and the job succeeds so the report still builds."""
    script = ("import os, signal\n"
              "block = bytearray(200 * 1024 * 1024)\n"       # 200 MiB, touched
              "for i in range(0, len(block), 4096): block[i] = 1\n"
              "print('allocated', flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc, out, log = _point(tmp_path, [sys.executable, "-c", script], "--stage", str(tmp_path / "p.part"))
    assert proc.returncode == 0, proc.stderr
    (rec,) = list(read_records([out]))
    assert rec.status == "failed"
    first = rec.error.splitlines()[0]
    assert first.startswith("killed by SIGKILL, likely out of memory"), first
    peak = int(first.split("peak RSS ")[1].split(" MiB")[0])
    assert 200 <= peak < 1000, first
    assert "allocated" in rec.error
    assert "# failed: killed by SIGKILL" in log.read_text()


def test_mpiexec_reporting_a_rank_killed_by_sigkill_is_named(tmp_path):
    """Under mpiexec the wrapper sees mpiexec's exit, not the rank's signal: Hydra's
    "KILLED BY SIGNAL: 9" in the log names the cause all the same."""
    script = "print('BAD TERMINATION ... KILLED BY SIGNAL: 9 (Killed)'); raise SystemExit(9)"
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", script])
    (rec,) = list(read_records([out]))
    assert rec.status == "failed" and rec.error.startswith("killed by SIGKILL")


def test_node_failure_reported_by_srun_is_named_in_the_reason(tmp_path):
    script = "import sys; print('srun: error: Node failure on hpcn3', file=sys.stderr); sys.exit(1)"
    proc, out, _ = _point(tmp_path, [sys.executable, "-c", script])
    (rec,) = list(read_records([out]))
    assert rec.status == "failed"
    assert rec.error.startswith("node failure on hpcn3")


def test_attempts_are_kept_across_reruns(tmp_path):
    """Snakemake deletes a job's log before rerunning it; LOG.attempts keeps the history."""
    _point(tmp_path, [sys.executable, "-c", "import sys; sys.exit(4)"])
    (tmp_path / "logs" / "point.log").unlink()                     # what Snakemake does
    _point(tmp_path, [sys.executable, "-c", "import sys; sys.exit(0)"])
    lines = (tmp_path / "logs" / "point.log.attempts").read_text().splitlines()
    assert [ln.split()[1] for ln in lines] == ["start", "end", "start", "end"]
    assert "end failed exit=0" in lines[1] and "end ok exit=0" in lines[3]
