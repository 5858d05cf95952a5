"""The original study's PUBLISHED figures, as data, to print next to our measurements.

Every number here is quoted from the thesis as restated in the project's issue texts
(issues 3, 4 and 5); none was measured by this suite, none is interpolated, and where
the text gives a range the range is kept (``low``/``high``) instead of a midpoint.
The issue text also mentions a K20 max-pooling table but quotes no figures from it, so
no K20 row is stored: inventing one would be worse than leaving the gap visible.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SOURCE_NOTE = ("Quoted from the original thesis (as restated in the project issues); "
               "not measured by this suite.")


@dataclass(frozen=True)
class StudyFigure:
    """One published number (or range) with what it measured and where it was quoted from.

    ``value`` is set for a single figure, ``low``/``high`` for a range.
    """

    key: str
    topic: str            # "kernel", "scaling", "training"
    what: str
    unit: str
    device: str | None
    source: str           # which issue text quotes it
    value: float | None = None
    low: float | None = None
    high: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""       # short form for table cells; ``what`` is the full description

    def __post_init__(self) -> None:
        single = self.value is not None
        ranged = self.low is not None and self.high is not None
        if single == ranged:
            raise ValueError(f"StudyFigure {self.key!r}: give either value or low/high")
        if ranged and self.low > self.high:  # type: ignore[operator]
            raise ValueError(f"StudyFigure {self.key!r}: low > high")

    @property
    def is_range(self) -> bool:
        return self.value is None

    def display(self) -> str:
        """Human-readable value with unit; ranges as 'low-high'."""
        def fmt(v: float) -> str:
            return f"{v:g}"
        body = f"{fmt(self.low)}\u2013{fmt(self.high)}" if self.is_range else fmt(self.value)  # type: ignore[arg-type]
        return f"{body}%" if self.unit == "%" else f"{body} {self.unit}".strip()


STUDY_FIGURES: tuple[StudyFigure, ...] = (
    StudyFigure(
        key="maxpool_1024_gpu_per_window", topic="kernel",
        what="max pooling of a 1024x1024 image, per-window GPU round trip "
             "(copy each 2x2 window to the GPU, multiply by identity, copy back, max on CPU)",
        unit="s", device="NVIDIA Tesla T4", source="issue 3", low=296.0, high=982.0,
        params={"op": "maxpool2d", "backend": "study", "variant": "gpu-per-window",
                "shape": [1024, 1024]},
        label="max pooling, per-window GPU round trip (identity matmul)"),
    StudyFigure(
        key="maxpool_1024_cpu_serial", topic="kernel",
        what="max pooling of a 1024x1024 image, serial CPU version of the same method",
        unit="s", device="Intel Xeon (CPU)", source="issue 3", low=5.0, high=9.0,
        params={"op": "maxpool2d", "backend": "study", "variant": "serial",
                "shape": [1024, 1024]},
        label="max pooling, serial CPU"),
    StudyFigure(
        key="matmul_2048_numba_cuda", topic="kernel",
        what="one 2048x2048 matrix product with the study's hand-written numba.cuda kernels "
             "(naive, branchy, shared-memory tiles)",
        unit="s", device=None, source="issue 3", value=508.0,
        params={"op": "matmul", "backend": "study", "shape": [2048, 2048]},
        label="matmul, hand-written numba.cuda kernels"),
    StudyFigure(
        key="amdahl_parallel_fraction", topic="scaling",
        what="parallel fraction used for the study's Amdahl speed-up",
        unit="%", device=None, source="issue 6", value=61.21),
    StudyFigure(
        key="train_25_epochs_acc", topic="training",
        what="AlexNet test accuracy after 25 epochs", unit="%",
        device="Intel Core i7 / NVIDIA GTX 1050", source="issue 5", value=87.88,
        params={"epochs": 25}),
    StudyFigure(
        key="train_25_epochs_time", topic="training",
        what="AlexNet training time for 25 epochs", unit="s",
        device="Intel Core i7 / NVIDIA GTX 1050", source="issue 5", value=24.87,
        params={"epochs": 25}),
    StudyFigure(
        key="train_50_epochs_acc", topic="training",
        what="AlexNet test accuracy after 50 epochs", unit="%",
        device="Intel Core i7 / NVIDIA GTX 1050", source="issue 5", value=94.95,
        params={"epochs": 50}),
    StudyFigure(
        key="train_50_epochs_time", topic="training",
        what="AlexNet training time for 50 epochs", unit="s",
        device="Intel Core i7 / NVIDIA GTX 1050", source="issue 5", value=54.31,
        params={"epochs": 50}),
)

# Set-up facts quoted alongside the figures (context for the side-by-side tables).
STUDY_TRAINING_SETUP: dict[str, str] = {
    "classes": "3 (anatomical, functional, metaanalytic), 91 slices each",
    "split": "245 train / 28 val / 99 test",
    "batch size": "256",
    "optimizer": "Adam, lr 1e-3 (from an LR range test)",
    "hardware": "Intel Core i7 / NVIDIA GTX 1050",
    "input": "32x32 slices copied to RGB",
}
STUDY_NOTES: tuple[str, ...] = (
    "The study's max-pooling tables covered image sizes 4 to 1024 (time grows about 4x per "
    "size doubling); the issue quotes only the 1024x1024 figures, so only those are shown.",
    "The issue also mentions a Tesla K20 max-pooling table but quotes no figures from it.",
    "The study planned MPI runs on 2 cluster nodes with 2 to 32 processes but never got past "
    "per-window GPU copies; its speed-up figure is an Amdahl estimate with a 61.21% parallel fraction.",
)

STUDY_PARALLEL_FRACTION = 0.6121


def figures(topic: str | None = None) -> list[StudyFigure]:
    """The published figures, optionally only one topic ("kernel", "scaling", "training")."""
    return [f for f in STUDY_FIGURES if topic is None or f.topic == topic]


def figure(key: str) -> StudyFigure:
    """Look one figure up by key; KeyError names the key and the known ones."""
    for f in STUDY_FIGURES:
        if f.key == key:
            return f
    raise KeyError(f"no study figure {key!r}; known: {', '.join(f.key for f in STUDY_FIGURES)}")
