"""NetAdapt (Yang et al. 2018) with a MAC budget, on the suite's sequential AlexNet.

Each iteration i lowers the resource target by ``initial_reduction * R0 * decay**i`` MACs
(the reference implementation's schedule: ``-irr`` and ``-rd``). For every prunable layer it
builds one candidate: remove, from that layer only, the fewest output channels (a multiple
of the granularity, 8 for convolutions, 64 for linear layers) that bring the network to the
target, choosing the channels of smallest L2 norm; fine-tune the candidate briefly
(short-term, a fixed number of optimiser steps on the *training* split) and measure it on
the *validation* split. The most accurate candidate (ties: lower validation loss) becomes
the next network. The loop stops at the budget (``budget_ratio * R0``) or after
``max_iterations``; then the final network gets a long-term fine-tune. The test split is not
read here: the caller evaluates the final and the unpruned networks on it once.

Each history row records MACs, parameters, validation accuracy (k/n, Wilson interval), the
chosen layer, all channel counts and the CPU latency (median batch-1 forward).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from torch import nn

from hpc.compress.evaluation import Accuracy, Split, accuracy, cpu_latency_s, fit, loss_of
from hpc.compress.pruning import (channel_counts, mac_unit_table, macs_after_removing, prune_layer,
                                  prunable, smallest_l2, weighted_layers)
from hpc.models.summary import summarize

CONV_GRANULARITY = 8
LINEAR_GRANULARITY = 64


@dataclasses.dataclass
class NetAdaptSettings:
    budget_ratio: float = 0.6          # stop when MACs <= budget_ratio * R0
    initial_reduction: float = 0.05    # first iteration's MAC reduction, fraction of R0
    decay: float = 0.96                # per-iteration factor of the reduction
    max_iterations: int = 20
    short_term_steps: int = 20         # optimiser steps per candidate
    short_term_lr: float = 5e-4
    long_term_epochs: float = 10.0
    long_term_lr: float = 5e-4
    batch_size: int = 32
    conv_granularity: int = CONV_GRANULARITY
    linear_granularity: int = LINEAR_GRANULARITY
    latency_repeats: int = 20
    seed: int = 0


@dataclasses.dataclass
class HistoryRow:
    iteration: int
    chosen_layer: str | None
    channels: list[int]
    macs: int
    params: int
    val: Accuracy
    val_loss: float
    latency_s: float
    candidates: int
    elapsed_s: float


def _row(model: nn.Module, input_shape: tuple[int, ...], val: Split, iteration: int, layer: str | None,
         candidates: int, t0: float, s: NetAdaptSettings) -> HistoryRow:
    summary = summarize(model, input_shape)
    return HistoryRow(iteration, layer, channel_counts(model), summary.total_macs, summary.total_params,
                      accuracy(model, val), loss_of(model, val),
                      cpu_latency_s(model, input_shape, repeats=s.latency_repeats), candidates,
                      time.perf_counter() - t0)


def channels_to_remove(table: list[dict], k: int, target: int, granularity: int) -> int | None:
    """Fewest channels (a multiple of ``granularity``) to remove from layer k to reach ``target``
    MACs, leaving at least ``granularity`` channels; None if the layer cannot get there."""
    out = table[k]["out"]
    remove = granularity
    while out - remove >= granularity:
        if macs_after_removing(table, k, remove) <= target:
            return remove
        remove += granularity
    return None


def netadapt(model: nn.Module, train: Split, val: Split, input_shape: tuple[int, ...],
             s: NetAdaptSettings, log: Callable[[str], Any] = print) -> tuple[nn.Module, list[HistoryRow]]:
    """Run the loop; return the final (long-term fine-tuned) model and the history (row 0 = input)."""
    t0 = time.perf_counter()
    r0 = summarize(model, input_shape).total_macs
    budget = s.budget_ratio * r0
    history = [_row(model, input_shape, val, 0, None, 0, t0, s)]
    log(f"iteration 0: {r0:,} MACs, val {history[0].val}")
    current, res = model, r0
    for i in range(1, s.max_iterations + 1):
        if res <= budget:
            break
        target = res - s.initial_reduction * r0 * s.decay ** (i - 1)
        table = mac_unit_table(current, input_shape)
        layers = weighted_layers(current)
        best: tuple[tuple[float, float], nn.Module, str] | None = None
        n_candidates = 0
        for k, name in enumerate(prunable(current)):
            g = s.conv_granularity if isinstance(layers[k][1], nn.Conv2d) else s.linear_granularity
            remove = channels_to_remove(table, k, int(target), g)
            if remove is None:
                continue
            cand = prune_layer(current, name, smallest_l2(layers[k][1], remove))
            macs = summarize(cand, input_shape).total_macs
            if macs != macs_after_removing(table, k, remove):  # the shortcut must agree with the counter
                raise AssertionError(f"{name}: MAC estimate {macs_after_removing(table, k, remove)} != {macs}")
            fit(cand, train, steps=s.short_term_steps, batch_size=s.batch_size, lr=s.short_term_lr,
                seed=s.seed + 1000 * i + k)
            acc, loss = accuracy(cand, val), loss_of(cand, val)
            n_candidates += 1
            log(f"  iteration {i} candidate {name} -{remove}: {macs:,} MACs, val {acc}, loss {loss:.4f}")
            key = (acc.value, -loss)
            if best is None or key > best[0]:
                best = (key, cand, name)
        if best is None:
            log(f"iteration {i}: no layer can reach {int(target):,} MACs; stopping")
            break
        current = best[1]
        row = _row(current, input_shape, val, i, best[2], n_candidates, t0, s)
        res = row.macs
        history.append(row)
        log(f"iteration {i}: chose {best[2]} -> {row.channels}, {row.macs:,} MACs "
            f"({row.macs / r0:.3f} of R0), val {row.val}")
    fit(current, train, epochs=s.long_term_epochs, batch_size=s.batch_size, lr=s.long_term_lr, seed=s.seed + 7)
    return current, history
