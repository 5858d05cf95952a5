"""Deterministic train/val/test assignment (pure functions of labels, order and a seed).

Two methods:
- ``stratified``: per class, a seeded permutation; the first round(n*test) samples go to
  test, the next round(n*val) to val, the rest to train. Class proportions are preserved and
  the result depends only on (labels, seed, fractions).
- ``holdout_first``: the study's split. Per class, the first ``test_first_k`` samples in
  dataset order (source file, volume, slice index ascending) are the test set; of the rest,
  a seeded ``val`` fraction per class is validation.
"""
from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


def _check_fractions(val: float, test: float) -> None:
    if not (0.0 <= val < 1.0 and 0.0 <= test < 1.0 and val + test < 1.0):
        raise ValueError(f"split fractions val={val}, test={test}: each in [0, 1) and val + test < 1")


def stratified_split(labels: np.ndarray, *, val: float, test: float, seed: int) -> np.ndarray:
    """uint8 split codes (0 train, 1 val, 2 test), stratified by label, seeded."""
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
    """The study's split: first K samples of every class (in array order) are test."""
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


def make_split(labels: np.ndarray, cfg: dict) -> np.ndarray:
    """Dispatch on ``dataset.split.method`` (config section already validated)."""
    method = cfg["method"]
    if method == "stratified":
        return stratified_split(labels, val=cfg["val"], test=cfg["test"], seed=cfg["seed"])
    if method == "holdout_first":
        return holdout_first_split(labels, test_first_k=cfg["test_first_k"], val=cfg["val"],
                                   seed=cfg["seed"])
    raise ValueError(f"split.method={method!r}: expected 'stratified' or 'holdout_first'")
