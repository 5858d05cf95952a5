"""Deterministic train/val/test assignment (pure functions of labels, subjects, order and a seed).

Methods (``dataset.split.method``):
- ``subject`` (default): grouped by subject, stratified by class. Per class, a seeded
  permutation of the class's subjects; the first round(n*test) subjects (at least one when
  test > 0) go to test, the next round(n*val) (at least one when val > 0) to val, the rest to
  train. No subject has slices in two splits, so test accuracy measures generalisation to
  people the network has never seen.
- ``slice`` (old name ``stratified``): per class, a seeded permutation of the *slices*.
  Leaky: neighbouring slices of one volume land in train and test.
- ``holdout_first``: the study's split. Per class, the first ``test_first_k`` slices in
  dataset order (source file, volume, slice index ascending) are the test set; of the rest,
  a seeded ``val`` fraction per class is validation. Leaky in the same way.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
SPLIT_METHODS: tuple[str, ...] = ("subject", "slice", "stratified", "holdout_first")
LEAKY_METHODS: frozenset[str] = frozenset({"slice", "stratified", "holdout_first"})


class SplitError(ValueError):
    """The split cannot be made as configured (e.g. too few subjects in a class)."""


def _check_fractions(val: float, test: float) -> None:
    if not (0.0 <= val < 1.0 and 0.0 <= test < 1.0 and val + test < 1.0):
        raise ValueError(f"split fractions val={val}, test={test}: each in [0, 1) and val + test < 1")


def subject_counts(n_subjects: int, *, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) subjects of a class with ``n_subjects``: every split with a
    non-zero fraction gets at least one subject, train keeps at least one."""
    _check_fractions(val, test)
    n_test = max(1 if test > 0 else 0, int(round(n_subjects * test)))
    n_val = max(1 if val > 0 else 0, int(round(n_subjects * val)))
    return n_subjects - n_test - n_val, n_val, n_test


def min_subjects(*, val: float, test: float) -> int:
    """Fewest subjects a class needs for the subject split with these fractions."""
    n = 1
    while subject_counts(n, val=val, test=test)[0] < 1:
        n += 1
    return n


def subject_split(labels: np.ndarray, subjects: Sequence[str], *, val: float, test: float,
                  seed: int) -> np.ndarray:
    """uint8 split codes, one per slice, grouped by subject and stratified by label.

    Raises SplitError naming the class when it has too few subjects, or a subject that has
    slices of two classes.
    """
    labels = np.asarray(labels)
    subjects = np.asarray(subjects, dtype=object)
    if subjects.shape != labels.shape:
        raise ValueError(f"subjects {subjects.shape} and labels {labels.shape} differ in shape")
    split = np.full(labels.shape, TRAIN, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = labels == label
        names = sorted(set(subjects[members].tolist()))
        other = set(subjects[~members].tolist()) & set(names)
        if other:
            raise SplitError(f"subject(s) {sorted(other)} have slices in more than one class")
        n_train, n_val, n_test = subject_counts(len(names), val=val, test=test)
        if n_train < 1:
            raise SplitError(f"class {label}: {len(names)} subject(s) {names}; the subject split "
                             f"with val={val}, test={test} needs at least "
                             f"{min_subjects(val=val, test=test)}")
        order = [names[i] for i in rng.permutation(len(names))]
        test_s, val_s = set(order[:n_test]), set(order[n_test:n_test + n_val])
        split[members & np.isin(subjects, list(test_s))] = TEST
        split[members & np.isin(subjects, list(val_s))] = VAL
    return split


def stratified_split(labels: np.ndarray, *, val: float, test: float, seed: int) -> np.ndarray:
    """Per-slice split codes (0 train, 1 val, 2 test), stratified by label, seeded. Leaky."""
    _check_fractions(val, test)
    labels = np.asarray(labels)
    split = np.full(labels.shape, TRAIN, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[rng.permutation(members.size)]
        n_test = int(round(members.size * test))
        n_val = int(round(members.size * val))
        split[order[:n_test]] = TEST
        split[order[n_test:n_test + n_val]] = VAL
    return split


def holdout_first_split(labels: np.ndarray, *, test_first_k: int, val: float, seed: int) -> np.ndarray:
    """The study's split: first K samples of every class (in array order) are test. Leaky."""
    if test_first_k < 0:
        raise ValueError(f"test_first_k={test_first_k}: expected >= 0")
    _check_fractions(val, 0.0)
    labels = np.asarray(labels)
    split = np.full(labels.shape, TRAIN, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        split[members[:test_first_k]] = TEST
        rest = members[test_first_k:]
        n_val = int(round(rest.size * val))
        split[rest[rng.permutation(rest.size)[:n_val]]] = VAL
    return split


def make_split(labels: np.ndarray, cfg: dict, subjects: Sequence[str] | None = None) -> np.ndarray:
    """Dispatch on ``dataset.split.method`` (config section already validated)."""
    method = cfg.get("method", "subject")
    if method == "subject":
        if subjects is None:
            raise ValueError("split.method 'subject' needs the subject of every slice")
        return subject_split(labels, subjects, val=cfg["val"], test=cfg["test"], seed=cfg["seed"])
    if method in ("slice", "stratified"):
        return stratified_split(labels, val=cfg["val"], test=cfg["test"], seed=cfg["seed"])
    if method == "holdout_first":
        return holdout_first_split(labels, test_first_k=cfg["test_first_k"], val=cfg["val"],
                                   seed=cfg["seed"])
    raise ValueError(f"split.method={method!r}: expected one of {list(SPLIT_METHODS)}")


def is_leaky(method: str) -> bool:
    """True for the per-slice splits, where one volume's slices can sit in train and test."""
    return method in LEAKY_METHODS


__all__ = ["TRAIN", "VAL", "TEST", "SPLIT_NAMES", "SPLIT_METHODS", "SplitError", "subject_split",
           "stratified_split", "holdout_first_split", "make_split", "min_subjects",
           "subject_counts", "is_leaky"]
