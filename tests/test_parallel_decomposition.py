"""Pure decomposition of hpc.parallel (no MPI): splits, halos, local plans, grids."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hpc.kernels import api
from hpc.kernels.geometry import pool_geometry
from hpc.parallel import decomposition as d


def _covers_exactly(bounds, n):
    seen = np.zeros(n, dtype=int)
    for a, b in bounds:
        assert 0 <= a <= b <= n
        seen[a:b] += 1
    return bool((seen == 1).all())


@given(st.integers(0, 500), st.integers(1, 40))
def test_even_split_covers_each_item_once_and_balances(n, parts):
    bounds = d.even_split(n, parts)
    assert len(bounds) == parts
    assert _covers_exactly(bounds, n)
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert [a for a, _ in bounds] == sorted(a for a, _ in bounds)


@given(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=12), st.integers(0, 2000))
def test_weighted_split_is_proportional_and_complete(weights, extra):
    n = len(weights) + extra
    bounds = d.weighted_split(n, weights)
    assert _covers_exactly(bounds, n)
    sizes = np.array([b - a for a, b in bounds])
    assert (sizes >= 1).all()
    # largest-remainder rounding of the free items: within one item of the exact share
    free = n - len(weights)
    exact = free * np.array(weights) / sum(weights)
    assert np.all(np.abs((sizes - 1) - exact) < 1.0 + 1e-9)


def test_weighted_split_known_values():
    assert d.weighted_split(10, [1, 1]) == [(0, 5), (5, 10)]
    assert d.weighted_split(10, [3, 1], min_items=0) == [(0, 8), (8, 10)] or \
        d.weighted_split(10, [3, 1], min_items=0) == [(0, 7), (7, 10)]
    assert d.weighted_split(12, [1, 2, 3], min_items=0) == [(0, 2), (2, 6), (6, 12)]


def test_split_errors_name_the_problem():
    with pytest.raises(d.DecompositionError, match="more ranks than output rows"):
        d.split(3, 4, what="output rows")
    with pytest.raises(d.DecompositionError, match="weights"):
        d.weighted_split(10, [0, 0])
    with pytest.raises(d.DecompositionError, match="got 1 weights for 2 ranks"):
        d.split(10, 2, [1.0])


geometries = st.tuples(
    st.integers(1, 40), st.integers(1, 12),           # H, W
    st.integers(1, 6), st.integers(1, 4),             # k, s
    st.integers(0, 3), st.booleans(),                 # p, ceil
).filter(lambda t: t[4] <= t[2] // 2 and t[0] + 2 * t[4] >= t[2] and t[1] + 2 * t[4] >= t[2])


@settings(max_examples=200, deadline=None)
@given(geometries, st.integers(1, 8), st.data())
def test_halo_covers_every_window_of_its_block(g, ranks, data):
    h, w, k, s, p, ceil = g
    geom = pool_geometry(h, w, k, s, p, ceil)
    ranks = min(ranks, geom.out_h)
    bounds = d.even_split(geom.out_h, ranks)
    assert _covers_exactly(bounds, geom.out_h)
    for (a, b), (i0, i1) in zip(bounds, d.halo_rows(geom, bounds)):
        for o in range(a, b):
            lo, hi = o * s - p, o * s - p + k
            assert i0 <= max(lo, 0) and min(hi, h) <= i1   # every real row of every window
        assert 0 <= i0 < i1 <= h


def _pool(x, geom, op, pad_h, count_include_pad):
    kw = dict(kernel_size=geom.kernel, stride=geom.stride, padding=(pad_h, geom.padding[1]),
              ceil_mode=geom.ceil_mode, backend="numpy")
    if op == "max":
        return api.maxpool2d(x, **kw)
    return api.avgpool2d(x, count_include_pad=count_include_pad, **kw)


@settings(max_examples=150, deadline=None)
@given(geometries, st.integers(1, 6), st.sampled_from(["max", "avg"]), st.booleans(), st.data())
def test_local_plan_reproduces_global_rows_exactly(g, ranks, op, cip, data):
    """Each block computed from only its halo (plus discarded lead filler) equals the
    global result bit for bit: the property the MPI code relies on."""
    h, w, k, s, p, ceil = g
    geom = pool_geometry(h, w, k, s, p, ceil)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.standard_normal((2, h, w)).astype(np.float32)
    ref = _pool(x, geom, op, p, cip)
    weights = data.draw(st.lists(st.floats(0.1, 10), min_size=ranks, max_size=ranks))
    ranks = min(ranks, geom.out_h)
    bounds = d.split(geom.out_h, ranks, weights[:ranks])
    for a, b in bounds:
        plan = d.local_plan(geom, a, b)
        assert (plan.in_start, plan.in_stop) == geom.input_rows_for(a, b)
        local = np.full((2, plan.local_rows, w), np.nan, dtype=np.float32)  # filler is garbage
        local[:, plan.lead:, :] = x[:, plan.in_start:plan.in_stop, :]
        out = _pool(local, geom, op, plan.pad_h, cip)[:, plan.skip:plan.skip + plan.out_rows]
        np.testing.assert_array_equal(out, ref[:, a:b])


def test_local_plan_known_cases():
    geom = pool_geometry(10, 10, 3, 2, 1, False)     # out_h = 5; windows start at -1,1,3,5,7
    assert d.local_plan(geom, 0, 5) == d.LocalPlan(0, 5, 0, 10, 0, 1, 0)
    assert d.local_plan(geom, 1, 3) == d.LocalPlan(1, 3, 1, 6, 0, 0, 0)        # interior
    assert d.local_plan(geom, 3, 5) == d.LocalPlan(3, 5, 5, 10, 0, 0, 0)       # last window ends at H
    geom = pool_geometry(9, 9, 3, 2, 1, False)      # windows -1,1,3,5,7: the last reaches row 9
    assert d.local_plan(geom, 3, 5) == d.LocalPlan(3, 5, 5, 9, 1, 1, 1)        # bottom, lead 1


def test_batch_split_prefers_samples_then_planes_then_rows():
    assert d.batch_split(8, 3, 100, 4).axis == "n"
    assert d.batch_split(2, 3, 100, 4) == d.BatchSplit("nc", [(0, 2), (2, 4), (4, 5), (5, 6)])
    assert d.batch_split(1, 3, 100, 4).axis == "rows"
    with pytest.raises(d.DecompositionError, match="more ranks than output rows"):
        d.batch_split(1, 1, 3, 4)


def test_counts_displs_in_elements():
    assert d.counts_displs([(0, 3), (3, 5)], unit=7) == ([21, 14], [0, 21])
    assert d.counts_displs([(0, 0), (0, 2)]) == ([0, 2], [0, 0])


def test_overlap_detection():
    assert not d.ranges_overlap([(0, 4), (4, 8)])
    assert d.ranges_overlap([(0, 5), (4, 8)])
    assert not d.ranges_overlap([(0, 4), (4, 4), (4, 8)])


@pytest.mark.parametrize("ranks, grid", [(1, (1, 1)), (2, (1, 2)), (4, (2, 2)), (6, (2, 3)),
                                         (7, (1, 7)), (12, (3, 4)), (16, (4, 4)), (32, (4, 8))])
def test_process_grid(ranks, grid):
    assert d.process_grid(ranks) == grid


@given(st.integers(1, 60), st.integers(1, 5), st.integers(1, 5))
def test_summa_panels_cover_k_once_with_owners(k, pr, pc):
    assume(k >= max(pr, pc))
    ka, kb = d.even_split(k, pc), d.even_split(k, pr)
    panels = d.summa_panels(k, ka, kb)
    assert _covers_exactly([(a, b) for a, b, _, _ in panels], k)
    for k0, k1, oa, ob in panels:
        assert ka[oa][0] <= k0 and k1 <= ka[oa][1]
        assert kb[ob][0] <= k0 and k1 <= kb[ob][1]
