"""LR range test (Smith 2017; the fastai/"lr finder" recipe the study used to pick 1e-3).

Train from the initial weights while the learning rate grows exponentially from
``start_lr`` to ``end_lr`` over ``num_iter`` steps; record the exponentially smoothed loss;
stop once it exceeds ``diverge_factor`` x its minimum. Suggest the LR at the steepest
descent of the smoothed loss (and report the minimum-loss LR / 10 as the conservative one).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hpc.atomic import atomic_path, atomic_write_text
from hpc.train.loop import (Settings, _autocast, epoch_indices, make_loader, make_model,
                            prepare_data, resolve_device, seed_everything, set_determinism)
from hpc.train.transforms import Augment, step_generator


@dataclasses.dataclass(frozen=True)
class LRFindResult:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]          # raw batch losses
    smoothed: tuple[float, ...]        # bias-corrected exponential moving average
    suggested_lr: float                # steepest descent of the smoothed curve
    min_loss_lr: float                 # LR at the smoothed minimum
    diverged: bool


def lr_schedule(start_lr: float, end_lr: float, num_iter: int) -> np.ndarray:
    """Exponentially spaced LRs, start_lr at step 0, end_lr at step num_iter-1."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"start_lr={start_lr}, end_lr={end_lr}: need 0 < start_lr < end_lr")
    if num_iter < 2:
        raise ValueError(f"num_iter={num_iter}: need at least 2 steps")
    return start_lr * (end_lr / start_lr) ** (np.arange(num_iter) / (num_iter - 1))


def smooth(losses: Sequence[float], beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average (as in the fastai LR finder)."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** i))
    return np.asarray(out)


def suggest(lrs: Sequence[float], smoothed: Sequence[float], skip_start: int = 5,
            skip_end: int = 3) -> tuple[float, float]:
    """(steepest-descent LR, min-loss LR) of a smoothed loss curve (pure function)."""
    lrs_a, sm = np.asarray(lrs), np.asarray(smoothed)
    lo, hi = min(skip_start, len(sm) - 2), max(len(sm) - skip_end, min(skip_start, len(sm) - 2) + 2)
    seg_lr, seg = lrs_a[lo:hi], sm[lo:hi]
    grads = np.gradient(seg, np.log10(seg_lr))
    steepest = float(seg_lr[int(np.argmin(grads))])
    return steepest, float(lrs_a[int(np.argmin(sm))])


def lr_find(s: Settings, start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100,
            diverge_factor: float = 4.0) -> LRFindResult:
    device = resolve_device(s.device)
    if s.threads:
        torch.set_num_threads(s.threads)
    set_determinism(s.deterministic, device)
    seed_everything(s.seed)
    data = prepare_data(s)
    model = make_model(s, data).to(device)
    augment = Augment(tuple(data.mean), tuple(data.std), s.rotation_degrees, s.hflip, s.crop_padding)
    lrs = lr_schedule(start_lr, end_lr, num_iter)
    opt = torch.optim.Adam(model.parameters(), lr=float(lrs[0]), weight_decay=s.weight_decay) \
        if s.optimizer == "adam" else torch.optim.SGD(model.parameters(), lr=float(lrs[0]), momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    amp = bool(s.amp) if s.amp is not None else device.type == "cuda"
    raw: list[float] = []
    used: list[float] = []
    best = math.inf
    diverged = False
    step, epoch = 0, 0
    model.train()
    while step < num_iter and not diverged:
        order = epoch_indices(len(data.train), s.seed, epoch, 0, 1)
        for x, y in make_loader(data.train, order, s.batch_size, s.workers, device.type == "cuda"):
            if step >= num_iter:
                break
            for g in opt.param_groups:
                g["lr"] = float(lrs[step])
            x = augment.train(x.to(device), step_generator(s.seed, epoch, step))
            y = y.to(device)
            with _autocast(device, amp):
                loss = criterion(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.item())
            raw.append(value)
            used.append(float(lrs[step]))
            sm = smooth(raw)[-1]
            best = min(best, sm)
            step += 1
            if not math.isfinite(value) or sm > diverge_factor * best:
                diverged = True
                break
        epoch += 1
    data.train.close()
    sm_all = smooth(raw)
    steepest, min_lr = suggest(used, sm_all)
    return LRFindResult(tuple(used), tuple(raw), tuple(float(v) for v in sm_all), steepest,
                        min_lr / 10, diverged)


def write_outputs(result: LRFindResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """lr_find.csv (lr, loss, smoothed), lr_find.json (suggestions), lr_find.png (plot)."""
    out = Path(out_dir)
    rows = ["lr,loss,smoothed_loss"] + [f"{lr:.6e},{l:.6f},{s:.6f}"
                                        for lr, l, s in zip(result.lrs, result.losses, result.smoothed)]
    csv = atomic_write_text(out / "lr_find.csv", "\n".join(rows) + "\n")
    js = atomic_write_text(out / "lr_find.json", json.dumps({
        "suggested_lr": result.suggested_lr, "min_loss_lr_div10": result.min_loss_lr,
        "diverged": result.diverged, "steps": len(result.lrs)}, indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs, result.losses, alpha=0.3, label="batch loss")
    ax.plot(result.lrs, result.smoothed, label="smoothed")
    ax.axvline(result.suggested_lr, color="C3", ls="--", label=f"steepest {result.suggested_lr:.1e}")
    ax.axvline(result.min_loss_lr, color="C2", ls=":", label=f"min/10 {result.min_loss_lr:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out / "lr_find.png", suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    print(f"lr-find: suggested lr {result.suggested_lr:.2e} (steepest descent), "
          f"{result.min_loss_lr:.2e} (min loss / 10); plot {out / 'lr_find.png'}", file=sys.stderr)
    return {"csv": csv, "json": js, "png": out / "lr_find.png"}
