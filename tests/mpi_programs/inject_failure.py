"""Run under ``mpiexec -n P``: rank 1 fails on purpose in the middle of a distributed run.

Usage: inject_failure.py raise|exit OUTPUT.jsonl

``raise``: rank 1 raises inside ``failure.run_or_abort`` while the other ranks are already
waiting in the next collective; the job must end (MPI_Abort) with rank, host and traceback
on stderr. ``exit``: rank 1 dies with ``os._exit(7)`` (no Python cleanup at all) while the
others wait in a Gatherv; the launcher must end the job. In both cases the results file
must not be written (``driver.finish`` is never reached by every rank).
"""
from __future__ import annotations

import os
import sys

import numpy as np
from mpi4py import MPI

from hpc.parallel import distributed_maxpool2d, driver, failure
from hpc.records import new_record

comm = MPI.COMM_WORLD
mode, output = sys.argv[1], sys.argv[2]


def work() -> list:
    x = np.arange(64 * 32, dtype=np.float32).reshape(64, 32) if comm.rank == 0 else None
    distributed_maxpool2d(x, 2, comm=comm, backend="numpy")      # a real collective first
    if comm.rank == 1:
        if mode == "exit":
            os._exit(7)
        raise RuntimeError("injected failure on purpose")
    distributed_maxpool2d(x, 2, comm=comm, backend="numpy")      # peers block in here
    return [new_record("scaling", "never", {}, {})]


records = failure.run_or_abort(comm, work)
failure.run_or_abort(comm, lambda: driver.finish(comm, records, output))
