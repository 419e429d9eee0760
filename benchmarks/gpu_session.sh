#!/usr/bin/env bash
# Everything a lent GPU should measure, in one device call; results are written under $OUT.
#
# Prepared on the development machine (no GPU there), so it has not run yet. Before the call:
#   pip download -d .wheels albumentations           # the GPU machine has no albumentations
#   mkdir -p .data && cp ../shared/data/cifar10-train.zip .data/    # 52 MiB (or mnist.zip)
# then run it with carry [".wheels", ".data"]:
#   bash benchmarks/gpu_session.sh throughput cifar10     # or: throughput, cifar10, mnist
# The working tree travels in at most 64 MiB, so CIFAR-10 and MNIST go in separate calls.
set -euo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
pip install -q --no-index --find-links .wheels albumentations || echo "albumentations not installed: limited_labels needs it"
pip install -q --no-deps --no-build-isolation -e . || pip install -q --no-deps -e .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
for job in "$@"; do
  case "$job" in
    throughput)
      python benchmarks/throughput.py --json "$OUT/throughput.json" --markdown "$OUT/performance.md" 2>&1 | tee "$OUT/throughput.log" ;;
    cifar10|mnist)
      python benchmarks/limited_labels.py --dataset "$job" --data-dir .data --out "$OUT/ll-$job" \
        --report "$OUT/results-$job.md" 2>&1 | tail -40 | tee "$OUT/ll-$job.log" ;;
    *) echo "unknown job $job: throughput, cifar10 or mnist" >&2; exit 2 ;;
  esac
done
