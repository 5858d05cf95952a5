"""Preemption: SIGTERM/SIGUSR1 -> finish the current step, checkpoint, exit ``EXIT_PREEMPTED``.

SLURM sends SIGUSR1 ahead of a time limit when asked (``#SBATCH --signal=B:USR1@120``) and
SIGTERM on cancel/preemption. The handler only sets a flag: the training loop checks it
between optimisation steps, so a checkpoint is never taken mid-update. The job script
requeues on the exit code::

    python -m hpc train run ... --resume; rc=$?
    [ "$rc" -eq 99 ] && scontrol requeue "$SLURM_JOB_ID"
"""
from __future__ import annotations

import signal
import types
from typing import Callable

#: Exit status of a run stopped by SIGTERM/SIGUSR1 after writing its checkpoint.
#: Chosen outside the shell's 128+N signal range and argparse's 2, so scripts can tell
#: "preempted, resumable: requeue me" from a crash or a usage error.
EXIT_PREEMPTED = 99

PREEMPT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)


class PreemptionHandler:
    """Context manager: while active, SIGTERM/SIGUSR1 set ``requested`` instead of killing."""

    def __init__(self, signals: tuple[signal.Signals, ...] = PREEMPT_SIGNALS) -> None:
        self.signals = signals
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[signal.Signals, Callable | int | None] = {}

    def _handle(self, signum: int, _frame: types.FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "PreemptionHandler":
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
