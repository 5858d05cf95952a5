"""Deterministic splits (hpc.data.split): grouped by subject (default) and the leaky per-slice ones."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpc.data.split import (TEST, TRAIN, VAL, SplitError, holdout_first_split, is_leaky, make_split,
                            min_subjects, stratified_split, subject_counts, subject_split)


def _subjects_dataset(per_class: list[int], slices: int = 5) -> tuple[np.ndarray, np.ndarray]:
    labels, subjects = [], []
    for c, n in enumerate(per_class):
        for i in range(n):
            labels += [c] * slices
            subjects += [f"c{c}-s{i}"] * slices
    return np.array(labels), np.array(subjects, dtype=object)


@settings(max_examples=40)
@given(st.lists(st.integers(3, 15), min_size=1, max_size=4), st.integers(1, 8),
       st.sampled_from([(0.15, 0.15), (0.2, 0.2), (0.0, 0.3), (0.25, 0.0)]), st.integers(0, 2**31))
def test_subject_split_never_puts_one_subject_in_two_splits(per_class, slices, fractions, seed) -> None:
    val, test = fractions
    labels, subjects = _subjects_dataset(per_class, slices)
    split = subject_split(labels, subjects, val=val, test=test, seed=seed)
    for name in set(subjects):
        assert len(set(split[subjects == name])) == 1
    for c, n in enumerate(per_class):                    # stratified: every class in every split
        n_train, n_val, n_test = subject_counts(n, val=val, test=test)
        members = labels == c
        for code, expected in ((TRAIN, n_train), (VAL, n_val), (TEST, n_test)):
            assert len(set(subjects[members & (split == code)])) == expected
        assert n_train >= 1 and (n_test >= 1) == (test > 0) and (n_val >= 1) == (val > 0)


def test_subject_split_is_deterministic_and_seeded() -> None:
    labels, subjects = _subjects_dataset([12, 12], 4)
    a = subject_split(labels, subjects, val=0.15, test=0.15, seed=1)
    assert np.array_equal(a, subject_split(labels, subjects, val=0.15, test=0.15, seed=1))
    assert not np.array_equal(a, subject_split(labels, subjects, val=0.15, test=0.15, seed=2))
    assert [int(np.count_nonzero(a == code)) for code in (TRAIN, VAL, TEST)] == [64, 16, 16]


def test_class_with_too_few_subjects_is_an_error_naming_class_and_subjects() -> None:
    labels, subjects = _subjects_dataset([5, 2])
    assert min_subjects(val=0.15, test=0.15) == 3 and min_subjects(val=0.0, test=0.2) == 2
    with pytest.raises(SplitError, match=r"class 1: 2 subject\(s\) \['c1-s0', 'c1-s1'\].*at least 3"):
        subject_split(labels, subjects, val=0.15, test=0.15, seed=0)


def test_subject_with_two_classes_is_an_error() -> None:
    labels = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    subjects = np.array(["a", "b", "c", "d", "e", "a", "f", "g"], dtype=object)
    with pytest.raises(SplitError, match=r"\['a'\] have slices in more than one class"):
        subject_split(labels, subjects, val=0.0, test=0.3, seed=0)


def test_only_the_subject_split_is_not_leaky() -> None:
    assert [m for m in ("subject", "slice", "stratified", "holdout_first") if not is_leaky(m)] == ["subject"]


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
    assert np.count_nonzero(make_split(labels, {**cfg, "method": "slice"}) == TEST) == 10
    subjects = np.array([f"s{i // 2}" for i in range(20)], dtype=object)
    by_subject = make_split(labels, {**cfg, "method": "subject", "test": 0.4}, subjects)
    assert np.count_nonzero(by_subject == TEST) == 8 and np.array_equal(by_subject[::2], by_subject[1::2])
    with pytest.raises(ValueError, match="needs the subject of every slice"):
        make_split(labels, {**cfg, "method": "subject"})
    with pytest.raises(ValueError, match="split.method='random'"):
        make_split(labels, {**cfg, "method": "random"})
