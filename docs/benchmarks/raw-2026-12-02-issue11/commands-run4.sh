#!/usr/bin/env bash
# Run 4: the commands of commands-run2.sh that failed in run3 (a merge in the same worktree
# left a file with conflict markers for a minute; see run3/log.txt), same options.
set -u
OUT=${OUT:-docs/benchmarks/raw-2026-12-02-issue11/run4}
mkdir -p "$OUT"
log() { echo "## $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*" >> "$OUT/log.txt"; }
run() { log "$*"; "$@" >> "$OUT/log.txt" 2>&1; log "done"; }
run python -m hpc bench kernels --sizes 8192 --ops avgpool2d --kernel 3 --stride 2 --backends numba \
  --repeats 7 --warmup 2 --order listed --quiet --output "$OUT/first-point.jsonl"
for op in maxpool2d avgpool2d; do
  for k in 2 3; do
    run python -m hpc bench kernels --sizes 16384 --ops $op --kernel $k --stride 2 --backends numba \
      --repeats 7 --warmup 2 --order listed --quiet --output "$OUT/first-point.jsonl"
  done
done
run python -m hpc bench kernels --sizes 4096 8192 16384 --ops maxpool2d avgpool2d --kernel 2 3 \
  --stride 2 --backends numba --repeats 7 --warmup 2 --quiet --out-buffer --output "$OUT/sweep-out.jsonl"
