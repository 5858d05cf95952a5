"""Run one sweep point of the Snakemake workflow so that its outcome always becomes records.

Used by the rules in ``experiments/rules.smk``::

    python -m hpc.workflow point --output R.jsonl --log R.log --kind scaling \\
        --name "laptop strong n=2" --param mode=strong --param ranks=2 \\
        -- mpiexec -n 2 python -m hpc scale ... --output R.jsonl

Why a wrapper: one failing sweep point (a backend that crashes, too many ranks for the
size, an out-of-memory kill) must show up in the report as *failed*, and the rest of the
sweep and the report must still run; a GPU point on a machine without a GPU must show up
as *skipped*. Snakemake alone would either stop or drop the point. So:

* the command writes its records to a staging file (``--stage``, e.g. ``R.jsonl.part``, or
  a training run's own ``metrics.jsonl``); the output Snakemake waits for appears, in one
  atomic step, only when the point is over. A run killed mid-sweep therefore never leaves
  a half-written output that Snakemake would have to flag as incomplete.
* ``--needs-gpu`` and no usable CUDA GPU here: the command is not run; the output gets one
  ``status="skipped"`` record that says why.
* the command exits non-zero: its output is kept in the log, and a ``status="failed"``
  record (exit status, command, tail of the log) is appended to the output, after the
  records the command had already appended for finished points. Exit status 0, so
  Snakemake carries on and counts the point as done.
* the command succeeds but wrote no output: a failed record says so.
* the command was preempted (exit ``EXIT_PREEMPTED`` = 99 of ``hpc train``, i.e. it saved a
  checkpoint on SIGTERM/SIGUSR1): this is not a result, so the wrapper exits 99 and writes
  nothing; the job fails, and the next ``snakemake`` reruns it (the training rules always
  pass ``--resume``, so it continues from the checkpoint).
* the command was killed by SIGKILL (typically the kernel's OOM killer; under mpiexec a
  rank killed so makes mpiexec exit 137 or report "KILLED BY SIGNAL: 9") while the
  wrapper itself was not signalled: a ``failed`` record says so, with the command's peak
  resident memory when the kernel reports it (``wait4``'s ru_maxrss: the largest process
  among the command and the descendants it waited for; ranks started by srun live under
  slurmstepd and are not counted), so the report still builds.
* interrupted (SIGINT/SIGTERM to the wrapper: Ctrl-C, Snakemake stopping, scancel, SLURM
  cancelling the job because one of its nodes failed): the command is stopped, nothing is
  recorded or published, non-zero exit, so the point is rerun next time (SLURM requeues a
  job whose node failed; see slurm/config.yaml). A node that dies under a job started
  with ``--no-kill`` makes srun fail instead: that is recorded as ``failed`` with srun's
  "Node failure on NODE" in the reason.

A failed point is therefore not retried automatically: ``snakemake -R <its record file>``
redoes it (and then the report).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from hpc.atomic import atomic_write_text
from hpc.records import append_record, new_record

#: Exit status of ``hpc train`` after checkpointing on SIGTERM/SIGUSR1 (hpc.train.signals).
EXIT_PREEMPTED = 99
LOG_TAIL_LINES = 20


def gpu_available() -> tuple[bool, str]:
    """(True, device name) when torch sees a CUDA GPU here, else (False, reason)."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        return False, f"torch not importable: {exc}"
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return False, f"no CUDA GPU on host {socket.gethostname()} (torch.cuda.is_available() is False)"
    return True, torch.cuda.get_device_name(0)


def child_env() -> dict[str, str]:
    """This environment without the PMI variables of the step that started the wrapper,
    and with HDF5 file locking off.

    Under SLURM, Snakemake's job step runs `srun -n1 snakemake ...`; with an MPI plugin
    (MpiDefault=pmi2/pmix) srun hands that process PMI_FD/PMI_RANK/... for a PMI
    connection that belongs to it alone (the descriptor is not inherited further). A
    one-rank `python -m hpc scale` would take them for its own launcher and fail in
    MPI_Init; without them it starts as an MPI singleton. `srun -n P`/`mpiexec -n P` set
    fresh ones for the ranks they start.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_"))}
    # Ranks open the same HDF5 files; cluster filesystems without working flock (NFS,
    # Lustre mounted without it) make HDF5's default file locking fail or hang. Reads
    # here never race a writer (inputs are complete before any job reads them), so
    # locking buys nothing. A value the user set is kept.
    env.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    return env


def killed_by_sigkill(rc: int, log: str) -> bool:
    """Did the command (or, under mpiexec, one of its ranks) die of SIGKILL?"""
    return (rc == -signal.SIGKILL or rc == 128 + signal.SIGKILL
            or "KILLED BY SIGNAL: 9" in log)


def failure_reason(rc: int, command: list[str], log: Path, peak_rss_kib: int | None) -> str:
    """The ``error`` of a failed record: what happened, in words, then the log's tail."""
    tail = log_tail(log)
    nodes = sorted(set(re.findall(r"Node failure on (\S+)", tail)))
    if nodes:
        # srun kills the ranks left on healthy nodes: their SIGKILL is not memory
        what = (f"node failure on {', '.join(nodes)} (SLURM did not requeue the job); "
                f"exit status {rc}")
    elif killed_by_sigkill(rc, tail):
        what = "killed by SIGKILL, likely out of memory (the kernel's OOM killer)"
        # srun's own memory says nothing about its ranks (they run under slurmstepd)
        if peak_rss_kib and Path(command[0]).name != "srun":
            what += f"; peak RSS {peak_rss_kib / 1024:.0f} MiB"
    elif rc < 0:
        what = f"killed by {signal.Signals(-rc).name}"
    else:
        what = f"exit status {rc}"
    return f"{what}: {' '.join(command)}\nlog {log}:\n{tail}"


def wait_with_rusage(proc: subprocess.Popen) -> tuple[int, int | None]:
    """Wait for ``proc``; (returncode, peak RSS in KiB of it and its waited-for descendants).

    Uses ``os.wait4`` so the kernel's resource usage of the finished child comes back with
    its status; an interrupting signal handler's exception propagates as with ``wait()``.
    """
    if proc.returncode is not None:
        return proc.returncode, None
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, int(usage.ru_maxrss) or None


def attempts_file(log: Path) -> Path:
    """``LOG.attempts``: one line per start and end of the point, kept across reruns.

    Snakemake removes a job's log before it runs the job again (a requeued SLURM job, a
    rerun after a crash), and SLURM truncates the job's output file on a requeue; this
    file is not a declared output, so the history of failed attempts survives there.
    """
    return log.with_name(log.name + ".attempts")


def note_attempt(log: Path, event: str) -> None:
    job = os.environ.get("SLURM_JOB_ID")
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {event} host={socket.gethostname()}"
            + (f" slurm_job={job}" if job else "") + f" pid={os.getpid()}\n")
    with open(attempts_file(log), "a", encoding="utf-8") as fh:
        fh.write(line)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def parse_params(items: Sequence[str]) -> dict[str, object]:
    """``key=value`` strings -> dict; integer-looking values become ints."""
    params: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        params[key] = int(value) if value.lstrip("-").isdigit() else value
    return params


class Interrupted(Exception):
    """The wrapper itself got SIGTERM/SIGINT (Ctrl-C, snakemake stopping, scancel)."""


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def finalize(stage: Path, output: Path) -> None:
    """Publish the point's records: ``stage`` -> ``output`` in one atomic step.

    The command writes (and appends to) ``stage``; ``output``, the file Snakemake waits for,
    appears only complete. A ``*.part`` stage is moved; any other stage (a training run's
    own metrics.jsonl) is copied so that it stays where its program put it.
    """
    if stage == output:
        return
    if stage.name.endswith(".part"):
        os.replace(stage, output)
    else:
        atomic_write_text(output, stage.read_text(encoding="utf-8"))


def run_point(command: list[str], output: Path, log: Path, kind: str, name: str,
              params: dict[str, object], needs_gpu: bool = False,
              stage: Path | None = None) -> int:
    """Run ``command`` for one sweep point; see the module docstring. Returns the exit code.

    ``stage`` is the file the command writes its records to (default: ``output`` itself).
    A stale one from an interrupted earlier attempt is removed first, so a rerun never
    appends to half a sweep.
    """
    if not command:
        raise ValueError("no command given after '--'")
    stage = stage or output
    log.parent.mkdir(parents=True, exist_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    stage.parent.mkdir(parents=True, exist_ok=True)
    params = {**params, "command": " ".join(command)}
    note_attempt(log, "start")
    code, outcome = _run_point(command, output, log, kind, name, params, needs_gpu, stage)
    note_attempt(log, f"end {outcome} exit={code}")
    return code


def _run_point(command: list[str], output: Path, log: Path, kind: str, name: str,
               params: dict[str, object], needs_gpu: bool, stage: Path) -> tuple[int, str]:
    """run_point's body: (the wrapper's exit code, what became of the point)."""

    def record(status: str, error: str) -> None:
        append_record(stage, new_record(kind, name, params, {}, status=status, error=error))

    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    interrupted: str | None = None
    peak_rss: int | None = None
    try:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')} host={socket.gethostname()}\n")
            if stage != output:
                stage.unlink(missing_ok=True)
            if needs_gpu:
                ok, detail = gpu_available()
                fh.write(f"# GPU: {detail}\n")
                if not ok:
                    fh.write("# skipped\n")
                    record("skipped", detail)
                    finalize(stage, output)
                    return 0, "skipped"
            fh.write("$ " + " ".join(command) + "\n")
            fh.flush()
            try:
                proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=child_env())
            except OSError as exc:
                fh.write(f"# cannot start: {exc}\n")
                record("failed", f"cannot start {command[0]!r}: {exc}")
                finalize(stage, output)
                return 0, "failed"
            while True:
                try:
                    rc, peak_rss = wait_with_rusage(proc)
                    break
                except Interrupted as exc:
                    # Pass the signal on and keep waiting: `hpc train` checkpoints on
                    # SIGTERM and exits 99; mpiexec forwards it to its ranks.
                    interrupted = str(exc)
                    if proc.poll() is None:
                        proc.send_signal(getattr(signal, interrupted))
    except Interrupted as exc:
        interrupted = str(exc)
        rc = None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rc == EXIT_PREEMPTED:
        print(f"hpc.workflow: {name}: preempted after checkpointing; rerun to resume", file=sys.stderr)
        return EXIT_PREEMPTED, "preempted"
    if interrupted is not None:
        print(f"hpc.workflow: {name}: interrupted by {interrupted}; nothing recorded, rerun to redo",
              file=sys.stderr)
        return 130, f"interrupted-by-{interrupted}"
    if rc < 0 and -rc in (signal.SIGINT, signal.SIGTERM):
        print(f"hpc.workflow: {name}: command killed by {signal.Signals(-rc).name}; nothing recorded",
              file=sys.stderr)
        return 128 - rc, f"killed-by-{signal.Signals(-rc).name}"
    outcome = "ok"
    if rc == 0:
        if not stage.exists():
            record("failed", f"command succeeded but wrote no {stage} (log: {log})")
            outcome = "failed"
    else:
        reason = failure_reason(rc, command, log, peak_rss)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"# failed: {reason.splitlines()[0]}\n")
        record("failed", reason)
        outcome = "failed"
        print(f"hpc.workflow: {name}: failed (exit {rc}); recorded as failed in {output}, see {log}",
              file=sys.stderr)
    finalize(stage, output)
    return 0, outcome


def _point(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    return run_point(command, Path(args.output), Path(args.log), args.kind, args.name,
                     parse_params(args.param), needs_gpu=args.needs_gpu,
                     stage=Path(args.stage) if args.stage else None)


def _experiment_name(args: argparse.Namespace) -> int:
    from hpc.config import ConfigError, load_experiment
    try:
        spec = load_experiment(args.file)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if args.kind and spec["kind"] != args.kind:
        raise ValueError(f"{args.file}: kind is {spec['kind']!r}, expected {args.kind!r}")
    print(spec["name"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hpc.workflow",
                                     description="Helpers for the Snakemake workflow's jobs.")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("point", help="run one sweep point; failures/missing GPUs become records")
    p.add_argument("--output", required=True, help="the point's JSONL record file")
    p.add_argument("--log", required=True, help="log file (appended)")
    p.add_argument("--kind", required=True, help="record kind of a failed/skipped record")
    p.add_argument("--name", required=True, help="record name of a failed/skipped record")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="params of a failed/skipped record (repeatable)")
    p.add_argument("--stage", default=None,
                   help="the file COMMAND writes its records to (default: --output); moved "
                        "(*.part) or copied to --output when the point is done")
    p.add_argument("--needs-gpu", action="store_true",
                   help="skip (and record as skipped) when no CUDA GPU is usable here")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    p.set_defaults(func=_point)
    n = sub.add_parser("experiment-name",
                       help="validate an experiments/*.yaml and print its name (for job scripts)")
    n.add_argument("file", help="experiments/<x>.yaml")
    n.add_argument("--kind", choices=("kernels", "scaling", "training", "compression", "inference"),
                   help="fail unless the experiment is of this kind")
    n.set_defaults(func=_experiment_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:
        print(f"hpc.workflow: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
