"""NetAdapt (Yang et al. 2018) on the suite's sequential AlexNet, with a MAC or latency budget.

The resource is either MACs (the study's "prune-by-mac") or the latency predicted by a
per-layer lookup table measured on this CPU (:mod:`hpc.compress.latency`, NetAdapt's own
resource). Each iteration i lowers the resource target by ``initial_reduction * R0 *
decay**(i-1)`` (the reference implementation's schedule: ``-irr`` and ``-rd``). For every
prunable layer it builds one candidate: remove, from that layer only, the fewest output
channels (a multiple of the granularity, 8 for convolutions, 64 for linear layers) that bring
the network's resource to the target, choosing the channels of smallest L2 norm; fine-tune
the candidate briefly (short-term, a fixed number of optimiser steps on the *training*
split) and measure it on the *validation* split. The most accurate candidate (ties: lower
validation loss) becomes the next network. The loop stops at the budget (``budget_ratio *
R0``) or after ``max_iterations``; then the final network gets a long-term fine-tune. The
test split is not read here: the caller evaluates the final and the unpruned networks on it
once.

Each history row records the target it met, MACs, parameters, the table's predicted latency
and the measured whole-network CPU latency (median batch-1 forward), validation accuracy
(k/n, Wilson interval), the chosen layer and all channel counts, whatever the resource.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from hpc.compress.evaluation import Accuracy, Split, cpu_latency_s, fit, wilson
from hpc.compress.latency import DEFAULT_MIN_RUN_S, LatencyTable, keys_after_removing
from hpc.compress.pruning import (channel_counts, mac_unit_table, macs_after_removing, prune_layer,
                                  prunable, smallest_l2, weighted_layers)
from hpc.models.summary import summarize

CONV_GRANULARITY = 8
LINEAR_GRANULARITY = 64
RESOURCES = ("macs", "latency")


@dataclasses.dataclass
class NetAdaptSettings:
    resource: str = "macs"             # "macs" or "latency" (the lookup table's prediction)
    budget_ratio: float = 0.6          # stop when resource <= budget_ratio * R0
    initial_reduction: float = 0.05    # first iteration's resource reduction, fraction of R0
    decay: float = 0.96                # per-iteration factor of the reduction
    max_iterations: int = 20
    short_term_steps: int = 20         # optimiser steps per candidate
    short_term_lr: float = 5e-4
    long_term_epochs: float = 10.0
    long_term_lr: float = 5e-4
    batch_size: int = 32
    conv_granularity: int = CONV_GRANULARITY
    linear_granularity: int = LINEAR_GRANULARITY
    latency_repeats: int = 20          # forward passes of the measured whole-network latency
    latency_table_min_run_s: float = DEFAULT_MIN_RUN_S  # measuring time per lookup-table entry
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resource not in RESOURCES:
            raise ValueError(f"resource={self.resource!r}: expected one of {RESOURCES}")


@dataclasses.dataclass
class HistoryRow:
    iteration: int
    chosen_layer: str | None
    channels: list[int]
    macs: int
    params: int
    val: Accuracy
    val_loss: float
    latency_s: float                   # measured, whole network, median batch-1 forward
    network_latency_s: float           # measured, whole network, the table's harness and statistic
    predicted_latency_s: float         # sum of the lookup table's block entries
    target: float | None               # the iteration's resource target (MACs or seconds)
    candidates: int
    elapsed_s: float


@dataclasses.dataclass
class NetAdaptRun:
    model: nn.Module                   # the final network, long-term fine-tuned
    history: list[HistoryRow]          # row 0 = the input network
    long_term_s: float                 # wall time of the long-term fine-tune


class Resource:
    """The budgeted quantity of a network: MACs, or the latency the table predicts (seconds)."""

    def __init__(self, kind: str, input_shape: Sequence[int], table: LatencyTable) -> None:
        if kind not in RESOURCES:
            raise ValueError(f"resource={kind!r}: expected one of {RESOURCES}")
        self.kind, self.input_shape, self.table = kind, tuple(input_shape), table

    def of(self, model: nn.Module) -> float:
        if self.kind == "macs":
            return float(summarize(model, self.input_shape).total_macs)
        return self.table.predict_model_s(model, self.input_shape)

    def after_removing(self, model: nn.Module) -> Callable[[int, int], float]:
        """f(k, remove): the resource after removing ``remove`` output channels of layer k,
        computed without building the pruned network (MAC arithmetic, or table look-ups)."""
        if self.kind == "macs":
            table = mac_unit_table(model, self.input_shape)
            return lambda k, remove: float(macs_after_removing(table, k, remove))
        keys = self.table.keys(model, self.input_shape)
        return lambda k, remove: self.table.predict_s(keys_after_removing(keys, k, remove))

    def fmt(self, value: float) -> str:
        return f"{value:,.0f} MACs" if self.kind == "macs" else f"{1e3 * value:.3f} ms (table)"


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 256) -> tuple[Accuracy, float]:
    """Accuracy (k/n, Wilson interval) and mean cross-entropy from one forward pass over a split
    (eval mode; the model's training mode is restored): every candidate is judged on the whole
    validation split, so one pass instead of two halves the loop's evaluation time."""
    was = model.training
    model.eval()
    correct, loss = 0, 0.0
    try:
        for i in range(0, len(split), batch_size):
            logits, y = model(split.x[i:i + batch_size]), split.y[i:i + batch_size]
            correct += int((logits.argmax(1) == y).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
    finally:
        model.train(was)
    return wilson(correct, len(split)), loss / max(1, len(split))


def _row(model: nn.Module, input_shape: tuple[int, ...], val: Split, iteration: int, layer: str | None,
         target: float | None, candidates: int, t0: float, s: NetAdaptSettings, table: LatencyTable) -> HistoryRow:
    summary = summarize(model, input_shape)
    acc, loss = evaluate(model, val)
    return HistoryRow(iteration, layer, channel_counts(model), summary.total_macs, summary.total_params, acc, loss,
                      latency_s=cpu_latency_s(model, input_shape, repeats=s.latency_repeats),
                      network_latency_s=table.measure_network_s(model, input_shape),
                      predicted_latency_s=table.predict_model_s(model, input_shape), target=target,
                      candidates=candidates, elapsed_s=time.perf_counter() - t0)


def channels_to_remove(after: Callable[[int], float], out: int, target: float, granularity: int) -> int | None:
    """Fewest channels (a multiple of ``granularity``) to remove from a layer of ``out``
    channels so that ``after(remove) <= target``, leaving at least ``granularity`` channels;
    None if the layer cannot get there even at that minimum.

    A bisection over the multiples of the granularity: the largest removal is tried first (a
    layer that cannot reach the target costs one look-up), then the boundary is halved. For a
    resource that falls monotonically with the removal (MACs) this is exactly the smallest
    removal; for the latency table, whose entries are measurements, it is a removal that meets
    the target while one granule less did not, found with ~log2(out/granularity) look-ups
    instead of one per multiple (each new look-up can mean timing two layer shapes)."""
    steps = (out - granularity) // granularity
    if steps < 1 or after(steps * granularity) > target:
        return None
    lo, hi = 0, steps  # removing lo granules misses the target (0: the current network), hi meets it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if after(mid * granularity) <= target:
            hi = mid
        else:
            lo = mid
    return hi * granularity


def netadapt(model: nn.Module, train: Split, val: Split, input_shape: tuple[int, ...],
             s: NetAdaptSettings, log: Callable[[str], Any] = print,
             table: LatencyTable | None = None) -> NetAdaptRun:
    """Run the loop; return the final (long-term fine-tuned) model and the history (row 0 = input).

    ``table``: the latency lookup table to use and fill (a new one, with the current torch
    thread count, if None); it predicts every row's latency whatever ``s.resource`` is.
    """
    t0 = time.perf_counter()
    table = table if table is not None else LatencyTable(min_run_s=s.latency_table_min_run_s)
    resource = Resource(s.resource, input_shape, table)
    r0 = resource.of(model)
    budget = s.budget_ratio * r0
    history = [_row(model, input_shape, val, 0, None, None, 0, t0, s, table)]
    log(f"iteration 0: resource {s.resource}, R0 {resource.fmt(r0)}, budget {resource.fmt(budget)}; "
        f"{history[0].macs:,} MACs, val {history[0].val}; latency table {len(table)} entries "
        f"({table.build_s:.1f} s)")
    current, res = model, r0
    for i in range(1, s.max_iterations + 1):
        if res <= budget:
            break
        target = res - s.initial_reduction * r0 * s.decay ** (i - 1)
        after = resource.after_removing(current)
        mac_table = mac_unit_table(current, input_shape)
        layers = weighted_layers(current)
        best: tuple[tuple[float, float], nn.Module, str] | None = None
        n_candidates = 0
        for k, name in enumerate(prunable(current)):
            g = s.conv_granularity if isinstance(layers[k][1], nn.Conv2d) else s.linear_granularity
            out = channel_counts(current)[k]
            remove = channels_to_remove(lambda r, k=k: after(k, r), out, target, g)
            if remove is None:
                continue
            cand = prune_layer(current, name, smallest_l2(layers[k][1], remove))
            macs = summarize(cand, input_shape).total_macs
            if macs != macs_after_removing(mac_table, k, remove):  # the shortcut must agree with the counter
                raise AssertionError(f"{name}: MAC estimate {macs_after_removing(mac_table, k, remove)} != {macs}")
            fit(cand, train, steps=s.short_term_steps, batch_size=s.batch_size, lr=s.short_term_lr,
                seed=s.seed + 1000 * i + k)
            acc, loss = evaluate(cand, val)
            n_candidates += 1
            pred = "" if s.resource == "macs" else f"{resource.fmt(after(k, remove))}, "
            log(f"  iteration {i} candidate {name} -{remove}: {pred}{macs:,} MACs, "
                f"val {acc}, loss {loss:.4f} ({time.perf_counter() - t0:.0f} s)")
            key = (acc.value, -loss)
            if best is None or key > best[0]:
                best = (key, cand, name)
        if best is None:
            log(f"iteration {i}: no layer can reach {resource.fmt(target)}; stopping")
            break
        current = best[1]
        row = _row(current, input_shape, val, i, best[2], target, n_candidates, t0, s, table)
        res = resource.of(current)
        history.append(row)
        macs = "" if s.resource == "macs" else f"{row.macs:,} MACs, "
        log(f"iteration {i}: chose {best[2]} -> {row.channels}, {resource.fmt(res)} ({res / r0:.3f} of R0), "
            f"{macs}latency {1e3 * row.network_latency_s:.2f} ms measured / {1e3 * row.predicted_latency_s:.2f} ms "
            f"predicted (median of single passes {1e3 * row.latency_s:.2f} ms), val {row.val}; table {len(table)} entries ({table.build_s:.1f} s)")
    return NetAdaptRun(current, history, long_term(current, train, s, log))


def long_term(model: nn.Module, train: Split, s: NetAdaptSettings, log: Callable[[str], Any] = print) -> float:
    """The final long-term fine-tune; returns its wall time (s). Progress lines (step, loss, time
    left) go to ``log`` every 15 s and at the end: at laptop size it takes tens of seconds, on
    the study's settings (10 epochs) many minutes."""
    if s.long_term_epochs <= 0:
        return 0.0
    log(f"long-term fine-tune: {s.long_term_epochs:g} epochs")
    stats = fit(model, train, epochs=s.long_term_epochs, batch_size=s.batch_size, lr=s.long_term_lr,
                seed=s.seed + 7, log=log, label="NetAdapt long-term fine-tune")
    return float(stats["train_s"])
