"""``python -m hpc bench kernels``: sweep pooling/matmul backends, one record per point.

A sweep is a list of *groups* (from ``--experiment experiments/<x>.yaml`` or from the
command-line options); each group is the Cartesian product of its ops, backends, shapes,
pooling parameters and dtypes. Every point becomes one ``kind="kernel"`` record appended
to the output JSONL as soon as it finishes (a crash keeps the finished points): ``ok``
with the metrics, ``skipped`` when the backend cannot run here (the reason is the
registry's), ``failed`` with the error when it raised (the sweep goes on).

Backends are ``name[:variant]``: ``numba-cuda:regblock``, ``study:gpu-roundtrip-matmul3``;
``torch-cuda`` (or ``torch:cuda``) runs torch on CUDA tensors. With ``--experiment``,
``--backends`` *filters* the experiment's backends by name (how the workflow runs one job
per backend); without it, it lists them.
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator

from hpc.kernels import bench, registry

DEFAULT_BACKENDS = ["numpy", "numba", "torch", "opencl", "numba-cuda", "cupy", "torch-cuda"]
DEFAULT_POOLS = [{"kernel": 2, "stride": 2, "padding": 0}, {"kernel": 3, "stride": 2, "padding": 0}]


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_target", metavar="{kernels,inference}")
    p = sub.add_parser("kernels", help="pooling/matmul backends vs the same-run copy/BLAS bound",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", type=Path, help="experiments/<x>.yaml of kind 'kernels'")
    p.add_argument("--ops", nargs="+", choices=bench.OPS, help="default: maxpool2d")
    p.add_argument("--backends", nargs="+", metavar="NAME[:VARIANT]",
                   help="backends to run (with --experiment: filter by backend name); 'all' = no filter")
    p.add_argument("--sizes", nargs="+", type=int, metavar="N",
                   help="square single images (1,1,N,N) for pooling; N x N matrices for matmul")
    p.add_argument("--batch-shapes", nargs="+", type=_parse_shape, metavar="NxCxHxW",
                   help="NCHW batches for pooling, e.g. 128x96x55x55")
    p.add_argument("--kernel", nargs="+", type=int, help="pool kernel size(s); default 2 and 3")
    p.add_argument("--stride", nargs="+", type=int, help="stride per --kernel (default 2)")
    p.add_argument("--padding", nargs="+", type=int, help="padding per --kernel (default 0)")
    p.add_argument("--ceil-mode", action="store_true", help="ceil_mode=True for every pool")
    p.add_argument("--dtype", nargs="+", dest="dtypes", help="default float32")
    p.add_argument("--repeats", type=int, help="timed calls per point (default 5)")
    p.add_argument("--warmup", type=int, help="untimed calls before timing (default 1)")
    p.add_argument("--order", choices=("shuffled", "listed"), default="shuffled",
                   help="run order of the points: shuffled (default, seeded by --seed, so a slow "
                        "start or a load change does not always hit the same points) or as listed")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffled order (default 0)")
    p.add_argument("--out-buffer", action="store_true",
                   help="pooling on backends with out= (numba): write into one pre-allocated output "
                        "instead of allocating per call (default: the default API call)")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing each result with the NumPy reference")
    p.add_argument("--output", type=Path, help="JSONL to append to (default results/kernels/<name>.jsonl)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--markdown", action="store_true", help="print the result table as Markdown")
    p.set_defaults(func=run)
    from hpc.inference.bench_cli import add_parser as add_inference  # light: torch loads in its run()
    add_inference(sub)


def _parse_shape(text: str) -> list[int]:
    try:
        dims = [int(v) for v in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch shape {text!r}: expected NxCxHxW, e.g. 32x96x55x55") from None
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"batch shape {text!r}: expected four positive ints NxCxHxW")
    return dims


# --------------------------------------------------------------------------- sweep spec
def _cli_pools(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    if args.kernel is None:
        if args.stride or args.padding:
            raise _cli_error("--stride/--padding need --kernel")
        return None
    k = args.kernel

    def per_kernel(values: list[int] | None, default: int, flag: str) -> list[int]:
        if values is None:
            return [default] * len(k)
        if len(values) == 1:
            return values * len(k)
        if len(values) != len(k):
            raise _cli_error(f"{flag}: give one value or one per --kernel ({len(k)}), got {len(values)}")
        return values

    strides = per_kernel(args.stride, 2, "--stride")
    pads = per_kernel(args.padding, 0, "--padding")
    return [{"kernel": a, "stride": b, "padding": c, "ceil_mode": bool(args.ceil_mode)}
            for a, b, c in zip(k, strides, pads)]


def _cli_error(msg: str) -> Exception:
    from hpc.cli import CliError
    return CliError(msg)


def build_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment dict (validated, defaults filled) with command-line overrides applied."""
    from hpc.config import ConfigError, load_experiment
    if args.experiment is not None:
        try:
            spec = load_experiment(args.experiment, kind="kernels")
        except ConfigError as exc:
            raise _cli_error(str(exc)) from None
    else:
        spec = {"kind": "kernels", "name": "adhoc", "backends": DEFAULT_BACKENDS,
                "repeats": 5, "warmup": 1, "check": True,
                "groups": [{"name": "cli", "ops": ["maxpool2d"],
                            "sizes": [] if args.batch_shapes else [1024], "batch_shapes": [],
                            "pools": DEFAULT_POOLS, "dtypes": ["float32"]}]}
        if args.backends and "all" not in args.backends:
            spec["groups"][0]["backends"] = list(args.backends)
    overrides = {"ops": args.ops, "sizes": args.sizes, "batch_shapes": args.batch_shapes,
                 "pools": _cli_pools(args), "dtypes": args.dtypes}
    for group in spec["groups"]:
        for key, value in overrides.items():
            if value is not None:
                group[key] = value
        if args.sizes is not None and args.batch_shapes is None:
            group["batch_shapes"] = []
        if args.batch_shapes is not None and args.sizes is None:
            group["sizes"] = []
    for key in ("repeats", "warmup"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
            for group in spec["groups"]:
                group.pop(key, None)
    if args.no_check:
        spec["check"] = False
    spec["out_buffer"] = bool(getattr(args, "out_buffer", False))
    spec["_filter"] = list(args.backends) if (args.experiment is not None and args.backends
                                              and "all" not in args.backends) else None
    return spec


def _base_name(spec: bench.BackendSpec) -> str:
    return "torch-cuda" if spec.device == "cuda" else spec.name


def _parse_backend(text: str) -> bench.BackendSpec:
    return bench.parse_backend("torch:cuda" if text == "torch-cuda" else text)


def iter_points(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every (group, op, backend, shape, pool, dtype) point of a sweep, in run order."""
    keep = spec.get("_filter")
    for group in spec["groups"]:
        names = group.get("backends") or spec.get("backends") or DEFAULT_BACKENDS
        try:
            backends = [_parse_backend(b) for b in names]
        except ValueError as exc:
            raise _cli_error(str(exc)) from None
        if keep is not None:
            backends = [b for b in backends if _base_name(b) in keep or b.label in keep]
        repeats = group.get("repeats", spec.get("repeats", 5))
        warmup = group.get("warmup", spec.get("warmup", 1))
        for op in group.get("ops", ["maxpool2d"]):
            if op == "matmul":
                for n, dtype, backend in itertools.product(group.get("sizes", []),
                                                           group.get("dtypes", ["float32"]), backends):
                    yield {"group": group.get("name", ""), "op": op, "backend": backend, "n": n,
                           "dtype": dtype, "repeats": repeats, "warmup": warmup}
                continue
            shapes = [[1, 1, n, n] for n in group.get("sizes", [])] + list(group.get("batch_shapes", []))
            for shape, pool, dtype, backend in itertools.product(
                    shapes, group.get("pools", DEFAULT_POOLS), group.get("dtypes", ["float32"]), backends):
                yield {"group": group.get("name", ""), "op": op, "backend": backend,
                       "shape": tuple(shape), "pool": pool, "dtype": dtype,
                       "repeats": repeats, "warmup": warmup}


def point_name(pt: dict[str, Any]) -> str:
    if pt["op"] == "matmul":
        return f"matmul {pt['backend'].label} {pt['n']}^2 {pt['dtype']}"
    pool = pt["pool"]
    shape = "x".join(map(str, pt["shape"]))
    return (f"{pt['op']} {pt['backend'].label} {shape} k{pool['kernel']}s{pool.get('stride', pool['kernel'])}"
            f"p{pool.get('padding', 0)} {pt['dtype']}")


def run_order(n: int, order: str, seed: int) -> list[int]:
    """Indices of the points in the order they run: as listed, or a seeded shuffle."""
    idx = list(range(n))
    if order == "shuffled":
        random.Random(seed).shuffle(idx)
    elif order != "listed":
        raise ValueError(f"order={order!r}: expected 'shuffled' or 'listed'")
    return idx


def run_point(pt: dict[str, Any], check: bool, experiment: str, run_index: int | None = None,
              out_buffer: bool = False):
    """Measure one point; returns a Record with status ok / skipped / failed."""
    from hpc.records import new_record
    spec: bench.BackendSpec = pt["backend"]
    if pt["op"] == "matmul":
        params: dict[str, Any] = bench.matmul_params(spec, pt["n"], pt["dtype"])
    else:
        pool = pt["pool"]
        params = {"op": pt["op"], "backend": spec.label, "backend_name": spec.name,
                  "variant": spec.variant, "shape": list(pt["shape"]), "kernel": pool["kernel"],
                  "stride": pool.get("stride", pool["kernel"]), "padding": pool.get("padding", 0),
                  "ceil_mode": bool(pool.get("ceil_mode", False)), "dtype": pt["dtype"]}
    params.update({"experiment": experiment, "group": pt["group"],
                   "repeats": pt["repeats"], "warmup": pt["warmup"], "run_index": run_index})
    name = point_name(pt)
    load_start = _loadavg_1m()
    try:
        if pt["op"] == "matmul":
            measured, metrics = bench.measure_matmul(spec, pt["n"], pt["dtype"], pt["repeats"],
                                                     pt["warmup"], check=check)
        else:
            pool = pt["pool"]
            measured, metrics = bench.measure_pool(
                spec, pt["op"], pt["shape"], pool["kernel"], pool.get("stride"), pool.get("padding", 0),
                pt["dtype"], pt["repeats"], pt["warmup"], bool(pool.get("ceil_mode", False)), check=check,
                out_buffer=out_buffer)
    except registry.BackendUnavailableError as exc:
        params["device"] = None   # nothing ran: no device to record
        return new_record("kernel", name, params, {}, status="skipped", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a failing point must not stop the sweep
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return new_record("kernel", name, params, {}, status="failed", error=detail)
    params.update(measured)
    # the machine's load beside every figure: on a shared machine it explains a slow point
    metrics.update(loadavg_1m_start=load_start, loadavg_1m_end=_loadavg_1m())
    return new_record("kernel", name, params, metrics)


def _loadavg_1m() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return None


# --------------------------------------------------------------------------- table
def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_row(rec: Any) -> list[str]:
    p, m = rec.params, rec.metrics
    if p.get("op") == "matmul":
        shape, geo = f"{p['shape'][0]}^2", "-"
        rate, bound = _fmt(m.get("gflops"), ".2f") + " GF/s", _fmt(m.get("bound_gflops"), ".2f") + " GF/s"
    else:
        shape = "x".join(map(str, p.get("shape", [])))
        k, s, pad = p.get("kernel"), p.get("stride"), p.get("padding")
        geo = f"{_first(k)}/{_first(s)}/{_first(pad)}"
        rate, bound = _fmt(m.get("bandwidth_gbs"), ".2f") + " GB/s", _fmt(m.get("bound_gbs"), ".2f") + " GB/s"
    if rec.status != "ok":
        return [p.get("op", ""), p.get("backend", ""), shape, geo, p.get("dtype", ""), "-", "-", "-",
                "-", "-", "-", "-", f"{rec.status}: {(rec.error or '')[:60]}"]
    med = m["median_s"] * 1e3
    status = "ok, NOISY (IQR > 25% of median)" if m.get("spread_flag") else "ok"
    return [p["op"], p["backend"], shape, geo, p["dtype"], f"{med:.4g}",
            f"{m['iqr_s'] * 1e3:.2g}", _fmt(m.get("min_s", None) and m["min_s"] * 1e3, ".4g"), rate, bound,
            _fmt(m.get("bound_fraction"), ".2f"), _fmt(m.get("bound_fraction_best"), ".2f"), status]


def _first(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return v[0] if len(set(v)) == 1 else "x".join(map(str, v))
    return v


HEADER = ["op", "backend", "shape", "k/s/p", "dtype", "median ms", "IQR ms", "min ms", "rate", "bound",
          "fraction", "best fraction", "status"]


def format_table(records: list[Any], markdown: bool = False) -> str:
    """A fixed-width text table, or a Markdown table (``--markdown``, for docs/benchmarks)."""
    if markdown:
        body = [HEADER, ["---"] * len(HEADER)] + [table_row(r) for r in records]
        return "\n".join("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in body)
    rows = [HEADER] + [table_row(r) for r in records]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- entry
def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hpc.atomic import ensure_writable_dir
    from hpc.records import append_record
    if getattr(args, "bench_target", None) != "kernels":
        raise _cli_error("choose a target: python -m hpc bench kernels --help")
    for key in ("repeats", "warmup"):
        v = getattr(args, key)
        if v is not None and v < (1 if key == "repeats" else 0):
            raise _cli_error(f"--{key} must be >= {1 if key == 'repeats' else 0}, got {v}")
    spec = build_sweep(args)
    output = args.output or Path("results", "kernels", f"{spec['name']}.jsonl")
    try:
        ensure_writable_dir(Path(output).parent)
    except Exception as exc:
        raise _cli_error(f"--output {output}: {exc}") from None
    points = list(iter_points(spec))
    if not points:
        raise _cli_error("the sweep is empty (no backend/shape left after filtering)")
    order = run_order(len(points), getattr(args, "order", "listed"), getattr(args, "seed", 0))
    records: list[Any] = [None] * len(points)
    bar = tqdm(total=len(points), desc=f"bench {spec['name']}", unit="point", file=sys.stderr,
               disable=args.quiet, dynamic_ncols=True)
    for run_index, i in enumerate(order):
        pt = points[i]
        bar.set_postfix_str(point_name(pt)[:60])
        rec = run_point(pt, bool(spec.get("check", True)), spec["name"], run_index,
                        bool(spec.get("out_buffer", False)))
        append_record(output, rec)
        records[i] = rec
        bar.update(1)
    bar.close()
    print(format_table(records, markdown=args.markdown))
    counts = {s: sum(r.status == s for r in records) for s in ("ok", "skipped", "failed")}
    print(f"\n{len(records)} points: {counts['ok']} ok, {counts['skipped']} skipped, "
          f"{counts['failed']} failed -> {output}")
    return 0
