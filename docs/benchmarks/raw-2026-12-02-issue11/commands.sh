#!/usr/bin/env bash
# The CPU measurements behind docs/benchmarks/kernels-cpu.md (issue 11 section), in the
# order they were run. Every command line is preceded by `cat /proc/loadavg` in log.txt.
# Run from the repository root with the suite's virtualenv on PATH and PYTHONPATH=$PWD.
set -u
OUT=${OUT:-docs/benchmarks/raw-2026-12-02-issue11}
log() { echo "## $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $*" >> "$OUT/log.txt"; }
run() { log "$*"; "$@" >> "$OUT/log.txt" 2>&1; log "done"; }

run python -m hpc.kernels.first_touch --mib 256 --wait 3 --size 8192 --calls 6
# 1. each target point as the FIRST point of a fresh process (shapes 4096^2-16384^2,
#    max/avg, 2x2/2 and 3x3/2, numba, default API call)
for n in 4096 8192 16384; do
  for op in maxpool2d avgpool2d; do
    for k in 2 3; do
      run python -m hpc bench kernels --sizes $n --ops $op --kernel $k --stride 2 --backends numba \
        --repeats 7 --warmup 2 --order listed --quiet --output "$OUT/first-point.jsonl"
    done
  done
done
# 2. the same 12 points within one sweep (shuffled order), default call, then with out=
run python -m hpc bench kernels --sizes 4096 8192 16384 --ops maxpool2d avgpool2d --kernel 2 3 \
  --stride 2 --backends numba --repeats 7 --warmup 2 --quiet --output "$OUT/sweep.jsonl"
run python -m hpc bench kernels --sizes 4096 8192 16384 --ops maxpool2d avgpool2d --kernel 2 3 \
  --stride 2 --backends numba --repeats 7 --warmup 2 --quiet --out-buffer --output "$OUT/sweep-out.jsonl"
# 3. AlexNet / SqueezeNet 1.0 pooling layers, NCHW batch 32, 3x3/2
run python -m hpc bench kernels --batch-shapes 32x96x55x55 32x256x27x27 32x256x13x13 32x96x111x111 \
  32x256x55x55 32x512x27x27 --ops maxpool2d --kernel 3 --stride 2 --backends numba --repeats 7 \
  --warmup 2 --quiet --output "$OUT/batch.jsonl"
# 4. the first-point cause: first touch of fresh pages vs reuse, per-call page faults
run python -m hpc.kernels.first_touch --mib 256 --wait 3 --size 8192 --calls 6
run python -m hpc.kernels.first_touch --mib 256 --wait 3 --size 16384 --calls 4
# 5. one numba thread against the (single-threaded) np.copyto: on a loaded 2-vCPU machine the
#    fairest pairing (a 2-thread kernel waits for its slower thread's time slice)
NUMBA_NUM_THREADS=1 run python -m hpc bench kernels --sizes 4096 8192 16384 --ops maxpool2d avgpool2d \
  --kernel 2 3 --stride 2 --backends numba --repeats 7 --warmup 2 --quiet --output "$OUT/sweep-1thread.jsonl"
