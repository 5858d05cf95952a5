#!/usr/bin/env bash
# Quiet-machine re-measurement (no other jobs running), 2026-11-21.
set -x
cd /work/main
export PATH=/work/main/.venv/bin:$PATH
Q=/tmp/quiet
date -u; uptime
python -m hpc bench kernels --ops maxpool2d avgpool2d --backends numba torch --sizes 4096 8192 16384 \
   --kernel 2 3 --stride 2 2 --repeats 7 --warmup 2 --no-check --quiet --markdown --output $Q/k-single.jsonl > $Q/k-single.md 2>&1
python -m hpc bench kernels --ops maxpool2d --backends numba torch numpy --batch-shapes 32x96x55x55 32x256x27x27 32x256x13x13 32x96x111x111 32x256x55x55 32x512x27x27 \
   --kernel 3 --stride 2 --repeats 7 --warmup 2 --quiet --markdown --output $Q/k-batch.jsonl > $Q/k-batch.md 2>&1
python -m hpc bench kernels --ops maxpool2d --backends study:serial numpy numba torch --sizes 4 8 16 32 64 128 256 512 1024 \
   --kernel 2 --stride 2 --repeats 3 --warmup 1 --quiet --markdown --output $Q/k-study.jsonl > $Q/k-study.md 2>&1
python -m hpc bench kernels --ops matmul --backends numpy numba torch opencl --sizes 1024 2048 --repeats 3 --warmup 1 --quiet --markdown --output $Q/k-matmul.jsonl > $Q/k-matmul.md 2>&1
date -u
for P in 1 2; do
  mpiexec -n $P python -m hpc scale --mode weak --ops maxpool2d,avgpool2d --sizes 8192 --path scatter,parallel-io \
     --repeats 20 --warmup 2 --workdir $Q/work --output $Q/weak-P$P.jsonl > $Q/weak-P$P.log 2>&1
done
for P in 1 2 4; do
  mpiexec -n $P python -m hpc scale --mode strong --ops maxpool2d --sizes 16384 --path scatter,parallel-io \
     --repeats 5 --warmup 1 --workdir $Q/work --output $Q/strong-P$P.jsonl > $Q/strong-P$P.log 2>&1
done
python -m hpc scale --summarize $Q/weak-P1.jsonl $Q/weak-P2.jsonl > $Q/weak.md 2>&1
python -m hpc scale --summarize $Q/strong-P1.jsonl $Q/strong-P2.jsonl $Q/strong-P4.jsonl > $Q/strong.md 2>&1
date -u
rm -rf $Q/work
python -m hpc train run --data results/dataset/slices.h5 --out-dir $Q/train-cpu --epochs 30 --batch-size 32 --threads 2 \
   --device cpu --eval-test-each-epoch --no-progress --overwrite > $Q/train-cpu.log 2>&1
python -m hpc train ddp-sweep --ranks 1,2 --out-dir $Q/ddp --overwrite -- --data results/dataset/slices.h5 --epochs 3 \
   --batch-size 32 --threads 1 --device cpu --no-progress > $Q/ddp.log 2>&1
date -u; uptime
