"""The report's tables, derived from the tidy record table (``aggregate.load_frame``).

Each function picks one record kind and reads exactly the fields its schema
(``hpc.schema``) defines; an optional field no record carried is an absent column and
yields an empty cell. Devices are classified by ``params.device`` (an
``hpc.schema.Device`` the producer recorded), never by names. The arithmetic lives in
``metrics`` so it is defined (and tested) once.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hpc.analysis import metrics


# ----------------------------------------------------------------------------- helpers
def col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name``, or NaN where no record in the frame carried that optional field."""
    if name in df.columns:
        return df[name]
    return pd.Series(np.nan, index=df.index, dtype=object)


def num(df: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(col(df, name), errors="coerce")


def of_kind(df: pd.DataFrame, kind: str, status: str | None = "ok") -> pd.DataFrame:
    """Rows of one kind (and status); empty frame when there are none."""
    if df.empty:
        return df.iloc[0:0]
    mask = df["kind"] == kind
    if status is not None:
        mask &= df["status"] == status
    return df[mask].copy()


def missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(np.isscalar(v) and pd.isna(v))
    except (TypeError, ValueError):
        return False


def as_key(v: Any) -> str:
    """A printable form of a param value: [4096, 4096] -> '4096x4096', 2.0 -> '2'."""
    if missing(v):
        return ""
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            return "x".join(str(int(x)) for x in v)
        return json.dumps(list(v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def window_label(kernel: Any, stride: Any, padding: Any) -> str:
    """'k3 s2 p1' from pooling params (ints or [h, w] pairs; padding omitted when 0)."""
    def one(v: Any) -> str:
        if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] == v[1]:
            v = v[0]
        return as_key(v)
    if missing(kernel) if not isinstance(kernel, list) else False:
        return ""
    p = one(padding)
    return f"k{one(kernel)} s{one(stride)}" + (f" p{p}" if p not in ("", "0", "0x0") else "")


def safe(func: Any, *args: Any) -> float:
    """A metrics function, NaN when an input is missing or out of its domain."""
    if any(missing(a) for a in args):
        return np.nan
    try:
        return float(func(*args))
    except (ValueError, ZeroDivisionError, TypeError):
        return np.nan


def device_class(kind: Any, opencl_type: Any = None, emulated: Any = False) -> str:
    """'cpu', 'gpu', 'accelerator' or 'simulator' from an ``hpc.schema.Device``'s fields.

    OpenCL on a CPU device is a CPU run (FPGA-style kernels emulated there); numba's CUDA
    simulator is neither a CPU benchmark nor a GPU one.
    """
    if kind == "cuda":
        return "simulator" if emulated is True else "gpu"
    if kind == "opencl":
        return {"gpu": "gpu", "accelerator": "accelerator"}.get(str(opencl_type), "cpu")
    return "cpu" if kind == "cpu" else ""


def _device_columns(t: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(device name, device class) per row from ``params.device``."""
    kinds, types, emu = col(t, "params.device.kind"), col(t, "params.device.opencl_type"), \
        col(t, "params.device.emulated")
    classes = [device_class(k, o, e) for k, o, e in zip(kinds, types, emu)]
    return col(t, "params.device.name").map(as_key), pd.Series(classes, index=t.index)


# ----------------------------------------------------------------------------- failures
def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Every record without a measurement (failed, skipped, or invalid against the schema),
    with the params that identify the sweep point."""
    cols = ["kind", "status", "name", "point", "error", "source"]
    bad = df[df["status"] != "ok"] if not df.empty else df
    if bad.empty:
        return pd.DataFrame(columns=cols)
    param_cols = [c for c in df.columns if c.startswith("params.") and c[7:] in POINT_FIELDS]
    rows = []
    for _, r in bad.iterrows():
        point = ", ".join(f"{c[7:]}={as_key(r[c])}" for c in param_cols if not missing(r[c]))
        rows.append({"kind": r["kind"], "status": r["status"], "name": r["name"], "point": point,
                     "error": short_error(r["error"] or ""), "source": r["source"] or ""})
    return pd.DataFrame(rows, columns=cols)


# the params that identify a sweep point (the rest are settings or derived values)
POINT_FIELDS = frozenset({"op", "backend", "shape", "kernel", "stride", "padding", "dtype", "mode",
                          "path", "ranks", "size", "algorithm", "device", "run", "experiment",
                          "world_size", "epochs"})


def skipped_by_reason(ft: pd.DataFrame) -> pd.DataFrame:
    """Skipped points grouped by (kind, reason): one row per reason, every point named."""
    cols = ["status", "kind", "error", "count", "points"]
    sk = ft[ft["status"] == "skipped"] if not ft.empty else ft
    if sk.empty:
        return pd.DataFrame(columns=cols)
    rows = [{"status": "skipped", "kind": kind, "error": err, "count": len(g),
             "points": "; ".join(g["name"].astype(str))}
            for (kind, err), g in sk.groupby(["kind", "error"], sort=True)]
    return pd.DataFrame(rows, columns=cols)


def short_error(text: str, limit: int = 400) -> str:
    """An error message fit for a table cell: whitespace collapsed, at most ``limit`` chars."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rstrip() + " \u2026 (full text in the record file)"


def status_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Records per kind and status (the summary's first table); any kind, known or not."""
    statuses = ["ok", "failed", "skipped", "invalid"]
    if df.empty:
        return pd.DataFrame(columns=["kind", *statuses, "total"])
    t = pd.crosstab(df["kind"], df["status"])
    for s in statuses:
        if s not in t.columns:
            t[s] = 0
    t = t[statuses]
    t["total"] = t.sum(axis=1)
    return t.reset_index()


# ----------------------------------------------------------------------------- kernels
KERNEL_COLUMNS = ["op", "backend", "variant", "device", "device_class", "dtype", "shape",
                  "elements", "window", "median_s", "iqr_s", "min_s", "transfer_s",
                  "bandwidth_gbs", "bound_gbs", "bound_fraction", "gflops", "bound_gflops",
                  "gflops_fraction"]


def kernel_table(df: pd.DataFrame) -> pd.DataFrame:
    """Successful kernel points: size, window, transfers and the same-run bound fraction.

    ``backend`` is the registry name and ``variant`` the kernel variant, or the device
    suffix of the target label (``torch:cuda`` -> torch / cuda), so GPU runs of a backend
    never merge with its CPU runs.
    """
    k = of_kind(df, "kernel")
    if k.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    out = pd.DataFrame(index=k.index)
    out["op"] = k["params.op"]
    out["backend"] = k["params.backend_name"]
    out["variant"] = [as_key(v) or label.partition(":")[2]
                      for v, label in zip(col(k, "params.variant"), k["params.backend"])]
    out["device"], out["device_class"] = _device_columns(k)
    out["dtype"] = k["params.dtype"]
    out["shape"] = k["params.shape"].map(as_key)
    # pooling: NCHW elements; matmul [m, k, n]: elements of operand A (m * k)
    out["elements"] = [float(s[0] * s[1]) if op == "matmul" else float(np.prod(s))
                       for s, op in zip(k["params.shape"], k["params.op"])]
    out["window"] = [window_label(a, b, c) if op != "matmul" else "" for a, b, c, op in
                     zip(col(k, "params.kernel"), col(k, "params.stride"), col(k, "params.padding"),
                         k["params.op"])]
    for m in ("median_s", "iqr_s", "min_s", "bandwidth_gbs", "bound_gbs", "gflops", "bound_gflops"):
        out[m] = num(k, f"metrics.{m}")
    h2d, d2h = num(k, "metrics.h2d_s"), num(k, "metrics.d2h_s")
    out["transfer_s"] = h2d.add(d2h, fill_value=0).where(h2d.notna() | d2h.notna())
    # bound_fraction is achieved / same-run bound: GB/s for pooling, GFLOP/s for matmul
    frac = num(k, "metrics.bound_fraction")
    is_mm = out["op"] == "matmul"
    out["bound_fraction"] = frac.where(~is_mm)
    out["gflops_fraction"] = frac.where(is_mm)
    out = out[KERNEL_COLUMNS]
    return out.sort_values(["op", "window", "elements", "backend", "variant"], kind="stable").reset_index(drop=True)


def kernel_cpu_gpu(kt: pd.DataFrame) -> pd.DataFrame:
    """Fastest CPU vs fastest GPU backend per (op, window, dtype, shape), and the speed-up."""
    cols = ["op", "window", "dtype", "shape", "cpu_backend", "cpu_median_s", "gpu_backend",
            "gpu_median_s", "gpu_speedup"]
    rows = []
    for key, g in kt.dropna(subset=["median_s"]).groupby(["op", "window", "dtype", "shape"], sort=False):
        cpu = g[(g["device_class"] == "cpu") & (g["backend"] != "study")]
        gpu = g[(g["device_class"] == "gpu") & (g["backend"] != "study")]
        if cpu.empty or gpu.empty:
            continue
        c, d = cpu.loc[cpu["median_s"].idxmin()], gpu.loc[gpu["median_s"].idxmin()]
        rows.append(dict(zip(["op", "window", "dtype", "shape"], key),
                         cpu_backend=_target(c), cpu_median_s=c["median_s"],
                         gpu_backend=_target(d), gpu_median_s=d["median_s"],
                         gpu_speedup=safe(metrics.cpu_gpu_speedup, c["median_s"], d["median_s"])))
    return pd.DataFrame(rows, columns=cols)


def _target(row: pd.Series) -> str:
    return f"{row['backend']} {row['variant']}".strip()


def study_speedups(kt: pd.DataFrame) -> pd.DataFrame:
    """Our `study` backend vs our fastest backend on the same point and device class."""
    cols = ["op", "window", "dtype", "shape", "study_variant", "device_class", "study_median_s",
            "fastest_backend", "fastest_median_s", "speedup"]
    rows = []
    for key, g in kt.dropna(subset=["median_s"]).groupby(["op", "window", "dtype", "shape"], sort=False):
        fast = g[g["backend"] != "study"]
        for _, s in g[g["backend"] == "study"].iterrows():
            same = fast[fast["device_class"] == s["device_class"]]
            if same.empty:
                continue
            best = same.loc[same["median_s"].idxmin()]
            rows.append(dict(zip(["op", "window", "dtype", "shape"], key),
                             study_variant=s["variant"], device_class=s["device_class"],
                             study_median_s=s["median_s"], fastest_backend=_target(best),
                             fastest_median_s=best["median_s"],
                             speedup=safe(metrics.speedup, s["median_s"], best["median_s"])))
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- scaling
SCALING_GROUP = ["mode", "op", "path", "backends", "devices", "dtype", "window", "problem"]
PHASES = ("t_distribute_s", "t_compute_s", "t_gather_s")


def _kinds_label(v: Any) -> str:
    """A per-rank list as its distinct values: ['cpu', 'cpu'] -> 'cpu' (varies with ranks)."""
    return "+".join(sorted({str(x) for x in v})) if isinstance(v, list) else as_key(v)


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """Scaling points with speed-up, efficiency and Karp-Flatt against the group's smallest run.

    A group is one experiment (mode, op + matmul algorithm + weighted split, data path,
    backends, device kinds, dtype, window, problem: total shape for strong scaling, the
    per-rank side for weak scaling). ``baseline_ranks`` says which run is the reference.
    Phases: distribute = read + distribute, gather = gather + write (``hpc.parallel``).
    """
    s = of_kind(df, "scaling")
    base_cols = SCALING_GROUP + ["ranks", "baseline_ranks", *PHASES, "t_total_s", "imbalance",
                                 "speedup", "efficiency", "compute_efficiency", "karp_flatt",
                                 "scaled_speedup", "bandwidth_gbs", "copy_bound_gbs", "bound_fraction"]
    if s.empty:
        return pd.DataFrame(columns=base_cols)
    out = pd.DataFrame(index=s.index)
    out["mode"] = s["params.mode"]
    out["op"] = [" ".join(x for x in (o, as_key(a), "weighted" if sp == "weighted" else "") if x)
                 for o, a, sp in zip(s["params.op"], col(s, "params.algorithm"), s["params.split"])]
    out["path"] = s["params.path"]
    out["backends"] = s["params.backends"].map(_kinds_label)
    out["devices"] = s["params.devices"].map(_kinds_label)
    out["dtype"] = s["params.dtype"]
    out["window"] = [window_label(k, st, p) if not missing(k) else "" for k, st, p in
                     zip(col(s, "params.kernel_size"), col(s, "params.stride"), col(s, "params.padding"))]
    out["problem"] = [f"per rank {as_key(n)}x{as_key(n)}" if m == "weak" else as_key(sh)
                      for m, n, sh in zip(s["params.mode"], s["params.size"], s["params.shape"])]
    out["ranks"] = s["params.ranks"].astype(int)
    out["t_distribute_s"] = num(s, "metrics.read_s") + num(s, "metrics.distribute_s")
    out["t_compute_s"] = num(s, "metrics.compute_s")
    out["t_gather_s"] = num(s, "metrics.gather_s") + num(s, "metrics.write_s")
    out["t_total_s"] = num(s, "metrics.total_s")
    out["imbalance"] = num(s, "metrics.load_imbalance")
    out["bandwidth_gbs"] = num(s, "metrics.bandwidth_gbs")
    out["copy_bound_gbs"] = num(s, "metrics.copy_bandwidth_gbs")
    out["bound_fraction"] = num(s, "metrics.bound_fraction")
    frames = []
    for _, g in out.groupby(SCALING_GROUP, sort=True, dropna=False):
        g = g.sort_values("ranks").copy()
        base_n = g["ranks"].min()
        base = g[g["ranks"] == base_n]
        t1, c1 = base["t_total_s"].min(), base["t_compute_s"].min()
        g["baseline_ranks"] = base_n
        if (g["mode"] == "weak").all():
            g["efficiency"] = [safe(metrics.weak_efficiency, t1, t) for t in g["t_total_s"]]
            g["compute_efficiency"] = [safe(metrics.weak_efficiency, c1, t) for t in g["t_compute_s"]]
            g["scaled_speedup"] = [safe(metrics.weak_scaled_speedup, t1, t, n / base_n)
                                   for t, n in zip(g["t_total_s"], g["ranks"])]
        else:
            g["speedup"] = [safe(metrics.speedup, t1, t) for t in g["t_total_s"]]
            g["efficiency"] = [safe(metrics.strong_efficiency, t1, t, n, base_n)
                               for t, n in zip(g["t_total_s"], g["ranks"])]
            g["compute_efficiency"] = [safe(metrics.strong_efficiency, c1, t, n, base_n)
                                       for t, n in zip(g["t_compute_s"], g["ranks"])]
            if base_n == 1:
                g["karp_flatt"] = [safe(metrics.karp_flatt, sp, n) if n > 1 else np.nan
                                   for sp, n in zip(g["speedup"], g["ranks"])]
        frames.append(g)
    res = pd.concat(frames).reindex(columns=base_cols)
    return res.reset_index(drop=True)


@dataclass(frozen=True)
class LawFit:
    """A fitted parallel fraction for one scaling experiment (a row of the fits table)."""

    law: str          # "Amdahl" or "Gustafson"
    group: str
    parallel_fraction: float
    rmse: float
    points: int
    max_ranks: int


def group_text(row: pd.Series) -> str:
    parts = [row["op"], row["path"], row["devices"], row["window"], row["problem"], row["dtype"]]
    return " \u00b7 ".join(p for p in (str(x) for x in parts) if p)


def law_fits(st: pd.DataFrame) -> list[LawFit]:
    """Amdahl fits of strong-scaling groups, Gustafson fits of weak-scaling groups, for
    groups with a 1-rank baseline and at least one multi-rank run."""
    fits: list[LawFit] = []
    for _, g in st.groupby(SCALING_GROUP, sort=True, dropna=False):
        if g["baseline_ranks"].iloc[0] != 1 or g["ranks"].max() <= 1:
            continue
        weak = (g["mode"] == "weak").all()
        ycol = "scaled_speedup" if weak else "speedup"
        pts = g.dropna(subset=[ycol])
        pts = pts[pts[ycol] > 0]
        if pts.empty or pts["ranks"].max() <= 1:
            continue
        fit = (metrics.fit_gustafson if weak else metrics.fit_amdahl)(pts["ranks"].tolist(), pts[ycol].tolist())
        fits.append(LawFit(law="Gustafson" if weak else "Amdahl", group=group_text(g.iloc[0]),
                           parallel_fraction=fit.parallel_fraction, rmse=fit.rmse,
                           points=fit.points, max_ranks=int(pts["ranks"].max())))
    return fits


PER_RANK_LISTS = {"device": "params.devices", "device_name": "params.device_names", "host": "params.hosts",
                  "backend": "params.backends", "rows": "params.rows_per_rank", "weight": "params.weights",
                  "compute_s": "metrics.rank_compute_s", "copy_gbs": "metrics.rank_copy_bandwidth_gbs"}


def per_rank_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-rank figures of every scaling point (device, host, rows, compute time), one row per rank."""
    s = of_kind(df, "scaling")
    rows: list[dict[str, Any]] = []
    for _, r in s.iterrows():
        lists = {k: r[c] for k, c in PER_RANK_LISTS.items() if c in s.columns and isinstance(r[c], list)}
        for i in range(int(r["params.ranks"])):
            row = {"run": r["name"], "mode": r["params.mode"], "ranks": int(r["params.ranks"]), "rank": i}
            row.update({k: v[i] for k, v in lists.items() if i < len(v)})
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- training
def _runs(t: pd.DataFrame) -> pd.Series:
    """A training run's label: its record name (``<run>`` / ``<run> epoch <n>``)."""
    return t["name"].astype(str).map(lambda n: n.rsplit(" epoch ", 1)[0])


def _device_label(t: pd.DataFrame) -> list[str]:
    name, cls = _device_columns(t)
    return [f"{c} ({n})" if n else c for n, c in zip(name, cls)]


EPOCH_COLUMNS = ["run", "device", "device_class", "epoch", "train_loss", "train_acc", "val_loss",
                 "val_acc", "epoch_s", "images_per_s"]


def epoch_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch training figures (accuracies as fractions)."""
    e = of_kind(df, "training_epoch")
    if e.empty:
        return pd.DataFrame(columns=EPOCH_COLUMNS)
    out = pd.DataFrame(index=e.index)
    out["run"] = _runs(e)
    out["device"] = _device_label(e)
    out["device_class"] = _device_columns(e)[1]
    out["epoch"] = e["params.epoch"].astype(int)
    for short, field in (("train_loss", "train_loss"), ("train_acc", "train_accuracy"),
                         ("val_loss", "val_loss"), ("val_acc", "val_accuracy"),
                         ("epoch_s", "epoch_s"), ("images_per_s", "images_per_s")):
        out[short] = num(e, f"metrics.{field}")
    return out[EPOCH_COLUMNS].sort_values(["run", "epoch"]).reset_index(drop=True)


TRAINING_COLUMNS = ["run", "device", "device_class", "epochs", "test_acc", "test_correct", "test_count",
                    "test_ci95", "test_loss", "wall_s", "best_val_acc", "images_per_s"]


def training_table(df: pd.DataFrame) -> pd.DataFrame:
    """Final results per training run; k/n and the 95 % interval where the run recorded them."""
    t = of_kind(df, "training")
    if t.empty:
        return pd.DataFrame(columns=TRAINING_COLUMNS)
    out = pd.DataFrame(index=t.index)
    out["run"] = _runs(t)
    out["device"] = _device_label(t)
    out["device_class"] = _device_columns(t)[1]
    out["epochs"] = num(t, "metrics.epochs_completed")
    out["test_acc"] = num(t, "metrics.test_accuracy")
    out["test_correct"] = num(t, "metrics.test_correct")
    out["test_count"] = num(t, "metrics.test_count")
    out["test_ci95"] = col(t, "metrics.test_accuracy_ci95").map(
        lambda v: f"{v[0]:.1%}\u2013{v[1]:.1%}" if isinstance(v, list) else "")
    out["test_loss"] = num(t, "metrics.test_loss")
    out["wall_s"] = num(t, "metrics.wall_s")
    out["best_val_acc"] = num(t, "metrics.best_val_accuracy")
    out["images_per_s"] = num(t, "metrics.images_per_s")
    return out[TRAINING_COLUMNS].reset_index(drop=True)


def training_cpu_gpu(et: pd.DataFrame) -> pd.DataFrame:
    """CPU vs GPU training speed-up from the median epoch time of each device class."""
    cols = ["measure", "cpu_s", "gpu_s", "gpu_speedup"]
    cpu = et.loc[et["device_class"] == "cpu", "epoch_s"].median()
    gpu = et.loc[et["device_class"] == "gpu", "epoch_s"].median()
    if missing(cpu) or missing(gpu):
        return pd.DataFrame(columns=cols)
    return pd.DataFrame([{"measure": "median epoch time", "cpu_s": cpu, "gpu_s": gpu,
                          "gpu_speedup": safe(metrics.cpu_gpu_speedup, cpu, gpu)}], columns=cols)


def per_class_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per-class precision and recall of each run (``metrics.precision`` / ``recall``: {class: value})."""
    t = of_kind(df, "training")
    rows: list[dict[str, Any]] = []
    for (_, r), run in zip(t.iterrows(), _runs(t)):
        for name in r["params.class_names"]:
            rows.append({"run": run, "class": name, "precision": r.get(f"metrics.precision.{name}"),
                         "recall": r.get(f"metrics.recall.{name}")})
    return pd.DataFrame(rows, columns=["run", "class", "precision", "recall"])


def confusion_matrices(df: pd.DataFrame) -> list[tuple[str, list[str], np.ndarray]]:
    """(run, class names, matrix) of every finished training run."""
    t = of_kind(df, "training")
    return [(run, list(r["params.class_names"]), np.asarray(r["metrics.confusion_matrix"], dtype=float))
            for (_, r), run in zip(t.iterrows(), _runs(t))]


DDP_COLUMNS = ["device", "ranks", "images_per_s", "speedup", "efficiency"]


def ddp_table(df: pd.DataFrame) -> pd.DataFrame:
    """DDP training throughput per rank count; speed-up and efficiency against the run with
    the fewest ranks of the same device class (throughput ratio)."""
    d = of_kind(df, "ddp")
    d = d[col(d, "params.op").fillna("train") == "train"] if not d.empty else d
    if d.empty:
        return pd.DataFrame(columns=DDP_COLUMNS)
    out = pd.DataFrame(index=d.index)
    out["device"] = _device_columns(d)[1]
    out["ranks"] = d["params.world_size"].astype(int)
    out["images_per_s"] = num(d, "metrics.images_per_s")
    frames = []
    for _, g in out.groupby("device", sort=True):
        g = g.sort_values("ranks").copy()
        n0 = g["ranks"].min()
        ips0 = g.loc[g["ranks"] == n0, "images_per_s"].max()
        g["speedup"] = [safe(metrics.speedup, 1.0 / ips0, 1.0 / x) if x and ips0 else np.nan
                        for x in g["images_per_s"]]
        g["efficiency"] = [sp * n0 / n for sp, n in zip(g["speedup"], g["ranks"])]
        if g["ranks"].nunique() < 2 and n0 != 1:
            g[["speedup", "efficiency"]] = np.nan   # one multi-rank run, nothing to compare with
        frames.append(g)
    return pd.concat(frames)[DDP_COLUMNS].reset_index(drop=True)


DATASET_COLUMNS = ["name", "status", "input", "n_converted", "n_rejected", "n_slices", "image_size",
                   "slice_axis", "normalization", "elapsed_s", "file_size_bytes"]


def dataset_table(df: pd.DataFrame) -> pd.DataFrame:
    """Dataset builds, one row per record."""
    d = of_kind(df, "dataset", status=None)
    if d.empty:
        return pd.DataFrame(columns=DATASET_COLUMNS)
    out = pd.DataFrame({"name": d["name"], "status": d["status"]}, index=d.index)
    for c in DATASET_COLUMNS[2:]:
        out[c] = col(d, f"params.{c}") if f"params.{c}" in d.columns else col(d, f"metrics.{c}")
    return out.reset_index(drop=True)


def provenance_table(df: pd.DataFrame) -> pd.DataFrame:
    """Distinct provenance facts of the run: commits, hosts, CPUs, versions, SLURM ids, devices."""
    if df.empty:
        return pd.DataFrame(columns=["field", "values"])
    facts: dict[str, list[str]] = {}

    def add(field: str, value: Any) -> None:
        for v in (value if isinstance(value, list) else [value]):
            k = as_key(v)
            if k and k not in facts.setdefault(field, []):
                facts[field].append(k)
    if "provenance.timestamp" in df.columns:
        ts = df["provenance.timestamp"].dropna().astype(str)
        if not ts.empty:
            add("time span", f"{ts.min()} \u2013 {ts.max()}")
    for c in df.columns:
        # provenance.config.* is a training run's configuration, not where it ran
        if c.startswith("provenance.") and c != "provenance.timestamp" and not c.startswith(
                ("provenance.config.", "provenance.versions.")):
            for v in df[c]:
                add(c.split(".", 1)[1], v)
    for c in ("params.device.name", "params.hosts"):
        if c in df.columns:
            for v in df[c]:
                add("device" if c.endswith("name") else "host", v)
    versions = [f"{c[len('provenance.versions.'):]} {'/'.join(sorted({as_key(v) for v in df[c] if as_key(v)}))}"
                for c in df.columns if c.startswith("provenance.versions.")]
    rows = [{"field": k, "values": ", ".join(v[:12]) + (f" (+{len(v) - 12} more)" if len(v) > 12 else "")}
            for k, v in facts.items()]
    if versions:
        rows.append({"field": "package versions", "values": ", ".join(versions)})
    return pd.DataFrame(rows, columns=["field", "values"])


def finite(v: Any) -> bool:
    return not missing(v) and math.isfinite(float(v))
