"""Whole-network inference on one OpenCL device.

For each input shape the network is compiled once into a list of kernel launches with
their device buffers (one buffer per activation; a fire module's two expand convolutions
write one buffer at channel offsets 0 and E1x1). A forward pass copies the batch in,
enqueues every launch and copies the scores out. With ``two_queues`` each fire module's
expand1x1 goes to a second command queue, waiting on the squeeze's event, so it can run
concurrently with expand3x3 (the study's "Our NDRange"); the next layer waits on both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hpc.schema.base import Device

from . import plan as P
from .geometry import (ConvGeom, LaunchSpec, PoolGeom, conv_launch, device_weights,
                       global_avgpool_launch, linear_launch, lrn_launch, pool_launch)
from .program import check_style
from .runtime import Runtime

INPUT = -1   # dependency on the input copy


class InputError(ValueError):
    """An input batch of the wrong rank, dtype or shape for the network."""


class LayerShapeError(ValueError):
    """A layer whose weights do not fit the activation reaching it."""


@dataclass(frozen=True)
class Launch:
    layer: str          # module path, e.g. features.3.expand3x3
    layer_type: str     # conv1x1 | conv3x3 | conv | maxpool | avgpool | avgpool_global | linear | lrn
    spec: LaunchSpec
    buffers: tuple[Any, ...]
    queue: int          # 0 or 1
    deps: tuple[int, ...]
    macs: int


@dataclass
class _Compiled:
    launches: list[Launch]
    input_buf: Any
    output_buf: Any
    output_shape: tuple[int, ...]
    output_deps: tuple[int, ...]


@dataclass
class _Act:
    buf: Any
    shape: tuple[int, int, int, int]
    producers: tuple[int, ...]


class OpenCLEngine:
    """Run ``model`` (eval semantics) with one kernel ``style`` on one OpenCL device.

    ``device_index``: flat OpenCL device index (None: accelerator, else GPU, else CPU);
    ``binary``: a program binary for ``style`` (clCreateProgramWithBinary, the FPGA path);
    ``runtime``: share a context between engines on the same device.
    """

    def __init__(self, model: nn.Module, style: str = "tiled", device_index: int | None = None,
                 two_queues: bool = False, binary: str | Path | None = None,
                 runtime: Runtime | None = None) -> None:
        check_style(style)
        self.style, self.two_queues = style, bool(two_queues)
        if runtime is not None and binary is not None:
            raise ValueError("give either runtime or binary, not both")
        self.runtime = runtime or Runtime(device_index, {style: binary} if binary else None)
        self.runtime.program(style)                       # build (or load) now: errors surface here
        self.network = P.network_of(model)
        self._weights: dict[str, tuple[Any, Any, tuple[int, ...]]] = {}
        for conv in self._convs():
            w, b = device_weights(style, conv.weight, conv.bias)
            self._weights[conv.name] = (self.runtime.to_device(w), self.runtime.to_device(b), conv.weight.shape)
        for layer in self.network.layers:
            if isinstance(layer, P.Linear):
                w, b = device_weights(style, layer.weight, layer.bias)
                self._weights[layer.name] = (self.runtime.to_device(w), self.runtime.to_device(b),
                                             layer.weight.shape)
        self._queues = [self.runtime.queue(), self.runtime.queue()]
        self._prof_queues: list[Any] | None = None
        self._compiled: dict[tuple[int, ...], _Compiled] = {}

    # ---- public -------------------------------------------------------------------------
    @property
    def device(self) -> Device:
        return self.runtime.record(self.style)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Scores for a float32 NCHW batch (same shape as the torch model's output)."""
        out, _ = self._run(x, self._queues)
        return out

    def profile(self, x: np.ndarray) -> list[tuple[str, str, str, float]]:
        """One forward pass on profiling queues: (layer, layer type, kernel, seconds between
        the kernel's START and END profiling events) per launch, in enqueue order."""
        if self._prof_queues is None:
            self._prof_queues = [self.runtime.queue(profiling=True), self.runtime.queue(profiling=True)]
        _, events = self._run(x, self._prof_queues)
        return [(L.layer, L.layer_type, L.spec.kernel, (ev.profile.end - ev.profile.start) * 1e-9)
                for L, ev in zip(self._compile(tuple(x.shape)).launches, events)]

    def launches(self, input_shape: tuple[int, ...]) -> list[Launch]:
        """The launch list for an input shape (for reports: layer types, MACs, global sizes)."""
        return list(self._compile(tuple(input_shape)).launches)

    def macs(self, input_shape: tuple[int, ...]) -> int:
        return sum(L.macs for L in self._compile(tuple(input_shape)).launches)

    # ---- execution ----------------------------------------------------------------------
    def _check_input(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise InputError(f"input: expected a NumPy array, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise InputError(f"input dtype {x.dtype}: expected float32")
        if x.ndim != 4:
            raise InputError(f"input shape {x.shape}: expected 4-D (batch, channels, height, width)")
        if x.shape[0] < 1:
            raise InputError(f"input shape {x.shape}: empty batch")
        return np.ascontiguousarray(x)

    def _run(self, x: np.ndarray, queues: list[Any]) -> tuple[np.ndarray, list[Any]]:
        cl = self.runtime.cl
        x = self._check_input(x)
        c = self._compile(tuple(x.shape))
        copy_in = cl.enqueue_copy(queues[0], c.input_buf, x, is_blocking=False)
        events: list[Any] = []
        for L in c.launches:
            wait = [copy_in if d == INPUT else events[d] for d in L.deps
                    if (d == INPUT and L.queue != 0) or (d != INPUT and c.launches[d].queue != L.queue)]
            events.append(self.runtime.enqueue(queues[L.queue], self.style, L.spec, L.buffers, wait))
        out = np.empty(c.output_shape, np.float32)
        wait_out = [events[d] for d in c.output_deps if c.launches[d].queue != 0]
        cl.enqueue_copy(queues[0], out, c.output_buf, wait_for=wait_out or None, is_blocking=False)
        queues[1].finish()
        queues[0].finish()
        return out, events

    # ---- compilation --------------------------------------------------------------------
    def _convs(self) -> list[P.Conv]:
        out: list[P.Conv] = []
        for layer in self.network.layers:
            if isinstance(layer, P.Conv):
                out.append(layer)
            elif isinstance(layer, P.Fire):
                out += [layer.squeeze, layer.expand1x1, layer.expand3x3]
        return out

    def _compile(self, shape: tuple[int, ...]) -> _Compiled:
        if shape in self._compiled:
            return self._compiled[shape]
        if len(shape) != 4:
            raise InputError(f"input shape {shape}: expected 4-D (batch, channels, height, width)")
        first = self.network.layers[0]
        want_c = (first.squeeze if isinstance(first, P.Fire) else first).weight.shape[1] \
            if isinstance(first, (P.Conv, P.Fire)) else None
        if want_c is not None and shape[1] != want_c:
            raise InputError(f"input shape {shape}: the network's first layer {first.name} "
                             f"expects {want_c} channels, got {shape[1]}")
        rt = self.runtime
        n, ch, h, w = (int(v) for v in shape)
        launches: list[Launch] = []
        input_buf = rt.empty(4 * n * ch * h * w)
        act = _Act(input_buf, (n, ch, h, w), (INPUT,))

        def add(layer: str, layer_type: str, spec: LaunchSpec, buffers: tuple[Any, ...],
                deps: tuple[int, ...], macs: int, queue: int = 0) -> int:
            launches.append(Launch(layer, layer_type, spec, buffers, queue, deps, macs))
            return len(launches) - 1

        def conv(cv: P.Conv, a: _Act, relu: bool, out_buf: Any = None, ctot: int = 0, coff: int = 0,
                 queue: int = 0) -> tuple[int, ConvGeom, Any]:
            wbuf, bbuf, wshape = self._weights[cv.name]
            n_, c_, h_, w_ = a.shape
            if wshape[1] != c_:
                raise LayerShapeError(f"{cv.name}: weight {tuple(wshape)} expects {wshape[1]} input "
                                      f"channels, the activation reaching it has {c_} ({a.shape})")
            g = ConvGeom(n_, c_, h_, w_, wshape[0], wshape[2], wshape[3], *cv.stride, *cv.padding,
                         ctot=ctot, coff=coff)
            try:
                g.check()
            except ValueError as exc:
                raise LayerShapeError(f"{cv.name}: {exc}") from None
            if out_buf is None:
                out_buf = rt.empty(4 * n_ * g.out_channels * g.ho * g.wo)
            kind = {"1x1": "conv1x1", "3x3": "conv3x3"}.get(g.variant, "conv")
            i = add(cv.name, kind, conv_launch(self.style, g, relu), (a.buf, wbuf, bbuf, out_buf),
                    a.producers, g.macs, queue)
            return i, g, out_buf

        for layer in self.network.layers:
            if isinstance(layer, P.Conv):
                i, g, buf = conv(layer, act, layer.relu)
                act = _Act(buf, (n, g.cout, g.ho, g.wo), (i,))
            elif isinstance(layer, P.Fire):
                i, gs, sbuf = conv(layer.squeeze, act, True)
                sq = _Act(sbuf, (n, gs.cout, gs.ho, gs.wo), (i,))
                e1c, e3c = layer.expand1x1.weight.shape[0], layer.expand3x3.weight.shape[0]
                i3, g3, buf = conv(layer.expand3x3, sq, True, ctot=e1c + e3c, coff=e1c)
                i1, g1, _ = conv(layer.expand1x1, sq, True, out_buf=buf, ctot=e1c + e3c, coff=0,
                                 queue=1 if self.two_queues else 0)
                if (g1.ho, g1.wo) != (g3.ho, g3.wo):
                    raise LayerShapeError(f"{layer.name}: expand outputs {g1.ho}x{g1.wo} and "
                                          f"{g3.ho}x{g3.wo} cannot be concatenated")
                act = _Act(buf, (n, e1c + e3c, g3.ho, g3.wo), (i3, i1))
            elif isinstance(layer, P.Pool):
                act = self._pool(layer, act, add)
            elif isinstance(layer, P.AdaptiveAvg):
                act = self._adaptive(layer, act, add)
            elif isinstance(layer, P.LRN):
                n_, c_, h_, w_ = act.shape
                buf = rt.empty(4 * n_ * c_ * h_ * w_)
                i = add(layer.name, "lrn", lrn_launch(self.style, n_, c_, h_, w_, layer.size, layer.alpha,
                                                      layer.beta, layer.k, layer.relu),
                        (act.buf, buf), act.producers, 0)
                act = _Act(buf, act.shape, (i,))
            else:
                wbuf, bbuf, wshape = self._weights[layer.name]
                fin = act.shape[1] * act.shape[2] * act.shape[3]
                if wshape[1] != fin:
                    raise LayerShapeError(f"{layer.name}: Linear weight {tuple(wshape)} expects "
                                          f"{wshape[1]} inputs, the flattened activation {act.shape} "
                                          f"has {fin}")
                buf = rt.empty(4 * n * wshape[0])
                i = add(layer.name, "linear", linear_launch(self.style, n, fin, wshape[0], layer.relu),
                        (act.buf, wbuf, bbuf, buf), act.producers, n * fin * wshape[0])
                act = _Act(buf, (n, wshape[0], 1, 1), (i,))
        out_shape: tuple[int, ...] = act.shape
        if self.network.flatten_output:
            out_shape = (n, act.shape[1] * act.shape[2] * act.shape[3])
        if act.producers == (INPUT,):
            raise LayerShapeError("the network launches no kernel")
        compiled = _Compiled(launches, input_buf, act.buf, out_shape, act.producers)
        self._compiled[shape] = compiled
        return compiled

    def _pool(self, layer: P.Pool, act: _Act, add: Any) -> _Act:
        n, c, h, w = act.shape
        g = PoolGeom(n * c, h, w, *layer.kernel, *layer.stride, *layer.padding, layer.ceil_mode)
        try:
            g.check()
        except ValueError as exc:
            raise LayerShapeError(f"{layer.name}: {exc}") from None
        buf = self.runtime.empty(4 * n * c * g.ho * g.wo)
        i = add(layer.name, layer.op.replace("2d", ""), pool_launch(self.style, layer.op, g, layer.relu),
                (act.buf, buf), act.producers, 0)
        return _Act(buf, (n, c, g.ho, g.wo), (i,))

    def _adaptive(self, layer: P.AdaptiveAvg, act: _Act, add: Any) -> _Act:
        n, c, h, w = act.shape
        oh, ow = (h if layer.output[0] is None else layer.output[0]), (w if layer.output[1] is None else layer.output[1])
        if (oh, ow) == (h, w) and not layer.relu:
            return act                                        # identity (e.g. AlexNet at 224 px)
        if (oh, ow) == (1, 1):
            buf = self.runtime.empty(4 * n * c)
            i = add(layer.name, "avgpool_global", global_avgpool_launch(self.style, n * c, h * w, layer.relu),
                    (act.buf, buf), act.producers, 0)
            return _Act(buf, (n, c, 1, 1), (i,))
        if h % oh or w % ow:
            raise UnsupportedLayerError(f"{layer.name}: AdaptiveAvgPool2d {h}x{w} -> {oh}x{ow} has "
                                        "uneven windows (no kernel for that)")
        pool = P.Pool(layer.name, "avgpool2d", (h // oh, w // ow), (h // oh, w // ow), (0, 0), False, layer.relu)
        return self._pool(pool, act, add)


UnsupportedLayerError = P.UnsupportedLayerError
