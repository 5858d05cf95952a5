"""Deterministic, stratified splits (hpc.data.split)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpc.data.split import TEST, TRAIN, VAL, holdout_first_split, make_split, stratified_split


def test_stratified_split_is_deterministic_for_a_seed() -> None:
    labels = np.repeat(np.arange(4), 70)
    a = stratified_split(labels, val=0.15, test=0.15, seed=3)
    b = stratified_split(labels, val=0.15, test=0.15, seed=3)
    c = stratified_split(labels, val=0.15, test=0.15, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@settings(max_examples=50, deadline=None)
@given(counts=st.lists(st.integers(1, 60), min_size=1, max_size=5),
       val=st.floats(0, 0.4), test=st.floats(0, 0.4), seed=st.integers(0, 1000))
def test_stratified_split_keeps_class_proportions(counts: list[int], val: float, test: float,
                                                  seed: int) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    split = stratified_split(labels, val=val, test=test, seed=seed)
    for k, n in enumerate(counts):
        member = split[labels == k]
        assert np.count_nonzero(member == TEST) == round(n * test)
        assert np.count_nonzero(member == VAL) == round(n * val)
        assert np.count_nonzero(member == TRAIN) == n - round(n * test) - round(n * val)


def test_holdout_first_takes_the_first_k_of_each_class_as_test() -> None:
    labels = np.array([0] * 5 + [1] * 6 + [0] * 2)
    split = holdout_first_split(labels, test_first_k=3, val=0.0, seed=0)
    assert split.tolist() == [2, 2, 2, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0]


def test_holdout_first_draws_val_from_the_rest_only() -> None:
    labels = np.repeat([0, 1], 20)
    split = holdout_first_split(labels, test_first_k=5, val=0.25, seed=1)
    for k in (0, 1):
        member = split[labels == k]
        assert member[:5].tolist() == [TEST] * 5
        assert np.count_nonzero(member[5:] == VAL) == 4 and TEST not in member[5:]


def test_invalid_fractions_name_the_parameters() -> None:
    with pytest.raises(ValueError, match="val=0.6, test=0.5"):
        stratified_split(np.zeros(4), val=0.6, test=0.5, seed=0)


def test_make_split_dispatches_on_method() -> None:
    labels = np.repeat([0, 1], 10)
    cfg = {"method": "holdout_first", "seed": 0, "val": 0.0, "test": 0.5, "test_first_k": 2}
    assert np.count_nonzero(make_split(labels, cfg) == TEST) == 4
    with pytest.raises(ValueError, match="split.method='random'"):
        make_split(labels, {**cfg, "method": "random"})
