"""Data, training and evaluation shared by the compression methods.

Every method is judged on the same held-out test split with the same arithmetic: ``k``
correct out of ``n`` and a 95 % Wilson interval (``scipy.stats.binomtest``), because the
MRI test split is small (tens of slices) and a bare percentage would hide how little two
accuracies can be told apart. The validation split is for choices (NetAdapt's candidate),
the training split for training; the test split is read only for the reported figures.

The dataset is read through the public ``hpc.train.data.SliceDataset`` (one HDF5 read per
split) and normalised with the training split's channel statistics, as ``hpc train`` does.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn

from hpc.train.data import SliceDataset, channel_stats, validate_file


@dataclasses.dataclass
class Split:
    """One split as normalised tensors: images (N, C, H, W) float32, labels (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.numel())


@dataclasses.dataclass
class Data:
    train: Split
    val: Split
    test: Split
    class_names: list[str]
    image_shape: tuple[int, ...]
    mean: list[float]
    std: list[float]
    path: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_data(path: str | Path) -> Data:
    """All three splits of an hpc-slices file, normalised with training-split statistics."""
    meta = validate_file(path)
    sets = {s: SliceDataset(path, s, preload=True, meta=meta) for s in ("train", "val", "test")}
    mean, std = channel_stats(sets["train"])
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    splits = {}
    for name, ds in sets.items():
        x = torch.from_numpy(np.ascontiguousarray(ds.load_all()))
        splits[name] = Split((x - m) / sd, torch.from_numpy(np.asarray(ds.labels, dtype=np.int64)))
        ds.close()
    if len(splits["val"]) == 0 or len(splits["test"]) == 0:
        raise ValueError(f"{path}: the compression stage needs non-empty val and test splits "
                         f"(val {len(splits['val'])}, test {len(splits['test'])})")
    return Data(splits["train"], splits["val"], splits["test"], list(meta["class_names"]),
                tuple(meta["image_shape"]), mean, std, str(path))


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """k correct of n, with the 95 % Wilson interval."""

    correct: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    def as_metrics(self, prefix: str) -> dict[str, Any]:
        return {f"{prefix}_accuracy": self.value, f"{prefix}_correct": self.correct,
                f"{prefix}_total": self.total, f"{prefix}_ci_low": self.low,
                f"{prefix}_ci_high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.correct}/{self.total}, 95% CI {self.low:.3f}-{self.high:.3f})"


def wilson(correct: int, total: int) -> Accuracy:
    """Accuracy k/n with scipy's Wilson score interval (95 %)."""
    if total <= 0:
        raise ValueError(f"total={total}: cannot compute an accuracy over no samples")
    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=0.95, method="wilson")
    return Accuracy(int(correct), int(total), float(ci.low), float(ci.high))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted class per sample (eval mode; the model's training mode is restored)."""
    was = model.training
    model.eval()
    try:
        out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def loss_of(model: nn.Module, split: Split, batch_size: int = 256) -> float:
    """Mean cross-entropy over a split (eval mode): the tie-breaker between equal accuracies."""
    was = model.training
    model.eval()
    try:
        total = sum(float(nn.functional.cross_entropy(model(split.x[i:i + batch_size]),
                                                      split.y[i:i + batch_size], reduction="sum"))
                    for i in range(0, len(split), batch_size))
    finally:
        model.train(was)
    return total / max(1, len(split))


def accuracy(model: nn.Module, split: Split) -> Accuracy:
    return wilson(int((predict(model, split.x) == split.y).sum()), len(split))


def fit(model: nn.Module, split: Split, epochs: float = 1.0, batch_size: int = 64, lr: float = 1e-3,
        seed: int = 0, steps: int | None = None, params: Any = None,
        log: Callable[[str], Any] | None = None, label: str = "train",
        progress_every_s: float = 15.0) -> dict[str, float]:
    """Train with Adam and cross-entropy on shuffled mini-batches (no augmentation).

    ``steps`` (if given) overrides ``epochs``: a fixed number of optimiser steps, what NetAdapt's
    short-term fine-tune needs. ``params``: the tensors to optimise (default: the model's).
    ``log``: where progress lines go (step, epoch, mean loss since the last line, elapsed and
    estimated remaining seconds), at most one per ``progress_every_s`` plus the last step, so
    that a job log on a cluster shows a long training is alive and how long it has left.
    Returns the final mean training loss and the wall time.
    """
    n = len(split)
    if n == 0:
        raise ValueError("fit: the training split is empty")
    batch_size = max(1, min(batch_size, n))
    per_epoch = (n + batch_size - 1) // batch_size
    total = steps if steps is not None else max(1, int(round(epochs * per_epoch)))
    gen = torch.Generator().manual_seed(seed)
    # fused: one kernel per parameter for Adam's update instead of a chain of element-wise
    # ops; on these networks' 23 M weights the update is a large share of a CPU step
    # (binarised AlexNet, batch 32, one thread: 1.08 -> 0.89 s per step, 2026-12-02)
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr, fused=True)
    model.train()
    t0 = time.perf_counter()
    losses: list[float] = []
    order = torch.randperm(n, generator=gen)
    pos = 0
    last_log, last_step = t0, 0
    for step in range(1, total + 1):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(split.x[idx]), split.y[idx])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        now = time.perf_counter()
        if log is not None and (step == total or now - last_log >= progress_every_s):
            elapsed = now - t0
            log(progress_line(label, step, total, per_epoch, float(np.mean(losses[last_step:])), elapsed))
            last_log, last_step = now, step
    model.eval()
    tail = losses[-per_epoch:]
    return {"train_loss": float(np.mean(tail)), "train_s": time.perf_counter() - t0, "steps": total}


def progress_line(label: str, step: int, total: int, per_epoch: int, loss: float, elapsed_s: float) -> str:
    """One progress line of :func:`fit`: where it is, the recent loss and the time left (linear)."""
    left = elapsed_s * (total - step) / step if step else float("nan")
    return (f"{label}: step {step}/{total} (epoch {step / per_epoch:.2f}), loss {loss:.4f}, "
            f"{elapsed_s:.0f} s elapsed, ~{left:.0f} s left")


def cpu_latency_s(model: nn.Module, input_shape: tuple[int, ...], batch: int = 1,
                  repeats: int = 20) -> float:
    """Median wall time of one forward pass of a batch on CPU (after two warm-up passes)."""
    x = torch.zeros((batch, *input_shape))
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            model(x)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return float(np.median(times))
