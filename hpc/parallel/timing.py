"""Phase timing with ``MPI.Wtime`` and barriers, so a phase's time is the slowest rank's.

``PhaseTimer.phase(name)`` puts a barrier before and after the phase: the wall time between
the two barriers (identical on every rank up to clock skew) is the phase time; the time
from the first barrier to the end of the rank's own work, before waiting, is the rank's
*local* time, whose spread across ranks is the load imbalance.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from mpi4py import MPI


class PhaseTimer:
    """Collects per-phase times of one run on one rank."""

    def __init__(self, comm: Any, barriers: bool = True) -> None:
        self.comm = comm
        self.barriers = barriers
        self.phases: dict[str, float] = {}
        self.local: dict[str, float] = {}
        self.log: list[str] = []  # phase names in the order they ran (repeats accumulate)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.barriers:
            self.comm.Barrier()
        start = MPI.Wtime()
        yield
        own = MPI.Wtime() - start
        if self.barriers:
            self.comm.Barrier()
        self.phases[name] = self.phases.get(name, 0.0) + MPI.Wtime() - start
        self.log.append(name)
        self.local[name] = self.local.get(name, 0.0) + own


@contextlib.contextmanager
def maybe_phase(timer: PhaseTimer | None, name: str) -> Iterator[None]:
    """``timer.phase(name)`` when a timer is given, else nothing (the API's default)."""
    if timer is None:
        yield
    else:
        with timer.phase(name):
            yield
