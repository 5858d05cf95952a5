"""Checks that an MPI program was started the way its job asked for.

On a SLURM cluster whose ``MpiDefault`` is ``none`` (SLURM's own default), ``srun -n 4
python -m hpc scale`` starts four *independent* one-rank programs: each sees
``COMM_WORLD.Get_size() == 1``, runs the whole sweep alone and exits 0, and the four
"4-rank" records are silently single-rank results. Every MPI entry point therefore takes
``--expect-ranks P`` (the rules pass the job's task count) and refuses to run when the
launcher gave it another size.
"""
from __future__ import annotations


class LaunchError(RuntimeError):
    """The program was started with another number of ranks than the job asked for."""


def rank_count_problem(size: int, expected: int | None) -> str | None:
    """The message for a wrong rank count, or None when ``size`` is what was expected."""
    if expected is None or size == expected:
        return None
    if size == 1:
        hint = ("srun started independent processes; set the MPI plugin (srun --mpi=pmi2, "
                "or the `mpi` resource in the SLURM profile), or launch with mpiexec -n "
                f"{expected}")
    else:
        hint = "the launcher's rank count differs from the job's task count"
    return (f"started as {size} rank{'s' if size != 1 else ''}, expected {expected}: {hint}")


def check_rank_count(size: int, expected: int | None) -> None:
    """Raise LaunchError when ``size`` ranks were started but ``expected`` were asked for.

    Purely local (no collective), so it works when the processes are *not* one MPI job:
    each of them fails on its own with the same message.
    """
    problem = rank_count_problem(size, expected)
    if problem:
        raise LaunchError(problem)
