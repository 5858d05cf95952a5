"""Benchmark of the OpenCL inference engine: end to end per style and device, and per kernel.

    python -m hpc.inference.opencl.bench --model squeezenet1_1 --input-size 224 --batch 1 \
        --styles single-task,ndrange,tiled --queues 1,2 --repeats 50 --layer-repeats 5 \
        --torch --output results/inference/opencl.jsonl

For each (style, queues) point: one warm-up forward (program build, buffers), then
``repeats`` timed forwards, host wall time each (``time.perf_counter`` around copy in, all
kernels, copy out: the study's timed region, without its PyTorch layer construction), as one
``inference_network`` record; then ``layer_repeats`` forwards on profiling queues give one
``inference_layer`` record per kernel launch. ``--torch`` adds the torch-CPU golden model
as a network point. Weights are seeded random ones unless ``--weights`` is given (kernel
times do not depend on the values). Timings taken on a shared machine are noisy: every
record carries /proc/loadavg at its start.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch

from hpc.records import Record, new_record, write_records


def load_avg() -> list[float]:
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return [float(v) for v in os.getloadavg()]


def _quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def time_forward(engine: Any, x: np.ndarray, repeats: int, warmup: int) -> tuple[list[float], np.ndarray]:
    out = None
    for _ in range(warmup):
        out = engine.forward(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = engine.forward(x)
        times.append(time.perf_counter() - t0)
    assert out is not None
    return times, out


def network_record(model_name: str, engine_kind: str, style: str | None, two_queues: bool, x: np.ndarray,
                   classes: int, macs: int, times: list[float], warmup: int, device: Any,
                   load: list[float], diff: float | None, binary: bool = False) -> Record:
    med = statistics.median(times)
    q1, q3 = _quartiles(times)
    n = x.shape[0]
    params = dict(model=model_name, engine=engine_kind, style=style, two_queues=two_queues, binary=binary,
                  batch=n, input_shape=list(x.shape), classes=classes, macs_per_image=macs // n,
                  repeats=len(times), warmup=warmup,
                  threads=torch.get_num_threads() if engine_kind == "torch" else None,
                  device=device.model_dump(), load_avg=load)
    metrics = dict(wall_s=times, wall_s_median=med, wall_s_min=min(times), wall_s_max=max(times),
                   wall_s_q1=q1, wall_s_q3=q3, s_per_image_median=med / n,
                   mmac_per_s=macs / med / 1e6, max_abs_diff_vs_torch=diff)
    name = f"{model_name}/{engine_kind}" + (f"/{style}/q{2 if two_queues else 1}" if style else "")
    return new_record("inference_network", name, params, metrics)


def layer_records(model_name: str, engine: Any, x: np.ndarray, repeats: int) -> list[Record]:
    launches = engine.launches(x.shape)
    samples: list[list[float]] = [[] for _ in launches]
    for _ in range(repeats):
        for i, row in enumerate(engine.profile(x)):
            samples[i].append(row[3])
    out = []
    for pos, (L, ts) in enumerate(zip(launches, samples)):
        med = statistics.median(ts)
        params = dict(model=model_name, style=engine.style, two_queues=engine.two_queues, batch=x.shape[0],
                      input_shape=list(x.shape), layer=L.layer, layer_type=L.layer_type, kernel=L.spec.kernel,
                      global_size=list(L.spec.global_size), position=pos, macs=L.macs, repeats=repeats,
                      device=engine.device.model_dump())
        metrics = dict(event_s=ts, event_s_median=med, event_s_min=min(ts), event_s_max=max(ts),
                       mmac_per_s=(L.macs / med / 1e6) if L.macs and med > 0 else None)
        out.append(new_record("inference_layer", f"{model_name}/{engine.style}/{L.layer}", params, metrics))
    return out


def run(args: argparse.Namespace) -> list[Record]:
    from hpc.inference.backends import TorchBackend
    from hpc.inference.networks import build
    from hpc.inference.opencl import OpenCLEngine, Runtime

    model, _ = build(args.model, seed=args.seed, weights=args.weights, input_size=args.input_size,
                     num_classes=args.classes)
    in_ch = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    x = np.random.default_rng(args.seed).standard_normal(
        (args.batch, in_ch, args.input_size, args.input_size)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    records: list[Record] = []
    runtime = Runtime(args.device)
    for style in args.styles:
        for queues in args.queues:
            engine = OpenCLEngine(model, style=style, two_queues=queues == 2, runtime=runtime)
            load = load_avg()
            times, out = time_forward(engine, x, args.repeats, args.warmup)
            macs = engine.macs(x.shape)
            rec = network_record(args.model, "opencl", style, queues == 2, x, out.shape[1], macs, times,
                                 args.warmup, engine.device, load, float(np.abs(out - ref).max()))
            records.append(rec)
            _say(rec)
            if args.layer_repeats:
                records += layer_records(args.model, engine, x, args.layer_repeats)
    if args.torch:
        golden = TorchBackend("cpu")
        golden.prepare(model)
        load = load_avg()
        times, out = time_forward(golden, x, args.repeats, args.warmup)
        macs = sum(L.macs for L in OpenCLEngine(model, style="tiled", runtime=runtime).launches(x.shape))
        rec = network_record(args.model, "torch", None, False, x, out.shape[1], macs, times, args.warmup,
                             golden.device(), load, 0.0)
        records.append(rec)
        _say(rec)
    return records


def _say(rec: Record) -> None:
    p, m = rec.params, rec.metrics
    print(f"{rec.name}: median {m['wall_s_median']:.4f} s per forward (batch {p['batch']}), "
          f"IQR {m['wall_s_q1']:.4f}-{m['wall_s_q3']:.4f}, {m['mmac_per_s']:.1f} MMAC/s, "
          f"load {p['load_avg'][0]:.2f}", file=sys.stderr, flush=True)


def configure(parser: argparse.ArgumentParser) -> None:
    from hpc.inference.opencl.program import STYLES
    parser.add_argument("--model", default="squeezenet1_1",
                        choices=("squeezenet1_1", "alexnet-small", "alexnet-imagenet"))
    parser.add_argument("--weights", default=None, help="state dict (default: seeded random weights)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--styles", default=",".join(STYLES), type=lambda s: [v for v in s.split(",") if v])
    parser.add_argument("--queues", default="1,2", type=lambda s: [int(v) for v in s.split(",") if v],
                        help="1 (one queue), 2 (expand1x1 on a second queue), or both")
    parser.add_argument("--device", type=int, default=None, help="OpenCL device index")
    parser.add_argument("--repeats", type=int, default=50, help="timed forwards per point (study: 50)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--layer-repeats", type=int, default=5, help="profiled forwards (0: none)")
    parser.add_argument("--torch", action="store_true", help="also time the torch CPU model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help="JSONL file of records (written atomically)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from hpc.cli import CliError
    from hpc.inference.opencl.program import STYLES
    bad = [s for s in args.styles if s not in STYLES] + [str(q) for q in args.queues if q not in (1, 2)]
    if bad:
        raise CliError(f"unknown style/queue count {', '.join(bad)}; styles: {', '.join(STYLES)}; queues: 1,2")
    if args.repeats < 1:
        raise CliError("--repeats must be >= 1")
    write_records(args.output, run(args))
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    from hpc.cli import CliError
    parser = argparse.ArgumentParser(prog="python -m hpc.inference.opencl.bench", description=__doc__.split("\n")[0])
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return main(args)
    except CliError as exc:
        print(f"hpc.inference.opencl.bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
