#!/usr/bin/env bash
# Second run of the key measurements (when the load had dropped), same commands as
# commands.sh sections 1-3 (first points for 8192^2 and 16384^2 only), OUT=.../run2.
set -u
OUT=${OUT:-docs/benchmarks/raw-2026-12-02-issue11/run2}
mkdir -p "$OUT"
log() { echo "## $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*" >> "$OUT/log.txt"; }
run() { log "$*"; "$@" >> "$OUT/log.txt" 2>&1; log "done"; }
run python -m hpc bench kernels --sizes 4096 8192 16384 --ops maxpool2d avgpool2d --kernel 2 3 \
  --stride 2 --backends numba --repeats 7 --warmup 2 --quiet --output "$OUT/sweep.jsonl"
run python -m hpc bench kernels --batch-shapes 32x96x55x55 32x256x27x27 32x256x13x13 32x96x111x111 \
  32x256x55x55 32x512x27x27 --ops maxpool2d --kernel 3 --stride 2 --backends numba --repeats 7 \
  --warmup 2 --quiet --output "$OUT/batch.jsonl"
for n in 8192 16384; do
  for op in maxpool2d avgpool2d; do
    for k in 2 3; do
      run python -m hpc bench kernels --sizes $n --ops $op --kernel $k --stride 2 --backends numba \
        --repeats 7 --warmup 2 --order listed --quiet --output "$OUT/first-point.jsonl"
    done
  done
done
run python -m hpc bench kernels --sizes 4096 8192 16384 --ops maxpool2d avgpool2d --kernel 2 3 \
  --stride 2 --backends numba --repeats 7 --warmup 2 --quiet --out-buffer --output "$OUT/sweep-out.jsonl"
