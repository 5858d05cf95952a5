"""Classification metrics as pure functions over label arrays, plus CSV/PNG writers.

Precision of a class that was never predicted (and recall of a class absent from the
labels) is undefined: returned as NaN, written to JSON as null, never silently as 0.
"""
from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np

from hpc.atomic import atomic_path, atomic_write_text


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class i predicted as class j."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name}: labels must be in 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def accuracy_from_cm(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float((t == p).mean()) if t.size else float("nan")


def precision_recall(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (column-wise) and recall (row-wise); NaN where undefined."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(actual > 0, tp / actual, np.nan)
    return precision, recall


def confusion_csv(cm: np.ndarray, class_names: Sequence[str]) -> str:
    """CSV text: header ``true\\predicted,<classes>``, one row per true class."""
    out = io.StringIO()
    out.write("true\\predicted," + ",".join(class_names) + "\n")
    for name, row in zip(class_names, np.asarray(cm)):
        out.write(name + "," + ",".join(str(int(v)) for v in row) + "\n")
    return out.getvalue()


def write_confusion_csv(path: str | os.PathLike[str], cm: np.ndarray, class_names: Sequence[str]) -> None:
    atomic_write_text(path, confusion_csv(cm, class_names))


def write_confusion_png(path: str | os.PathLike[str], cm: np.ndarray, class_names: Sequence[str],
                        title: str = "test confusion matrix") -> None:
    """A labelled heat map with the count in each cell (matplotlib, Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.2 * k + 2))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), labels=class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    vmax = cm.max() if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- counts and intervals

def wilson_interval(correct: int, count: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct/count`` (scipy's binomtest).

    Wilson rather than the normal approximation: it stays inside [0, 1] and keeps its
    coverage near 0 % and 100 % accuracy, where our test accuracies live. NaNs for n = 0.
    """
    if count <= 0:
        return float("nan"), float("nan")
    if not 0 <= correct <= count:
        raise ValueError(f"correct={correct} must be in 0..count={count}")
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(count)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def majority_vote(y_pred: Sequence[int] | np.ndarray, groups: Sequence[str] | np.ndarray,
                  num_classes: int) -> dict[str, int]:
    """Predicted class of every group (subject): the class most of its slices were given.
    A tie goes to the lowest class index (deterministic, and never in the model's favour
    more often than chance)."""
    p = np.asarray(y_pred, dtype=np.int64)
    g = np.asarray(groups, dtype=object)
    if p.shape != g.shape:
        raise ValueError(f"y_pred {p.shape} and groups {g.shape} differ in shape")
    return {str(name): int(np.argmax(np.bincount(p[g == name], minlength=num_classes)))
            for name in dict.fromkeys(g.tolist())}


def subject_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     subjects: Sequence[str] | np.ndarray, num_classes: int) -> tuple[int, int]:
    """(subjects classified correctly by majority vote, subjects). Every slice of a subject
    must carry the same true label."""
    t = np.asarray(y_true, dtype=np.int64)
    g = np.asarray(subjects, dtype=object)
    votes = majority_vote(y_pred, g, num_classes)
    correct = 0
    for name, predicted in votes.items():
        truth = np.unique(t[g == name])
        if truth.size != 1:
            raise ValueError(f"subject {name!r} has slices of several classes {truth.tolist()}")
        correct += int(predicted == truth[0])
    return correct, len(votes)
