"""Phase accounting and inputs of ``hpc scale`` on one in-process rank (MPI.COMM_SELF):
what each phase contains for both matmul algorithms, and independent A and B."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")

from hpc.parallel import driver, matmul  # noqa: E402
from hpc.parallel.timing import PhaseTimer  # noqa: E402


def _product(algorithm: str) -> tuple[np.ndarray, PhaseTimer, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((9, 7)), rng.standard_normal((7, 5))
    timer = PhaseTimer(MPI.COMM_SELF)
    c = matmul.matmul_scatter(MPI.COMM_SELF, a, b, algorithm, "numpy", None, timer)
    return c, timer, a, b


def test_row_algorithm_distributes_then_computes_then_gathers() -> None:
    c, timer, a, b = _product("rows")
    np.testing.assert_allclose(c, a @ b)
    assert timer.log == ["distribute", "compute", "gather"]


def test_summa_broadcasts_count_as_distribution_not_compute() -> None:
    c, timer, a, b = _product("summa")
    np.testing.assert_allclose(c, a @ b)
    # block sends, the communicator split, then per panel: broadcasts | local product
    assert timer.log == ["distribute", "distribute", "distribute", "compute", "gather"]


def test_matmul_inputs_a_and_b_are_seeded_independently(tmp_path: Path) -> None:
    assert driver.dataset_seed("a", 0) != driver.dataset_seed("b", 0)
    path = tmp_path / "mm.h5"
    driver.make_input(MPI.COMM_SELF, path, {"a": (16, 16), "b": (16, 16)}, "float64")
    import h5py
    with h5py.File(path, "r") as fh:
        a, b = fh["a"][...], fh["b"][...]
    assert not np.array_equal(a, b)
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.5  # unrelated streams
