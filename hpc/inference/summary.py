"""``python -m hpc.inference.summary RECORDS.jsonl...``: an inference sweep as Markdown tables.

What docs/benchmarks/inference-batch.md is made of: the per-batch breakdown (ms), the fits
``time = a + b * batch`` per component and the sweep summary (cold start, peak images/s,
the batch reaching 90 % of it), computed by the same functions as the HTML report.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Sequence

import pandas as pd

from hpc.analysis.aggregate import load_frame
from hpc.analysis.section_inference_batch import batch_table, fit_table, sweep_table
from hpc.schema.inference import COMPONENTS


def _fmt(v: object, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def markdown(df: pd.DataFrame, columns: Sequence[tuple[str, str]], digits: int = 4) -> str:
    head = "| " + " | ".join(label for _, label in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    rows = ["| " + " | ".join(_fmt(r[key], digits) for key, _ in columns) + " |" for _, r in df.iterrows()]
    return "\n".join([head, rule, *rows])


def summarise(paths: Sequence[str]) -> str:
    df = load_frame(paths)
    bt, sw = batch_table(df), sweep_table(df)
    out = []
    if bt.empty:
        return "no ok inference_batch records"
    present = [c for c in COMPONENTS if bt[f"{c}_s"].notna().any() and (bt[f"{c}_s"] != 0).any()]
    for keys, g in bt.groupby(["model", "backend_label", "dtype", "host_memory"], sort=True):
        g = g.copy()
        for c in (*present, "total", "per_image", "unattributed", "profiled_total"):
            g[f"{c}_ms"] = g[f"{c}_s"] * 1e3
        g["peak_mib"] = g["peak_memory_bytes"] / 2**20
        out.append(f"### {' / '.join(map(str, keys))}\n")
        out.append(markdown(g, [("batch", "batch")] + [(f"{c}_ms", f"{c} ms") for c in present]
                            + [("unattributed_ms", "unattributed ms"), ("profiled_total_ms", "profiled total ms"),
                               ("total_ms", "total ms (unprofiled)"), ("per_image_ms", "ms / image"),
                               ("images_per_s", "images/s"), ("peak_mib", "peak RSS delta MiB")]))
        out.append("")
    ft = fit_table(bt)
    if not ft.empty:
        ft = ft.assign(fixed_ms=ft["fixed_s"] * 1e3, per_image_ms=ft["per_image_s"] * 1e3,
                       share=ft["fixed_share_b1"] * 100)
        out.append("### Fits: time = a + b × batch (weights 1/t)\n")
        out.append(markdown(ft, [("model", "model"), ("backend", "backend"), ("component", "component"),
                                 ("fixed_ms", "a: fixed ms"), ("per_image_ms", "b: ms / image"), ("r2", "r²"),
                                 ("share", "fixed share at batch 1 %"), ("batches", "batches (n)")], 3))
        out.append("")
    if not sw.empty:
        sw = sw.assign(cold_ms=pd.to_numeric(sw["cold_start_s"]) * 1e3, warm_ms=pd.to_numeric(sw["warm_batch1_s"]) * 1e3)
        out.append("### Sweeps\n")
        out.append(markdown(sw, [("model", "model"), ("backend", "backend"), ("device", "device"),
                                 ("cold_ms", "cold start ms"), ("warm_ms", "warm batch 1 ms"),
                                 ("peak_images_per_s", "peak images/s"), ("peak_batch", "at batch"),
                                 ("batch_90pct_peak", "batch for 90 % of peak"),
                                 ("memory_cap_batch", "memory cap (batch)"), ("skipped", "skipped")]))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpc.inference.summary", description=__doc__)
    parser.add_argument("records", nargs="+", help="JSONL files (or directories) of inference records")
    args = parser.parse_args(argv)
    print(summarise(args.records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
