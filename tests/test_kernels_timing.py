"""The measuring machinery itself: warm-up, interleaving, spread flag (host), L2 flush
sizing, launch counts and byte accounting (GPU, pure functions), the matmul tolerance."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from hpc.kernels import gpu_timing, sampling, tolerance


# --------------------------------------------------------------------------- host sampling
def test_spread_flag_marks_a_point_whose_iqr_exceeds_a_quarter_of_the_median() -> None:
    steady = sampling.summarize([1.0, 1.02, 0.98, 1.01, 0.99])
    noisy = sampling.summarize([1.0, 1.6, 0.7, 1.4, 0.8])
    assert steady["spread_flag"] is False and steady["rel_iqr"] == pytest.approx(0.02)
    assert noisy["spread_flag"] is True and noisy["rel_iqr"] == pytest.approx(0.6)


def test_settled_needs_the_last_window_within_tolerance() -> None:
    assert not sampling.settled([5.0, 1.0, 1.3], window=3, rtol=0.15)
    assert sampling.settled([5.0, 1.0, 1.1, 1.05], window=3, rtol=0.15)
    assert not sampling.settled([1.0, 1.0], window=3, rtol=0.15)


def _scripted_timer(values: list[float]):
    it = iter(values)

    def timer(fn) -> float:
        fn()
        return next(it)
    return timer


def test_warm_up_runs_until_timings_settle() -> None:
    calls = []
    # a slow first point (fresh pages, thread start-up) then steady calls
    timer = _scripted_timer([0.100, 0.060, 0.020, 0.017, 0.0175, 0.0172, 0.0171] + [0.017] * 50)
    info = sampling.warm_up(lambda: calls.append(1),
                            sampling.WarmupPolicy(min_calls=2, min_time_s=0.0, window=3), timer)
    assert info["warmup_settled"] is True
    assert info["warmup_calls"] == 6  # settled once 0.017, 0.0175, 0.0172 agree
    assert info["warmup_first_s"] == 0.100 and len(calls) == 6


def test_warm_up_gives_up_after_max_time_and_says_so() -> None:
    timer = _scripted_timer(itertools.cycle([0.01, 0.05]))
    info = sampling.warm_up(lambda: None, sampling.WarmupPolicy(min_calls=1, min_time_s=0.0,
                                                                max_time_s=0.05), timer)
    assert info["warmup_settled"] is False and info["warmup_calls"] >= 1


def test_interleaved_times_each_function_once_per_round_in_varying_order() -> None:
    order: list[str] = []
    s = sampling.interleaved({"k": lambda: order.append("k"), "c": lambda: order.append("c")}, 20, seed=3)
    assert len(s["k"]) == len(s["c"]) == 20
    rounds = [tuple(order[i:i + 2]) for i in range(0, 40, 2)]
    assert all(sorted(r) == ["c", "k"] for r in rounds)
    assert len(set(rounds)) == 2  # both orders occur


# --------------------------------------------------------------------------- GPU, pure parts
def test_l2_flush_writes_twice_the_l2_size() -> None:
    assert gpu_timing.l2_flush_nbytes(50 << 20) == 100 << 20  # H100/H200: 50 MiB L2
    assert gpu_timing.l2_flush_nbytes(None) == 2 * gpu_timing.DEFAULT_L2_BYTES


def test_rotation_makes_small_images_exceed_l2_and_leaves_large_ones_alone() -> None:
    l2 = 50 << 20
    img_1024 = 1024 * 1024 * 4 + 512 * 512 * 4  # float32 2x2/2: input + output
    r = gpu_timing.rotation_count(img_1024, l2)
    assert r == 20 and r * img_1024 >= 2 * l2 > (r - 1) * img_1024
    assert gpu_timing.rotation_count(16384 * 16384 * 4, l2) == 1
    assert gpu_timing.rotation_count(1, l2) == gpu_timing.MAX_ROTATION_BUFFERS


def test_launches_per_sample_reaches_a_millisecond() -> None:
    assert gpu_timing.launches_per_sample(10e-6) == 100
    assert gpu_timing.launches_per_sample(3e-6) == 334
    assert gpu_timing.launches_per_sample(5e-3) == 1
    assert gpu_timing.launches_per_sample(1e-9) == gpu_timing.MAX_LAUNCHES


def test_copy_counts_read_plus_write_like_the_kernels() -> None:
    from hpc.kernels.bench import pool_bytes
    from hpc.kernels.geometry import pool_geometry
    n = 8192
    assert gpu_timing.copy_bytes(n * n * 4) == 2 * n * n * 4
    geom = pool_geometry(n, n, 2, 2, 0, False)
    assert pool_bytes((1, 1, n, n), geom, 4) == n * n * 4 + (n // 2) ** 2 * 4


class _FakeClockRuntime(gpu_timing.CudaRuntime):
    """A runtime whose 'events' read a counter advanced by each launch: checks the loop's
    arithmetic (per-launch time = sample / launches, flush outside the timed region)."""

    host_timed = False

    def __init__(self) -> None:
        self.t = 0.0
        self.flushes = 0
        self.flush_bytes: list[int] = []

    def sync(self) -> None:
        pass

    def event_pair(self):
        marks: dict[str, float] = {}
        return (lambda: marks.__setitem__("s", self.t), lambda: marks.__setitem__("e", self.t),
                lambda: marks["e"] - marks["s"])

    def l2_bytes(self):
        return 50 << 20

    def alloc_bytes(self, nbytes: int):
        self.flush_bytes.append(nbytes)
        return nbytes

    def fill(self, buf) -> None:
        self.flushes += 1
        self.t += 1.0  # a flush takes "long": it must never show in a sample


def test_time_launches_divides_by_the_launch_count_and_excludes_the_flush() -> None:
    rt = _FakeClockRuntime()
    used: list[int] = []

    def launch(i: int):
        def go() -> None:
            used.append(i)
            rt.t += 20e-6
        return go
    res = gpu_timing.time_launches(rt, [launch(0), launch(1), launch(2)], repeats=5, warmup=2)
    assert res["launches_per_sample"] == 50
    assert res["median_s"] == pytest.approx(20e-6) and res["min_s"] == pytest.approx(20e-6)
    assert rt.flushes == 6 and rt.flush_bytes == [100 << 20]
    assert set(used) == {0, 1, 2}  # the rotated inputs are all used


# --------------------------------------------------------------------------- matmul tolerance
def test_tf32_rounding_keeps_ten_mantissa_bits() -> None:
    x = np.array([1 + 2**-10, 1 + 2**-11, 1 + 3 * 2**-12, 1 + 2**-12], dtype=np.float32)
    np.testing.assert_array_equal(tolerance.round_to_tf32(x),
                                  np.array([1 + 2**-10, 1, 1 + 2**-10, 1], dtype=np.float32))


@pytest.mark.parametrize("n", [64, 200, 1100])
def test_float32_results_pass_and_tf32_results_fail_the_matmul_tolerance(n: int) -> None:
    from hpc.kernels import backend_numba
    from hpc.kernels.bench import make_matmul_input
    a, b = make_matmul_input(n, "float32", 1), make_matmul_input(n, "float32", 2)
    assert tolerance.matmul_error_ratio(a @ b, a, b) <= tolerance.MATMUL_TOL_FACTOR
    if n > 128:  # the numba kernel's k-blocking (bk=128) is exercised
        assert tolerance.matmul_error_ratio(backend_numba.matmul(a, b), a, b) <= tolerance.MATMUL_TOL_FACTOR
    tf32 = tolerance.round_to_tf32(a).astype(np.float64) @ tolerance.round_to_tf32(b).astype(np.float64)
    assert tolerance.matmul_error_ratio(tf32, a, b) > 3 * tolerance.MATMUL_TOL_FACTOR


def test_check_rows_covers_small_results_and_samples_large_ones() -> None:
    assert list(tolerance.check_rows(10)) == list(range(10))
    rows = tolerance.check_rows(8192)
    assert len(rows) == tolerance.CHECK_ROWS and rows[0] == 0 and rows[-1] == 8191
    assert len(set(rows.tolist())) == len(rows)
