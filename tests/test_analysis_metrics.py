"""hpc.analysis.metrics: scaling and roofline formulas against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpc.analysis import metrics as m


def test_study_amdahl_fraction_gives_published_two_rank_speedup():
    # the study: f = 61.21% -> S(2) = 1 / (0.3879 + 0.6121 / 2) = 1 / 0.69395
    assert m.amdahl_speedup(0.6121, 2) == pytest.approx(1 / 0.69395, rel=1e-12)
    assert m.amdahl_speedup(0.6121, 2) == pytest.approx(1.44102, abs=1e-5)
    assert m.amdahl_limit(0.6121) == pytest.approx(1 / 0.3879)


def test_amdahl_edges():
    assert m.amdahl_speedup(0.0, 64) == 1.0
    assert m.amdahl_speedup(1.0, 64) == 64.0
    assert m.amdahl_speedup(0.5, 1) == 1.0
    assert math.isinf(m.amdahl_limit(1.0))


def test_speedup_and_efficiencies():
    assert m.speedup(10.0, 4.0) == 2.5
    assert m.strong_efficiency(10.0, 4.0, 4) == pytest.approx(0.625)
    # normalised to a 2-rank baseline: 2 ranks 6 s -> 4 ranks 3 s is perfect
    assert m.strong_efficiency(6.0, 3.0, 4, n_base=2) == pytest.approx(1.0)
    assert m.weak_efficiency(1.0, 1.25) == pytest.approx(0.8)
    assert m.weak_scaled_speedup(1.0, 1.25, 4) == pytest.approx(3.2)
    assert m.cpu_gpu_speedup(3.0, 0.03) == pytest.approx(100.0)


def test_karp_flatt_known_values():
    # S = 1.6 on 2 ranks: (1/1.6 - 1/2) / (1 - 1/2) = (0.625 - 0.5) / 0.5 = 0.25
    assert m.karp_flatt(1.6, 2) == pytest.approx(0.25)
    # perfect speed-up: no serial fraction
    assert m.karp_flatt(8.0, 8) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="n=1"):
        m.karp_flatt(1.0, 1)


@settings(max_examples=60, deadline=None)
@given(f=st.floats(0.0, 1.0), n=st.integers(2, 4096))
def test_karp_flatt_recovers_amdahl_serial_fraction(f, n):
    # For data that follows Amdahl's law exactly, Karp-Flatt's e equals 1 - f.
    assert m.karp_flatt(m.amdahl_speedup(f, n), n) == pytest.approx(1 - f, abs=1e-9)


def test_gustafson_known_values():
    assert m.gustafson_speedup(0.9, 10) == pytest.approx(9.1)
    assert m.gustafson_speedup(0.0, 10) == 1.0


def test_fit_amdahl_recovers_exact_fraction():
    ranks = [1, 2, 4, 8, 16]
    fit = m.fit_amdahl(ranks, [m.amdahl_speedup(0.8, n) for n in ranks])
    assert fit.parallel_fraction == pytest.approx(0.8, abs=1e-6)
    assert fit.serial_fraction == pytest.approx(0.2, abs=1e-6)
    assert fit.rmse < 1e-6
    assert fit.points == 5


def test_fit_amdahl_study_fraction_from_two_points():
    fit = m.fit_amdahl([1, 2], [1.0, 1 / 0.69395])
    assert fit.parallel_fraction == pytest.approx(0.6121, abs=1e-6)


def test_fit_amdahl_is_the_least_squares_optimum_on_noisy_data():
    ranks = np.array([1, 2, 3, 4, 6, 8])
    s = np.array([1.0, 1.7, 2.1, 2.6, 3.0, 3.5])
    fit = m.fit_amdahl(ranks, s)
    grid = np.linspace(0, 1, 200001)
    sse = [np.sum((s - 1 / ((1 - f) + f / ranks)) ** 2) for f in grid[::100]]
    best = grid[::100][int(np.argmin(sse))]
    assert fit.parallel_fraction == pytest.approx(best, abs=1e-3)
    f = fit.parallel_fraction
    assert fit.rmse == pytest.approx(np.sqrt(np.mean((s - 1 / ((1 - f) + f / ranks)) ** 2)))


def test_fit_amdahl_clamps_to_unit_interval():
    assert m.fit_amdahl([1, 2, 4], [1.0, 2.5, 5.0]).parallel_fraction == 1.0   # superlinear
    assert m.fit_amdahl([1, 2, 4], [1.0, 0.8, 0.6]).parallel_fraction == 0.0   # slowdown


@pytest.mark.parametrize("ranks,s,match", [
    ([1, 1], [1.0, 1.0], "more than one rank"),
    ([], [], "no points"),
    ([1, 2], [1.0], "equally long"),
    ([0, 2], [1.0, 1.5], "ranks"),
    ([1, 2], [1.0, -1.0], "speedups"),
])
def test_fit_rejects_bad_input(ranks, s, match):
    with pytest.raises(ValueError, match=match):
        m.fit_amdahl(ranks, s)


def test_fit_gustafson_recovers_exact_fraction():
    ranks = [1, 2, 4, 8]
    fit = m.fit_gustafson(ranks, [m.gustafson_speedup(0.95, n) for n in ranks])
    assert fit.parallel_fraction == pytest.approx(0.95, abs=1e-12)
    assert fit.rmse == pytest.approx(0.0, abs=1e-12)


def test_fit_gustafson_clamps_to_unit_interval():
    assert m.fit_gustafson([1, 2], [1.0, 3.0]).parallel_fraction == 1.0      # S - 1 = 2 (n - 1)
    assert m.fit_gustafson([1, 2], [1.0, 0.5]).parallel_fraction == 0.0


def test_fit_gustafson_closed_form():
    # x = n - 1 = [1, 3], y = S - 1 = [0.8, 2.6]: f = (0.8 + 7.8) / (1 + 9) = 0.86
    assert m.fit_gustafson([2, 4], [1.8, 3.6]).parallel_fraction == pytest.approx(0.86)


def test_bound_fractions():
    assert m.bandwidth_fraction(40.0, 50.0) == pytest.approx(0.8)
    assert m.gflops_fraction(10.0, 40.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="bound"):
        m.bandwidth_fraction(1.0, 0.0)
    with pytest.raises(ValueError, match="achieved"):
        m.bandwidth_fraction(-1.0, 2.0)


def test_throughput_helpers():
    # 4096^2 float32 in + out quarter: 64 MiB + 16 MiB in 10 ms
    nbytes = 4096 * 4096 * 4 * 1.25
    assert m.bandwidth_gbs(nbytes, 0.01) == pytest.approx(nbytes / 0.01 / 1e9)
    assert m.matmul_gflops(2048, 2048, 2048, 1.0) == pytest.approx(2 * 2048 ** 3 / 1e9)
    with pytest.raises(ValueError, match="seconds"):
        m.matmul_gflops(2, 2, 2, 0.0)


def test_load_imbalance():
    assert m.load_imbalance([1.0, 1.0, 1.0]) == 1.0
    assert m.load_imbalance([1.0, 3.0]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="empty"):
        m.load_imbalance([])


@pytest.mark.parametrize("func,args", [
    (m.speedup, (0.0, 1.0)), (m.speedup, (1.0, float("nan"))), (m.amdahl_speedup, (1.5, 2)),
    (m.amdahl_speedup, (0.5, 0)), (m.strong_efficiency, (1.0, 1.0, 0.5)),
])
def test_domain_errors_name_the_parameter(func, args):
    with pytest.raises(ValueError, match="="):
        func(*args)
