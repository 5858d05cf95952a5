"""The report's tables, derived from the tidy record table (``aggregate.load_frame``).

Each function takes the whole table, picks its record kind, tolerates missing columns
(a producer that does not record a metric yields an empty cell, not a KeyError) and
returns a small DataFrame ready to print or plot. The arithmetic itself lives in
``metrics`` so it is defined (and tested) once.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from hpc.analysis import metrics

GPU_BACKENDS = frozenset({"numba-cuda", "cupy"})


# ----------------------------------------------------------------------------- helpers
def col(df: pd.DataFrame, name: str, default: Any = np.nan) -> pd.Series:
    """Column ``name`` or a column of ``default`` when no record carried it."""
    if name in df.columns:
        return df[name]
    return pd.Series([default] * len(df), index=df.index, dtype=object if default is None else None)


def first_col(df: pd.DataFrame, *names: str) -> pd.Series:
    """Row-wise first non-missing value among candidate columns.

    Producers name things differently (``kernel`` vs ``kernel_size``) and one table holds
    every producer's records, so the choice is made per row, not per column.
    """
    present = [n for n in names if n in df.columns]
    if not present:
        return col(df, names[0])
    if len(present) == 1:
        return df[present[0]]
    values = []
    for row in zip(*(df[n] for n in present)):
        values.append(next((v for v in row if not _is_missing(v)), np.nan))
    return pd.Series(values, index=df.index, dtype=object)


def of_kind(df: pd.DataFrame, kind: str, status: str | None = "ok") -> pd.DataFrame:
    """Rows of one kind (and status); empty frame when there are none."""
    if df.empty or "kind" not in df.columns:
        return df.iloc[0:0]
    mask = df["kind"] == kind
    if status is not None:
        mask &= df["status"] == status
    return df[mask].copy()


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    try:
        return bool(pd.isna(v)) if np.isscalar(v) else False
    except (TypeError, ValueError):
        return False


def as_key(v: Any) -> str:
    """A hashable, printable form of a param value (lists become '4096x4096' or JSON)."""
    if _is_missing(v):
        return ""
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, (int, np.integer)) for x in v):
            return "x".join(str(int(x)) for x in v)
        if v and all(isinstance(x, str) for x in v):
            # per-rank device lists: ["cpu", "cpu", "cuda"] -> "cpu×2+cuda"
            counts: dict[str, int] = {}
            for x in v:
                counts[x] = counts.get(x, 0) + 1
            return "+".join(k if n == 1 else f"{k}×{n}" for k, n in counts.items())
        return json.dumps(list(v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def shape_elements(v: Any) -> float:
    """Number of elements of a shape param: [4096, 4096] -> 16777216; 1024 -> 1024*1024."""
    if _is_missing(v):
        return np.nan
    if isinstance(v, str):
        parts = [p for p in v.replace("*", "x").split("x") if p.strip()]
        try:
            v = [int(p) for p in parts]
        except ValueError:
            return np.nan
    if isinstance(v, (list, tuple)):
        try:
            return float(np.prod([float(x) for x in v])) if v else np.nan
        except (TypeError, ValueError):
            return np.nan
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v) ** 2  # a single side length means a square image / matrix
    return np.nan


def matmul_operand_elements(v: Any) -> float:
    """Elements of operand A: [m, n, k] (bench.py) -> m*k; [n, n] -> n*n; 2048 -> 2048^2."""
    if isinstance(v, (list, tuple)) and len(v) == 3:
        try:
            return float(v[0]) * float(v[2])
        except (TypeError, ValueError):
            return np.nan
    return shape_elements(v)


def _pair(v: Any) -> str:
    """2 -> '2'; [2, 2] -> '2'; [2, 3] -> '2x3'."""
    if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] == v[1]:
        v = v[0]
    return as_key(v)


def window_label(kernel: Any, stride: Any = None, padding: Any = None) -> str:
    """Pooling window as 'k3 s2 p1' (padding omitted when 0); '' without a kernel."""
    if _is_missing(kernel) if not isinstance(kernel, (list, tuple)) else not kernel:
        return ""
    k = _pair(kernel)
    s = _pair(stride) if not (_is_missing(stride) if not isinstance(stride, (list, tuple)) else False) else k
    p = _pair(padding) if not (_is_missing(padding) if not isinstance(padding, (list, tuple)) else False) else ""
    return f"k{k} s{s or k}" + (f" p{p}" if p not in ("", "0", "0x0") else "")


def _num(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def _safe(func: Any, *args: Any) -> float:
    """Apply a metrics function, NaN when an input is missing or out of its domain."""
    if any(_is_missing(a) for a in args):
        return np.nan
    try:
        return float(func(*args))
    except (ValueError, ZeroDivisionError, TypeError):
        return np.nan


def device_class(backend: Any, device: Any) -> str:
    """'gpu', 'opencl' or 'cpu' from a kernel record's backend and device label."""
    b = "" if _is_missing(backend) else str(backend).lower()
    d = "" if _is_missing(device) else str(device).lower()
    if b in GPU_BACKENDS or any(t in d for t in ("cuda", "nvidia", "gpu", "tesla")):
        return "gpu"
    if b == "opencl":
        return "opencl"
    return "cpu"


# ----------------------------------------------------------------------------- failures
def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Every failed or skipped record, with the params that identify the sweep point."""
    if df.empty or "status" not in df.columns:
        return pd.DataFrame(columns=["kind", "status", "name", "point", "error", "source"])
    bad = df[df["status"].isin(["failed", "skipped"])]
    param_cols = [c for c in df.columns if c.startswith("params.") and c[7:] not in POINT_NOISE]
    rows = []
    for _, r in bad.iterrows():
        point = ", ".join(f"{c[7:]}={as_key(r[c])}" for c in param_cols if not _is_missing(r[c]))
        rows.append({"kind": r["kind"], "status": r["status"], "name": r["name"], "point": point,
                     "error": short_error(r.get("error") or ""), "source": r.get("source") or ""})
    return pd.DataFrame(rows, columns=["kind", "status", "name", "point", "error", "source"])


# params that do not identify a sweep point (settings shared by the whole sweep, derived
# values, long lists): left out of the failure tables to keep each point on a line or two
POINT_NOISE = frozenset({
    "repeats", "warmup", "backend_name", "group", "bound_kind", "ceil_mode", "out_shape", "device_name",
    "device_names", "data", "data_fingerprint", "config_hash", "class_names", "image_shape", "hosts",
    "emulated", "mpi_library_version", "mpi_version", "h5py_mpi", "threads_per_rank", "backends",
    "weights", "rows_per_rank", "n_train", "n_val", "n_test", "seed", "deterministic", "compile",
    "channels_last", "amp", "launcher", "threads", "weight_decay", "scheduler", "optimizer",
})


def skipped_by_reason(ft: pd.DataFrame) -> pd.DataFrame:
    """Skipped points grouped by (kind, reason): one row per reason, every point named.

    A GPU-less run skips dozens of GPU points for the same reason; one row per reason keeps
    the table readable without dropping any point.
    """
    cols = ["status", "kind", "error", "count", "points"]
    sk = ft[ft["status"] == "skipped"] if not ft.empty else ft
    if sk.empty:
        return pd.DataFrame(columns=cols)
    rows = [{"status": "skipped", "kind": kind, "error": err, "count": len(g),
             "points": "; ".join(g["name"].astype(str))}
            for (kind, err), g in sk.groupby(["kind", "error"], sort=True)]
    return pd.DataFrame(rows, columns=cols)


def short_error(text: str, limit: int = 400) -> str:
    """An error message fit for a table cell: whitespace collapsed, at most ``limit`` chars.

    Tracebacks and log tails can run to pages; the full text stays in the record file
    (and in the CSV/Parquet table), which the row names.
    """
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rstrip() + " \u2026 (full text in the record file)"


def status_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Records per kind and status (the summary's first table)."""
    if df.empty:
        return pd.DataFrame(columns=["kind", "ok", "failed", "skipped", "total"])
    t = pd.crosstab(df["kind"], df["status"])
    for s in ("ok", "failed", "skipped"):
        if s not in t.columns:
            t[s] = 0
    t = t[["ok", "failed", "skipped"]]
    t["total"] = t.sum(axis=1)
    return t.reset_index()


# ----------------------------------------------------------------------------- kernels
KERNEL_COLUMNS = ["op", "backend", "variant", "device", "device_class", "dtype", "shape",
                  "elements", "window", "median_s", "iqr_s", "min_s", "transfer_s",
                  "bandwidth_gbs", "bound_gbs", "bound_fraction", "gflops", "bound_gflops",
                  "gflops_fraction"]


def kernel_table(df: pd.DataFrame) -> pd.DataFrame:
    """Successful kernel benchmarks with derived size, window and bound fractions.

    A fraction the producer already computed is kept; a missing one is computed from the
    achieved and bound figures of the same record (same run, same device).
    """
    k = of_kind(df, "kernel")
    if k.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    out = pd.DataFrame(index=k.index)
    out["op"] = col(k, "params.op").map(as_key)
    # hpc.kernels.bench writes backend as a label ("numba-cuda:regblock") plus backend_name
    # and variant; show name and variant separately
    label = col(k, "params.backend").map(as_key)
    name = col(k, "params.backend_name").map(as_key)
    out["backend"] = [n or lab.split(":", 1)[0] for n, lab in zip(name, label)]
    variant = col(k, "params.variant").map(as_key)
    out["variant"] = [v or (lab.split(":", 1)[1] if ":" in lab and lab.split(":", 1)[1] != "cuda" else "")
                      for v, lab in zip(variant, label)]
    out["device"] = first_col(k, "params.device", "params.device_name").map(as_key)
    out["device_class"] = [device_class(b, d) for b, d in zip(out["backend"], out["device"])]
    out["dtype"] = col(k, "params.dtype").map(as_key)
    shape = first_col(k, "params.shape", "params.size")
    out["shape"] = shape.map(as_key)
    out["elements"] = [matmul_operand_elements(s) if op == "matmul" else shape_elements(s)
                       for s, op in zip(shape, out["op"])]
    ks = first_col(k, "params.kernel", "params.kernel_size")
    out["window"] = [window_label(a, b, c) for a, b, c in
                     zip(ks, col(k, "params.stride"), col(k, "params.padding"))]
    for m in ("median_s", "iqr_s", "min_s", "transfer_s", "bandwidth_gbs", "bound_gbs",
              "bound_fraction", "gflops", "bound_gflops", "gflops_fraction"):
        out[m] = _num(col(k, f"metrics.{m}"))
    # transfers: one figure, or host->device and device->host separately (bench.py)
    h2d, d2h = _num(col(k, "metrics.h2d_s")), _num(col(k, "metrics.d2h_s"))
    both = h2d.add(d2h, fill_value=0).where(h2d.notna() | d2h.notna())
    out["transfer_s"] = out["transfer_s"].fillna(both)
    # matmul's bound is BLAS: a producer may call that ratio bound_fraction
    is_mm = out["op"] == "matmul"
    mm_frac = is_mm & out["gflops_fraction"].isna() & out["bound_gbs"].isna()
    out.loc[mm_frac, "gflops_fraction"] = out.loc[mm_frac, "bound_fraction"]
    out.loc[is_mm & out["bound_gbs"].isna(), "bound_fraction"] = np.nan
    missing_bw = out["bound_fraction"].isna()
    out.loc[missing_bw, "bound_fraction"] = [
        _safe(metrics.bandwidth_fraction, a, b)
        for a, b in zip(out.loc[missing_bw, "bandwidth_gbs"], out.loc[missing_bw, "bound_gbs"])]
    missing_fl = out["gflops_fraction"].isna()
    out.loc[missing_fl, "gflops_fraction"] = [
        _safe(metrics.gflops_fraction, a, b)
        for a, b in zip(out.loc[missing_fl, "gflops"], out.loc[missing_fl, "bound_gflops"])]
    out = out[KERNEL_COLUMNS]
    return out.sort_values(["op", "window", "elements", "backend", "variant"], kind="stable").reset_index(drop=True)


def kernel_cpu_gpu(kt: pd.DataFrame) -> pd.DataFrame:
    """Fastest CPU vs fastest GPU backend per (op, window, dtype, shape), and the speed-up."""
    cols = ["op", "window", "dtype", "shape", "cpu_backend", "cpu_median_s", "gpu_backend",
            "gpu_median_s", "gpu_speedup"]
    if kt.empty or not (kt["device_class"] == "gpu").any():
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in kt.dropna(subset=["median_s"]).sort_values("elements").groupby(
            ["op", "window", "dtype", "shape"], sort=False):
        cpu = g[(g["device_class"] == "cpu") & (g["backend"] != "study")]
        gpu = g[(g["device_class"] == "gpu") & (g["backend"] != "study")]
        if cpu.empty or gpu.empty:
            continue
        c = cpu.loc[cpu["median_s"].idxmin()]
        d = gpu.loc[gpu["median_s"].idxmin()]
        rows.append(dict(zip(["op", "window", "dtype", "shape"], key),
                         cpu_backend=c["backend"], cpu_median_s=c["median_s"],
                         gpu_backend=d["backend"], gpu_median_s=d["median_s"],
                         gpu_speedup=_safe(metrics.cpu_gpu_speedup, c["median_s"], d["median_s"])))
    return pd.DataFrame(rows, columns=cols)


def study_speedups(kt: pd.DataFrame) -> pd.DataFrame:
    """Our `study` backend vs our fastest backend on the same point (same machine, same run)."""
    cols = ["op", "window", "dtype", "shape", "study_variant", "study_median_s", "fastest_backend",
            "fastest_median_s", "speedup"]
    if kt.empty or not (kt["backend"] == "study").any():
        return pd.DataFrame(columns=cols)
    rows = []
    for key, g in kt.dropna(subset=["median_s"]).sort_values("elements").groupby(
            ["op", "window", "dtype", "shape"], sort=False):
        study = g[g["backend"] == "study"]
        fast = g[g["backend"] != "study"]
        if study.empty or fast.empty:
            continue
        for _, s in study.iterrows():
            # the study's serial method against our fastest CPU run, its GPU method
            # against our fastest GPU run (any device when that class did not run)
            same = fast[fast["device_class"] == s["device_class"]]
            pool = same if not same.empty else fast
            best = pool.loc[pool["median_s"].idxmin()]
            rows.append(dict(zip(["op", "window", "dtype", "shape"], key),
                             study_variant=s["variant"], study_median_s=s["median_s"],
                             fastest_backend=f"{best['backend']} {best['variant']}".strip(),
                             fastest_median_s=best["median_s"],
                             speedup=_safe(metrics.speedup, s["median_s"], best["median_s"])))
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- scaling
SCALING_GROUP = ["mode", "op", "path", "backend", "devices", "dtype", "window", "problem"]
# op also carries the matmul algorithm and a weighted split (see scaling_table)
PHASES = ("t_distribute_s", "t_compute_s", "t_gather_s")


def _square(v: Any) -> str:
    """A size param: 2048 -> '2048x2048' (the driver's square images), lists as usual."""
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer()):
        return f"{int(v)}x{int(v)}"
    return as_key(v)


def _devices_label(v: Any) -> str:
    """Per-rank device lists vary with the rank count; group by the set of device kinds."""
    if isinstance(v, (list, tuple)):
        return "+".join(sorted({str(x) for x in v}))
    return as_key(v)


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """Scaling runs with speed-up, efficiency and Karp-Flatt relative to the group's smallest run.

    A group is one experiment (mode, op, data path, devices, dtype, window and problem: the
    total shape for strong scaling, the per-rank shape for weak scaling). The baseline is
    the run with the fewest ranks; with ranks > 1 there, figures are relative to it and
    ``baseline_ranks`` says so.
    """
    s = of_kind(df, "scaling")
    base_cols = SCALING_GROUP + ["ranks", "baseline_ranks", *PHASES, "t_total_s", "imbalance",
                                 "speedup", "efficiency", "compute_efficiency", "karp_flatt",
                                 "scaled_speedup", "bandwidth_gbs", "copy_bound_gbs", "bound_fraction"]
    if s.empty:
        return pd.DataFrame(columns=base_cols)
    out = pd.DataFrame(index=s.index)
    out["mode"] = col(s, "params.mode").map(as_key)
    out["op"] = col(s, "params.op").map(as_key)
    algorithm = col(s, "params.algorithm").map(as_key)
    split = col(s, "params.split").map(as_key)
    # matmul algorithm (1d/summa) and a weighted split are different experiments
    out["op"] = [" ".join(x for x in (o, a, "weighted" if sp == "weighted" else "") if x)
                 for o, a, sp in zip(out["op"], algorithm, split)]
    out["path"] = col(s, "params.path").map(as_key)
    out["backend"] = first_col(s, "params.backend", "params.backends").map(_devices_label)
    out["devices"] = first_col(s, "params.devices", "params.device").map(_devices_label)
    out["dtype"] = col(s, "params.dtype").map(as_key)
    ks = first_col(s, "params.kernel", "params.kernel_size")
    out["window"] = [window_label(a, b, c) for a, b, c in
                     zip(ks, col(s, "params.stride"), col(s, "params.padding"))]
    total = first_col(s, "params.shape", "params.size").map(_square)
    # weak scaling: the per-rank size is fixed, the total shape grows with the ranks
    per_rank = first_col(s, "params.size_per_rank", "params.shape_per_rank", "params.local_shape",
                         "params.size", "params.shape").map(_square)
    out["problem"] = np.where(out["mode"] == "weak", "per rank " + per_rank, total)
    out["ranks"] = _num(first_col(s, "params.ranks", "metrics.ranks"))
    # phases: t_<phase>_s, or hpc.parallel.driver's read/distribute/compute/gather/write_s
    for canon, parts in (("t_distribute_s", ("read_s", "distribute_s")), ("t_compute_s", ("compute_s",)),
                         ("t_gather_s", ("gather_s", "write_s")), ("t_total_s", ("total_s",))):
        if f"metrics.{canon}" in s.columns:
            out[canon] = _num(s[f"metrics.{canon}"])
        else:
            cols_ = [_num(s[f"metrics.{p}"]) for p in parts if f"metrics.{p}" in s.columns]
            out[canon] = (pd.concat(cols_, axis=1).sum(axis=1, min_count=1) if cols_
                          else pd.Series(np.nan, index=s.index))
    out["imbalance"] = _num(first_col(s, "metrics.imbalance", "metrics.load_imbalance"))
    out["copy_bound_gbs"] = _num(first_col(s, "metrics.copy_bound_gbs", "metrics.copy_bandwidth_gbs"))
    out["bandwidth_gbs"] = _num(col(s, "metrics.bandwidth_gbs"))
    out["bound_fraction"] = _num(col(s, "metrics.bound_fraction"))
    miss = out["bound_fraction"].isna()
    out.loc[miss, "bound_fraction"] = [_safe(metrics.bandwidth_fraction, a, b) for a, b in
                                       zip(out.loc[miss, "bandwidth_gbs"], out.loc[miss, "copy_bound_gbs"])]
    out = out.dropna(subset=["ranks"])
    out[["baseline_ranks", "speedup", "efficiency", "compute_efficiency", "karp_flatt",
         "scaled_speedup"]] = np.nan
    frames = []
    for _, g in out.groupby(SCALING_GROUP, sort=True, dropna=False):
        g = g.sort_values("ranks").copy()
        # several repeats at one rank count: the baseline is their fastest
        base_n = g["ranks"].min()
        base = g[g["ranks"] == base_n]
        t1 = base["t_total_s"].min()
        c1 = base["t_compute_s"].min()
        g["baseline_ranks"] = base_n
        weak = (g["mode"] == "weak").all()
        if weak:
            g["efficiency"] = [_safe(metrics.weak_efficiency, t1, t) for t in g["t_total_s"]]
            g["compute_efficiency"] = [_safe(metrics.weak_efficiency, c1, t) for t in g["t_compute_s"]]
            g["scaled_speedup"] = [_safe(metrics.weak_scaled_speedup, t1, t, n / base_n)
                                   for t, n in zip(g["t_total_s"], g["ranks"])]
        else:
            g["speedup"] = [_safe(metrics.speedup, t1, t) for t in g["t_total_s"]]
            g["efficiency"] = [_safe(metrics.strong_efficiency, t1, t, n, base_n)
                               for t, n in zip(g["t_total_s"], g["ranks"])]
            g["compute_efficiency"] = [_safe(metrics.strong_efficiency, c1, t, n, base_n)
                                       for t, n in zip(g["t_compute_s"], g["ranks"])]
            if base_n == 1:
                g["karp_flatt"] = [_safe(metrics.karp_flatt, sp, n) if n > 1 else np.nan
                                   for sp, n in zip(g["speedup"], g["ranks"])]
        frames.append(g)
    res = pd.concat(frames) if frames else out
    return res[base_cols].reset_index(drop=True)


@dataclass(frozen=True)
class LawFit:
    """A fitted parallel fraction for one scaling experiment (a row of the fits table)."""

    law: str          # "Amdahl" or "Gustafson"
    group: str
    parallel_fraction: float
    rmse: float
    points: int
    max_ranks: int


def _group_label(row: pd.Series) -> str:
    parts = [row["op"], row["path"], row["devices"], row["window"], row["problem"], row["dtype"]]
    return " \u00b7 ".join(p for p in (str(x) for x in parts) if p)


def law_fits(st: pd.DataFrame) -> list[LawFit]:
    """Amdahl fits of strong-scaling groups, Gustafson fits of weak-scaling groups.

    Only groups with a 1-rank baseline and at least one multi-rank run are fitted: both
    laws are defined relative to one processing element.
    """
    fits: list[LawFit] = []
    if st.empty:
        return fits
    for _, g in st.groupby(SCALING_GROUP, sort=True, dropna=False):
        if g["baseline_ranks"].iloc[0] != 1 or g["ranks"].max() <= 1:
            continue
        weak = (g["mode"] == "weak").all()
        ycol = "scaled_speedup" if weak else "speedup"
        pts = g.dropna(subset=[ycol])
        pts = pts[pts[ycol] > 0]
        if pts.empty or pts["ranks"].max() <= 1:
            continue
        try:
            fit = (metrics.fit_gustafson if weak else metrics.fit_amdahl)(pts["ranks"].tolist(),
                                                                            pts[ycol].tolist())
        except ValueError:
            continue
        fits.append(LawFit(law="Gustafson" if weak else "Amdahl", group=_group_label(g.iloc[0]),
                           parallel_fraction=fit.parallel_fraction, rmse=fit.rmse,
                           points=fit.points, max_ranks=int(pts["ranks"].max())))
    return fits


def per_rank_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-rank figures of every scaling run (device, host, rows, times), one row per rank."""
    s = of_kind(df, "scaling")
    rows: list[dict[str, Any]] = []
    if s.empty:
        return pd.DataFrame(rows)
    # hpc.parallel.driver: parallel per-rank lists instead of a list of dicts
    list_cols = {"device": "params.devices", "device_name": "params.device_names", "host": "params.hosts",
                 "backend": "params.backends", "rows": "params.rows_per_rank", "weight": "params.weights",
                 "compute_s": "metrics.rank_compute_s", "copy_gbs": "metrics.rank_copy_bandwidth_gbs"}
    for _, r in s.iterrows():
        pr = r.get("metrics.per_rank")
        if not isinstance(pr, list):
            lists = {k: r.get(c) for k, c in list_cols.items() if isinstance(r.get(c), list)}
            n = max((len(v) for v in lists.values()), default=0)
            if n == 0:
                continue
            pr = [{"rank": i, **{k: v[i] for k, v in lists.items() if i < len(v)}} for i in range(n)]
        for i, item in enumerate(pr):
            if not isinstance(item, dict):
                continue
            row = {"run": r["name"], "mode": as_key(r.get("params.mode")),
                   "ranks": as_key(r.get("params.ranks"))}
            row.setdefault("rank", i)
            row.update({k: (as_key(v) if isinstance(v, (list, tuple)) else v) for k, v in item.items()})
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- training
def epoch_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch training figures with a run label (device + run name)."""
    e = of_kind(df, "training_epoch")
    cols = ["run", "device", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_s",
            "images_per_s"]
    if e.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(index=e.index)
    out["device"] = device_labels(e)
    out["run"] = run_labels(e, strip=" epoch ")
    out["epoch"] = _num(first_col(e, "params.epoch", "metrics.epoch"))
    for m in cols[3:]:
        out[m] = _num(first_col(e, *metric_names(m)))
    return out[cols].sort_values(["run", "epoch"]).reset_index(drop=True)


def metric_names(short: str) -> list[str]:
    """Candidate column names of a metric: '..._acc' is also spelled '..._accuracy' (hpc.train)."""
    names = [f"metrics.{short}"]
    if short.endswith("_acc"):
        names.append(f"metrics.{short}uracy")
    return names


def device_labels(t: pd.DataFrame) -> list[str]:
    """'cpu', or 'cuda:0 (NVIDIA H100)' when the producer recorded the device's name."""
    dev = first_col(t, "params.device", "metrics.device").map(as_key)
    name = col(t, "params.device_name").map(as_key)
    return [f"{d} ({n})" if n and d and n != d else (d or n) for d, n in zip(dev, name)]


def run_labels(t: pd.DataFrame, strip: str | None = None) -> list[str]:
    """A run's label: params.run if recorded, else the record name (minus ' epoch N')."""
    run_id = first_col(t, "params.run", "params.run_id", "params.run_name").map(as_key)
    names = t["name"].astype(str) if "name" in t.columns else pd.Series([""] * len(t), index=t.index)
    out = []
    for r, n in zip(run_id, names):
        if r:
            out.append(r)
        elif strip and strip in n:
            out.append(n.rsplit(strip, 1)[0])
        else:
            out.append(n or "run")
    return out


TRAINING_COLUMNS = ["run", "device", "epochs", "test_acc", "test_loss", "wall_s", "best_val_acc",
                    "images_per_s"]


def training_table(df: pd.DataFrame) -> pd.DataFrame:
    """Final results per training run."""
    t = of_kind(df, "training")
    if t.empty:
        return pd.DataFrame(columns=TRAINING_COLUMNS)
    out = pd.DataFrame(index=t.index)
    out["device"] = device_labels(t)
    out["run"] = run_labels(t)
    out["epochs"] = _num(first_col(t, "metrics.epochs_completed", "params.epochs", "metrics.epochs"))
    for m in ("test_acc", "test_loss", "wall_s", "best_val_acc", "images_per_s"):
        out[m] = _num(first_col(t, *metric_names(m)))
    return out[TRAINING_COLUMNS].reset_index(drop=True)


def training_cpu_gpu(tt: pd.DataFrame, et: pd.DataFrame) -> pd.DataFrame:
    """CPU vs GPU training speed-up from mean epoch time (or wall time) per device class."""
    cols = ["measure", "cpu_s", "gpu_s", "gpu_speedup"]
    rows = []
    if not et.empty:
        cls = et["device"].map(lambda d: "gpu" if device_class("", d) == "gpu" else "cpu")
        cpu, gpu = et.loc[cls == "cpu", "epoch_s"].median(), et.loc[cls == "gpu", "epoch_s"].median()
        if not (_is_missing(cpu) or _is_missing(gpu)):
            rows.append({"measure": "median epoch time", "cpu_s": cpu, "gpu_s": gpu,
                         "gpu_speedup": _safe(metrics.cpu_gpu_speedup, cpu, gpu)})
    return pd.DataFrame(rows, columns=cols)


def per_class_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-class precision/recall of the training runs (if the producer recorded them).

    Accepts ``metrics.per_class`` as {class: {precision, recall, ...}} (flattened to
    ``metrics.per_class.<class>.<metric>``) or parallel lists ``metrics.precision`` /
    ``metrics.recall`` with ``metrics.class_names`` / ``params.class_names``.
    """
    t = of_kind(df, "training")
    rows: list[dict[str, Any]] = []
    labels = run_labels(t)
    for (_, r), run in zip(t.iterrows(), labels):
        # hpc.train: metrics.precision = {class: value}, flattened to metrics.precision.<class>
        by_metric = {m: {c[len(f"metrics.{m}."):]: r[c] for c in t.columns
                         if c.startswith(f"metrics.{m}.") and not _is_missing(r[c])}
                     for m in ("precision", "recall", "f1", "support")}
        if by_metric["precision"] or by_metric["recall"]:
            classes = list(dict.fromkeys([*by_metric["precision"], *by_metric["recall"]]))
            for cls_name in classes:
                row = {"run": run, "class": cls_name}
                row.update({m: v[cls_name] for m, v in by_metric.items() if cls_name in v})
                rows.append(row)
            continue
        nested = [c for c in t.columns if c.startswith("metrics.per_class.") and not _is_missing(r[c])]
        if nested:
            per: dict[str, dict[str, Any]] = {}
            for c in nested:
                cls_name, _, metric = c[len("metrics.per_class."):].rpartition(".")
                per.setdefault(cls_name, {})[metric] = r[c]
            for cls_name, vals in per.items():
                rows.append({"run": run, "class": cls_name, **vals})
            continue
        prec, rec = r.get("metrics.precision"), r.get("metrics.recall")
        names = r.get("metrics.class_names")
        if _is_missing(names) if not isinstance(names, list) else False:
            names = r.get("params.class_names")
        if isinstance(prec, list) and isinstance(rec, list):
            names = names if isinstance(names, list) else [str(i) for i in range(len(prec))]
            for n, p, q in zip(names, prec, rec):
                rows.append({"run": run, "class": n, "precision": p, "recall": q})
    return pd.DataFrame(rows)


def confusion_matrices(df: pd.DataFrame) -> list[tuple[str, list[str], np.ndarray]]:
    """(run label, class names, matrix) for each training record with an inline matrix.

    A matrix given only as a CSV path is read from that path when it exists.
    """
    t = of_kind(df, "training")
    out: list[tuple[str, list[str], np.ndarray]] = []
    for (_, r), run in zip(t.iterrows(), run_labels(t)):
        m = r.get("metrics.confusion_matrix")
        names = r.get("metrics.class_names")
        if not isinstance(names, list):
            names = r.get("params.class_names")
        mat: np.ndarray | None = None
        if isinstance(m, list) and m and all(isinstance(x, list) for x in m):
            mat = np.asarray(m, dtype=float)
        else:
            path = r.get("metrics.confusion_matrix_csv") or r.get("metrics.confusion_matrix_path")
            if isinstance(path, str):
                mat, names = _read_confusion_csv(path, names)
        if mat is None or mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
            continue
        if not isinstance(names, list) or len(names) != mat.shape[0]:
            names = [str(i) for i in range(mat.shape[0])]
        out.append((run, [str(n) for n in names], mat))
    return out


def _read_confusion_csv(path: str, names: Any) -> tuple[np.ndarray | None, Any]:
    try:
        frame = pd.read_csv(path, index_col=0)
    except (OSError, ValueError):
        return None, names
    try:
        mat = frame.to_numpy(dtype=float)
    except ValueError:
        return None, names
    return mat, [str(c) for c in frame.columns]


def ddp_table(df: pd.DataFrame) -> pd.DataFrame:
    """DDP sweep: images/s per rank count and efficiency vs the 1-rank (or smallest) run."""
    d = of_kind(df, "ddp")
    cols = ["device", "ranks", "images_per_s", "speedup", "efficiency"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(index=d.index)
    # one device label per sweep: cuda:0 and cuda:1 are the same kind of run
    out["device"] = [x.split(":", 1)[0] for x in first_col(d, "params.device", "params.backend").map(as_key)]
    out["ranks"] = _num(first_col(d, "params.ranks", "params.world_size", "metrics.ranks"))
    out["images_per_s"] = _num(col(d, "metrics.images_per_s"))
    out["efficiency"] = _num(first_col(d, "metrics.efficiency", "metrics.scaling_efficiency"))
    out["speedup"] = np.nan
    frames = []
    for _, g in out.dropna(subset=["ranks"]).groupby("device", sort=True):
        g = g.sort_values("ranks").copy()
        base = g[g["ranks"] == g["ranks"].min()]
        n0, ips0 = g["ranks"].min(), base["images_per_s"].max()
        if n0 != 1 and len(g["ranks"].unique()) < 2:
            frames.append(g)  # one multi-rank run and no baseline: nothing to compare with
            continue
        # throughput grows with ranks: speed-up is the throughput ratio
        g["speedup"] = [_safe(metrics.speedup, 1.0 / ips0, 1.0 / x) if x and ips0 else np.nan
                        for x in g["images_per_s"]]
        miss = g["efficiency"].isna()
        g.loc[miss, "efficiency"] = [sp * n0 / n if not _is_missing(sp) else np.nan
                                     for sp, n in zip(g.loc[miss, "speedup"], g.loc[miss, "ranks"])]
        frames.append(g)
    res = pd.concat(frames) if frames else out
    return res[cols].reset_index(drop=True)


def dataset_table(df: pd.DataFrame) -> pd.DataFrame:
    """Dataset build records: every param and metric that is a scalar, one row per record."""
    d = of_kind(df, "dataset", status=None)
    if d.empty:
        return pd.DataFrame()
    keep = ["name", "status"] + [c for c in d.columns if c.startswith(("params.", "metrics."))
                                 and d[c].map(lambda v: not isinstance(v, (list, dict))).all()
                                 and d[c].notna().any()]
    out = d[keep].copy()
    out.columns = [c.split(".", 1)[-1] for c in keep]
    return out.reset_index(drop=True)


def provenance_table(df: pd.DataFrame) -> pd.DataFrame:
    """Distinct provenance facts of the run: commits, hosts, CPUs, versions, SLURM ids."""
    if df.empty:
        return pd.DataFrame(columns=["field", "values"])
    rows = []
    # provenance.config.* is a training run's configuration (shown with the training), not
    # where it ran
    prov_cols = [(c, c.split(".", 1)[1]) for c in df.columns
                 if c.startswith("provenance.") and c != "provenance.timestamp"
                 and not c.startswith("provenance.config.")]
    # devices and MPI hosts live in params; collect them as provenance facts too
    prov_cols += [(c, label) for c, label in (("params.device", "device"), ("params.device_name", "device"),
                                              ("params.device_names", "device"), ("params.hosts", "host"))
                  if c in df.columns]
    for c, label in prov_cols:
        vals: list[str] = []
        for v in df[c]:
            if isinstance(v, (list, tuple)):
                for x in v:
                    if as_key(x) and as_key(x) not in vals:
                        vals.append(as_key(x))
            elif as_key(v) and as_key(v) not in vals:
                vals.append(as_key(v))
        if vals:
            rows.append({"field": label, "values": vals})
    if "provenance.timestamp" in df.columns:
        ts = df["provenance.timestamp"].dropna().astype(str)
        if not ts.empty:
            rows.insert(0, {"field": "time span", "values": f"{ts.min()} \u2013 {ts.max()}"})
    # one row for all package versions instead of one per package
    versions = [r for r in rows if r["field"].startswith("versions.")]
    if versions:
        rows = [r for r in rows if not r["field"].startswith("versions.")]
        rows.append({"field": "package versions",
                     "values": ", ".join(f"{r['field'][9:]} {'/'.join(r['values'])}" for r in versions)})
    merged: dict[str, list[str]] = {}
    for r in rows:
        vals = r["values"] if isinstance(r["values"], list) else [r["values"]]
        merged.setdefault(r["field"], [])
        merged[r["field"]] += [v for v in vals if v not in merged[r["field"]]]
    return pd.DataFrame([{"field": k, "values": ", ".join(v[:12]) + (f" (+{len(v) - 12} more)" if len(v) > 12 else "")}
                         for k, v in merged.items()])


def unique_nonempty(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for v in values:
        k = as_key(v)
        if k and k not in out:
            out.append(k)
    return out
