"""Benchmark of the clustered convolutions against im2col + BLAS GEMM and torch conv2d.

Shapes: the study's AlexNet layers (Table 8.3) and its large 3x3 benchmarks (Table 8.4),
whose spatial size may be divided by ``spatial_divisor`` on small machines (a 2-core laptop
cannot run 29-58 GFLOP layers dozens of times). Every implementation runs on the same
input in the same process, with the same thread count for numba, BLAS (threadpoolctl) and
torch; the bound is a *same-run* BLAS GEMM of the layer's im2col dimensions
(M=Cout, K=Cin*Kh*Kw, N=Ho*Wo), timed on preallocated operands, so "fraction of GEMM" is
measured, never taken from a data sheet. Codebook values and indices are random (seeded):
speed does not depend on what the weights are, only on their layout.

Before timing, every implementation's output is checked against torch conv2d on the
decoded weights (float32 tolerance); a wrong result raises instead of being timed.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable, Iterator

import numba
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from hpc.compress.clustered_conv import ClusteredConv, im2col_gemm, out_size, pad_input


@dataclasses.dataclass(frozen=True)
class ConvShape:
    name: str
    cin: int
    h: int
    cout: int
    k: int
    stride: int
    padding: int

    @property
    def ho(self) -> int:
        return out_size(self.h, self.k, self.stride, self.padding)

    def flops(self) -> int:
        return 2 * self.ho * self.ho * self.cout * self.cin * self.k * self.k


# Table 8.3 (AlexNet, single tower) and Table 8.4 (3x3, stride 1, "same" padding)
ALEXNET_LAYERS: tuple[ConvShape, ...] = (
    ConvShape("conv1", 3, 227, 96, 11, 4, 0),
    ConvShape("conv2", 96, 27, 256, 5, 1, 2),
    ConvShape("conv3", 256, 13, 384, 3, 1, 1),
    ConvShape("conv4", 384, 13, 384, 3, 1, 1),
    ConvShape("conv5", 384, 13, 256, 3, 1, 1),
)
LARGE_LAYERS: tuple[ConvShape, ...] = (
    ConvShape("bench1", 256, 128, 384, 3, 1, 1),
    ConvShape("bench2", 256, 128, 512, 3, 1, 1),
    ConvShape("bench3", 384, 128, 384, 3, 1, 1),
    ConvShape("bench4", 384, 128, 512, 3, 1, 1),
    ConvShape("bench5", 384, 112, 512, 3, 1, 1),
    ConvShape("bench6", 512, 56, 1024, 3, 1, 1),
    ConvShape("bench7", 512, 28, 512, 3, 1, 1),
)
STUDY_LAYERS = {s.name: s for s in ALEXNET_LAYERS + LARGE_LAYERS}
# implementation name -> (variant, dense); "im2col-gemm" and "torch-conv2d" are dense references
IMPLS: tuple[str, ...] = ("vanilla-cl", "reordered-cl", "blocked-cl", "grouped-cl",
                          "vanilla", "reordered", "blocked", "im2col-gemm", "torch-conv2d")


def scaled(shape: ConvShape, spatial_divisor: int) -> ConvShape:
    """The layer with its input height/width divided (at least 8 px; >= the kernel)."""
    if spatial_divisor <= 1:
        return shape
    h = max(8, shape.k, shape.h // spatial_divisor)
    return dataclasses.replace(shape, h=h)


def resolve_layers(names: list[str], spatial_divisor: int = 1,
                   alexnet_divisor: int = 1) -> list[ConvShape]:
    out = []
    for name in names:
        if name not in STUDY_LAYERS:
            raise ValueError(f"conv layer {name!r}: expected one of {sorted(STUDY_LAYERS)}")
        shape = STUDY_LAYERS[name]
        out.append(scaled(shape, alexnet_divisor if name.startswith("conv") else spatial_divisor))
    return out


def _time(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_layer(shape: ConvShape, bits: int, threads: int, repeats: int = 3, warmup: int = 1,
                seed: int = 0, impls: tuple[str, ...] = IMPLS) -> Iterator[dict]:
    """Yield one result dict per implementation for one layer at one thread count."""
    rng = np.random.default_rng(seed)
    k = 2 ** bits
    idx = rng.integers(0, k, (shape.cout, shape.cin, shape.k, shape.k)).astype(np.uint8)
    cb = np.sort(rng.standard_normal(k).astype(np.float32) * 0.05)
    x = rng.standard_normal((shape.cin, shape.h, shape.h)).astype(np.float32)
    conv = ClusteredConv(idx, cb, shape.stride, shape.padding, (shape.h, shape.h))
    xp = pad_input(x, shape.padding)
    xt = torch.from_numpy(x)[None]
    wt = torch.from_numpy(conv.weights)
    m, kk, n = shape.cout, shape.cin * shape.k * shape.k, shape.ho * shape.ho
    a = rng.standard_normal((m, kk)).astype(np.float32)
    b = rng.standard_normal((kk, n)).astype(np.float32)
    c = np.empty((m, n), dtype=np.float32)
    numba.set_num_threads(threads)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            ref = torch.nn.functional.conv2d(xt, wt, stride=shape.stride, padding=shape.padding)[0].numpy()
            gemm_t = _time(lambda: np.matmul(a, b, out=c), max(repeats, 3), warmup)
            gemm_gflops = 2 * m * kk * n / statistics.median(gemm_t) / 1e9
            calls: dict[str, Callable[[], np.ndarray]] = {
                "im2col-gemm": lambda: im2col_gemm(xp, conv.weights, shape.stride),
                "torch-conv2d": lambda: torch.nn.functional.conv2d(
                    xt, wt, stride=shape.stride, padding=shape.padding)[0].numpy(),
            }
            for v in ("vanilla", "reordered", "blocked", "grouped"):
                calls[f"{v}-cl"] = (lambda v=v: conv.run(v, xp))
                if v != "grouped":
                    calls[v] = (lambda v=v: conv.run(v, xp, dense=True))
            results = {}
            for impl in impls:
                out = np.asarray(calls[impl]())
                err = float(np.max(np.abs(out - ref)))
                tol = 1e-4 * max(1.0, float(np.max(np.abs(ref))))
                if not np.all(np.isfinite(out)) or err > tol:
                    raise AssertionError(f"{impl} on {shape}: max |error| {err:.3g} > {tol:.3g} vs torch conv2d")
                times = _time(calls[impl], repeats, warmup)
                results[impl] = (times, err)
    finally:
        torch.set_num_threads(torch_threads)
    flops = shape.flops()
    vanilla_s = statistics.median(results["vanilla-cl"][0]) if "vanilla-cl" in results else None
    for impl, (times, err) in results.items():
        med = statistics.median(times)
        gflops = flops / med / 1e9
        yield {"impl": impl, "clustered": impl.endswith("-cl"), "median_s": med, "min_s": min(times),
               "repeats": len(times), "flops": flops, "gflops": gflops, "gemm_gflops": gemm_gflops,
               "fraction_of_gemm": gflops / gemm_gflops,
               "speedup_vs_vanilla_cl": (vanilla_s / med) if vanilla_s else None,
               "max_abs_error": err}
