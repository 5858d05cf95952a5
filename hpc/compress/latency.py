"""Per-layer latency lookup table (NetAdapt's latency resource), measured on this CPU.

NetAdapt (Yang et al. 2018) and the study (003, Figure 25) predict a network's latency as the
sum of per-layer latencies looked up in a table measured once on the target device, keyed by
the layer's shape, so that the loop can ask "how fast would this network be with k fewer
channels here?" without building and timing every candidate. This module is that table for
the suite's sequential AlexNets on the CPU: batch 1, float32, torch, the job's thread count.

* A **block** is one weighted layer (Conv2d or Linear) and the parameter-free modules that
  follow it up to the next weighted layer (ReLU, max pooling, dropout: the reference
  implementation times such blocks too). Their cost grows with the layer's output channels,
  so timing the convolution alone would leave them out of every prediction.
* A block's :class:`BlockKey` is its shape: operation, in/out channels (features), kernel,
  stride, padding, input height/width, bias, and the ``repr`` of the following modules.
  Equal keys share one entry, whichever network or candidate asked.
* Entries are measured **lazily**, the first time a key is asked for, and never again: the
  loop only ever asks about the channel counts it considers (multiples of the granularity
  below the current widths), a few dozen entries instead of the full (Cin, Cout) grid.
* Timing uses :class:`torch.utils.benchmark.Timer` and ``blocked_autorange`` rather than a
  hand loop of ``perf_counter`` calls: it warms up, picks how many calls to time per block
  so the timer's own overhead is negligible even for microsecond layers (a single call of a
  small layer is close to the timer resolution and overhead), runs until ``min_run_s`` has
  been spent, sets and restores the torch thread count for the measurement (its default is
  1 thread, so the job's count is passed explicitly), and returns every block's time; the
  table keeps the fastest block (:func:`fastest`: on a shared machine load only adds time)
  and writes the median and IQR beside it.

The whole network's latency predicted by the table (:meth:`LatencyTable.predict_s`) leaves
out what runs between blocks (``torch.flatten``, Python dispatch of ``Sequential``) and the
cache: timed alone and repeatedly, a block finds its weights in cache, inside the network
the previous layers have evicted them. The NetAdapt records carry the prediction and the
whole network timed with the same harness (:meth:`LatencyTable.measure_network_s`) so that
their ratio can be checked, and the plain median of single forward passes as well.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from torch.utils import benchmark

from hpc.compress.pruning import weighted_layers

DEFAULT_MIN_RUN_S = 0.05


@dataclasses.dataclass(frozen=True)
class BlockKey:
    """Shape of one block: a weighted layer plus the parameter-free modules after it.

    For a Linear layer ``in_channels``/``out_channels`` are the in/out features and
    ``kernel``, ``stride``, ``padding`` and ``input_hw`` are (1, 1), (1, 1), (0, 0), (1, 1).
    """

    op: str                          # "conv2d" or "linear"
    in_channels: int
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    input_hw: tuple[int, int] = (1, 1)
    bias: bool = True
    tail: tuple[str, ...] = ()       # repr() of the modules timed after the layer

    def with_channels(self, in_channels: int | None = None, out_channels: int | None = None) -> "BlockKey":
        return dataclasses.replace(self, in_channels=self.in_channels if in_channels is None else in_channels,
                                   out_channels=self.out_channels if out_channels is None else out_channels)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _leaf_sequence(model: nn.Module) -> list[nn.Module]:
    """Every module of ``features`` then ``classifier``, in execution order."""
    return [*model.features.children(), *model.classifier.children()]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class LatencyTable:
    """Lazily measured latency of blocks, keyed by :class:`BlockKey` (seconds per call).

    ``threads``: torch CPU threads of every measurement (default: the current
    ``torch.get_num_threads()``, i.e. the job's setting). ``min_run_s``: time spent measuring
    one entry after warm-up (``blocked_autorange``'s ``min_run_time``).
    """

    def __init__(self, threads: int | None = None, min_run_s: float = DEFAULT_MIN_RUN_S) -> None:
        if min_run_s <= 0:
            raise ValueError(f"min_run_s={min_run_s}: must be > 0")
        self.threads = int(threads or torch.get_num_threads())
        self.min_run_s = float(min_run_s)
        self.entries: dict[BlockKey, float] = {}
        self.details: dict[BlockKey, dict[str, float]] = {}  # median, IQR, blocks of each entry
        self.build_s = 0.0               # wall time spent measuring entries (warm-up included)
        self._tails: dict[tuple[str, ...], tuple[nn.Module, ...]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ keys of a network
    def keys(self, model: nn.Module, input_shape: Sequence[int]) -> list[BlockKey]:
        """The block keys of a sequential AlexNet (one per weighted layer, in order).

        Runs one batch-1 forward pass with hooks to learn every weighted layer's input size;
        measures nothing. The following modules are remembered so the block can be rebuilt.
        """
        layers = weighted_layers(model)
        sizes: dict[str, tuple[int, int]] = {}
        handles = []
        for name, m in layers:
            def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any, name: str = name) -> None:
                shape = inputs[0].shape
                sizes[name] = (int(shape[2]), int(shape[3])) if inputs[0].dim() == 4 else (1, 1)
            handles.append(m.register_forward_hook(hook))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(torch.zeros((1, *input_shape)))
        finally:
            model.train(was)
            for h in handles:
                h.remove()
        tails: dict[int, list[nn.Module]] = {}
        current = None
        weighted_ids = {id(m): i for i, (_, m) in enumerate(layers)}
        for m in _leaf_sequence(model):
            if id(m) in weighted_ids:
                current = weighted_ids[id(m)]
                tails[current] = []
            elif current is not None:
                tails[current].append(m)
        keys = []
        for i, (name, m) in enumerate(layers):
            tail = tuple(repr(t) for t in tails.get(i, []))
            if tail not in self._tails:
                self._tails[tail] = tuple(copy.deepcopy(t) for t in tails.get(i, []))
            if isinstance(m, nn.Conv2d):
                if m.groups != 1 or _pair(m.dilation) != (1, 1):
                    raise ValueError(f"{name}: grouped or dilated convolutions are not in the latency table")
                keys.append(BlockKey("conv2d", m.in_channels, m.out_channels, _pair(m.kernel_size),
                                     _pair(m.stride), _pair(m.padding), sizes[name], m.bias is not None, tail))
            else:
                keys.append(BlockKey("linear", m.in_features, m.out_features, bias=m.bias is not None, tail=tail))
        return keys

    # ------------------------------------------------------------------ measurement
    def _block(self, key: BlockKey) -> tuple[nn.Module, torch.Tensor]:
        if key.op == "conv2d":
            layer: nn.Module = nn.Conv2d(key.in_channels, key.out_channels, key.kernel, key.stride, key.padding,
                                         bias=key.bias)
            x = torch.randn(1, key.in_channels, *key.input_hw)
        elif key.op == "linear":
            layer = nn.Linear(key.in_channels, key.out_channels, bias=key.bias)
            x = torch.randn(1, key.in_channels)
        else:
            raise ValueError(f"block op {key.op!r}: expected 'conv2d' or 'linear'")
        if key.tail and key.tail not in self._tails:
            raise KeyError(f"block tail {key.tail}: unknown; ask for keys() of a network that has it first")
        block = nn.Sequential(layer, *self._tails.get(key.tail, ())).eval()
        block.requires_grad_(False)  # time inference: no autograd graph is recorded
        return block, x

    def _time(self, module: nn.Module, x: torch.Tensor, what: str) -> benchmark.Measurement:
        module.eval()
        timer = benchmark.Timer(stmt="module(x)", globals={"module": module, "x": x}, num_threads=self.threads,
                                label="latency table", description=what)
        with torch.no_grad():
            return timer.blocked_autorange(min_run_time=self.min_run_s)

    def measure(self, key: BlockKey) -> float:
        """Time one block now, without touching the table: seconds per batch-1 call in the
        fastest timed block (see :func:`fastest`)."""
        with torch.random.fork_rng(devices=[]):  # the loop's training must not depend on what was timed
            block, x = self._block(key)
        m = self._time(block, x, str(key))
        self.details[key] = {"median_s": float(m.median), "iqr_s": float(m.iqr), "blocks": len(m.times),
                             "calls_per_block": int(m.number_per_run)}
        return fastest(m)

    def measure_network_s(self, model: nn.Module, input_shape: Sequence[int]) -> float:
        """The whole network timed with the table's own harness and statistic (batch 1), so that
        the ratio prediction / measurement compares like with like. Not stored in the table."""
        was = model.training
        try:
            return fastest(self._time(model, torch.zeros((1, *input_shape)), "whole network"))
        finally:
            model.train(was)

    def seconds(self, key: BlockKey) -> float:
        """The entry for ``key``, measured now if it is not in the table yet."""
        if key not in self.entries:
            t0 = time.perf_counter()
            self.entries[key] = self.measure(key)
            self.build_s += time.perf_counter() - t0
        return self.entries[key]

    def predict_s(self, keys: Iterable[BlockKey]) -> float:
        """Predicted latency of a network: the sum of its blocks' entries."""
        return float(sum(self.seconds(k) for k in keys))

    def predict_model_s(self, model: nn.Module, input_shape: Sequence[int]) -> float:
        return self.predict_s(self.keys(model, input_shape))

    def as_json(self) -> dict[str, Any]:
        """The table as written next to the run's records (``latency-table.json``)."""
        return {"format": "hpc-latency-table", "threads": self.threads, "min_run_s": self.min_run_s,
                "batch": 1, "dtype": "float32", "torch": torch.__version__, "build_s": self.build_s,
                "statistic": "fastest block (seconds per call)",
                "entries": [{**k.as_dict(), "seconds": v, **self.details.get(k, {})} for k, v in self.entries.items()]}


def fastest(m: benchmark.Measurement) -> float:
    """Seconds per call of the fastest timed block. Entries are measured minutes apart while the
    loop runs, on a machine other jobs may share; interference only ever adds time, so the
    fastest block is the figure that stays comparable between entries (the median of a
    measurement taken during a burst of load is not)."""
    return float(min(m.times))


def keys_after_removing(keys: Sequence[BlockKey], k: int, remove: int) -> list[BlockKey]:
    """The block keys after removing ``remove`` output channels of block k: block k loses them
    as outputs, block k+1 as inputs (for a Linear after a Conv2d, ``s*s`` flattened inputs per
    channel, the same coupling as :func:`hpc.compress.pruning.prune_layer`)."""
    if not 0 <= k < len(keys) - 1:
        raise ValueError(f"block {k}: only blocks 0..{len(keys) - 2} have a next layer to adjust")
    cur, nxt = keys[k], keys[k + 1]
    if not 0 < remove < cur.out_channels:
        raise ValueError(f"block {k}: cannot remove {remove} of {cur.out_channels} channels")
    per = nxt.in_channels // cur.out_channels
    out = list(keys)
    out[k] = cur.with_channels(out_channels=cur.out_channels - remove)
    out[k + 1] = nxt.with_channels(in_channels=nxt.in_channels - remove * per)
    return out
