#!/usr/bin/env bash
# Everything a lent GPU should measure, in one device call; results are written under $OUT.
#
# Before the call, on the development machine:
#   mkdir -p .data && cp ../shared/data/cifar10-train.zip .data/   # 52 MiB (or mnist.zip, 29 MiB)
#   pip download --no-deps -d .wheels pytest pluggy iniconfig packaging pygments exceptiongroup tomli  # < 3 MiB
# then call it with carry [".data", ".wheels"]:
#   bash benchmarks/gpu_session.sh tests throughput cifar10     # jobs: tests, throughput, cifar10, mnist,
#                                                               # teacher-cifar10 (the run's teacher, issue 20),
#                                                               # cpu-sizes (the CPU sizes' quality cost, issue 22),
#                                                               # long-tailed (CIFAR-10-LT at the GPU sizes, issue 23),
#                                                               # colour-teacher (the self-trained teacher, issue 31)
# "tests" runs the test suite's GPU tests (pytest -m gpu: CUDA training, bf16, inductor and CUDA
# graphs, device augmentation), which skip on the development machine.
# The working tree travels in at most 64 MiB, so CIFAR-10 and MNIST go in separate calls.
#
# Time: one call may run 10 minutes. limited_labels gets what is left of CALL_SECONDS (default
# 540) after the jobs before it, less a minute: it starts no (budget, seed) run that would end
# past that, and writes its report after every finished run, so a call cut short still returns
# what it measured. To continue in a later call, copy the returned
# ll-<job>/limited_labels.json to .data/ll-<job>/ (carried): it is picked up with --resume.
#
# The GPU machine lacks albumentations, and nothing here needs it there: on CUDA the classifier's
# augmentation runs on the device (ClassifierConfig.augment="auto"). Wheels in .wheels (carried)
# are installed if present, for --clf-augment albumentations.
#
# GPU_SESSION_DRY=1 runs the same steps on the CPU with --quick (checks this script, no numbers).
set -euo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
CALL_SECONDS=${CALL_SECONDS:-540}
if [[ "${GPU_SESSION_DRY:-0}" == 1 ]]; then
  quick=(--quick --device cpu)
else
  quick=()
  if [[ -d .wheels ]]; then
    python -c "import pytest" 2>/dev/null || pip install -q --no-index --find-links .wheels pytest || echo "pytest not installed"
    ls .wheels | grep -qi albumentations && { pip install -q --no-index --find-links .wheels albumentations || echo "albumentations not installed"; }
  fi
  pip install -q --no-deps --no-build-isolation -e . || pip install -q --no-deps -e .
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
python -c "import torch, gan_augment; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'gan_augment', gan_augment.__version__)" | tee -a "$OUT/gpu.txt"
for job in "$@"; do
  case "$job" in
    tests)
      python -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_train_fit.py tests/test_train_compile.py tests/test_evaluate_classifier.py \
        2>&1 | tail -40 | tee "$OUT/tests.log" || true ;;
    throughput)
      python benchmarks/throughput.py "${quick[@]}" --json "$OUT/throughput.json" --markdown "$OUT/performance.md" 2>&1 | tee "$OUT/throughput.log" ;;
    teacher-cifar10)  # issue 20's CIFAR-10 criterion: the run's teacher at the GPU budget, 25 labels per class
      left=$(( CALL_SECONDS - SECONDS - 60 ))
      if (( left < 60 )); then echo "no time left for $job ($SECONDS s used)" | tee -a "$OUT/gpu.txt"; continue; fi
      python benchmarks/limited_labels.py --dataset cifar10 --cifar-budgets 25 --data-dir .data --out "$OUT/ll-$job" \
        --arms baseline default default-synthetic teacher teacher-unlabeled --report "$OUT/results-$job.md" \
        --time-budget "$(python -c "print(round($left / 60, 2))")" "${quick[@]}" 2>&1 | tail -60 | tee "$OUT/ll-$job.log" ;;
    cpu-sizes)  # issue 22: the quality cost of the CPU sizes, both trained on the GPU (MNIST, 10 labels per class)
      for sizes in gpu cpu; do
        share=1; [[ $sizes == gpu ]] && share=2  # half of what is left for the first, the rest for the second
        left=$(( (CALL_SECONDS - SECONDS - 60) / share ))
        if (( left < 60 )); then echo "no time left for $job $sizes ($SECONDS s used)" | tee -a "$OUT/gpu.txt"; continue; fi
        reduced=(); [[ $sizes == cpu ]] && reduced=(--cpu-reduced)
        python benchmarks/limited_labels.py --dataset mnist --mnist-budgets 10 --data-dir .data --out "$OUT/ll-$job-$sizes" \
          --arms baseline gan-per-class --report "$OUT/results-$job-$sizes.md" "${reduced[@]}" \
          --time-budget "$(python -c "print(round($left / 60, 2))")" "${quick[@]}" 2>&1 | tail -30 | tee "$OUT/ll-$job-$sizes.log"
      done ;;
    cifar10|mnist)
      resume=()
      if [[ -f ".data/ll-$job/limited_labels.json" ]]; then
        mkdir -p "$OUT/ll-$job" && cp ".data/ll-$job/limited_labels.json" "$OUT/ll-$job/" && resume=(--resume)
      fi
      left=$(( CALL_SECONDS - SECONDS - 60 ))
      if (( left < 60 )); then echo "no time left for $job ($SECONDS s used)" | tee -a "$OUT/gpu.txt"; continue; fi
      python benchmarks/limited_labels.py --dataset "$job" --data-dir .data --out "$OUT/ll-$job" --report "$OUT/results-$job.md" \
        --time-budget "$(python -c "print(round($left / 60, 2))")" "${resume[@]}" "${quick[@]}" 2>&1 | tail -60 | tee "$OUT/ll-$job.log" ;;
    long-tailed)  # issue 23 at the GPU sizes: CIFAR-10-LT, ratio 100; the report is rewritten after every seed,
      # so a timeout still returns the seeds done (copy long_tailed.json to .data/lt/ to go on with --resume)
      left=$(( CALL_SECONDS - SECONDS - 30 ))
      if (( left < 60 )); then echo "no time left for $job ($SECONDS s used)" | tee -a "$OUT/gpu.txt"; continue; fi
      resume=()
      if [[ -f .data/lt/long_tailed.json ]]; then mkdir -p "$OUT/lt" && cp .data/lt/long_tailed.json "$OUT/lt/" && resume=(--resume); fi
      lt_data=(--dataset cifar10 --data-dir .data)
      [[ "${GPU_SESSION_DRY:-0}" == 1 ]] && lt_data=(--train-dir "${GPU_SESSION_LT_DIR:?a folder for the dry run}" --largest 6 --ratio 3)
      timeout "$left" python benchmarks/long_tailed.py "${lt_data[@]}" --out "$OUT/lt" "${resume[@]}" "${quick[@]}" \
        2>&1 | tail -40 | tee "$OUT/lt.log" || echo "long-tailed: stopped at the call's time ($SECONDS s)" | tee -a "$OUT/gpu.txt" ;;
    colour-teacher)  # issue 31: the self-trained colour teacher's phases, then the run's routes, CIFAR-10 25/class
      left=$(( CALL_SECONDS - SECONDS - 60 ))
      if (( left < 120 )); then echo "no time left for $job ($SECONDS s used)" | tee -a "$OUT/gpu.txt"; continue; fi
      device=(--device cuda); [[ "${GPU_SESSION_DRY:-0}" == 1 ]] && device=(--device cpu --quick)
      timeout $(( left / 3 )) python benchmarks/colour_teacher.py --archive .data/cifar10-train.zip "${device[@]}" \
        --out "$OUT/colour-teacher" 2>&1 | tail -20 | tee "$OUT/colour-teacher.log" || true
      left=$(( CALL_SECONDS - SECONDS - 60 ))
      python benchmarks/limited_labels.py --dataset cifar10 --cifar-budgets 25 --data-dir .data --out "$OUT/ll-$job" \
        --arms baseline default teacher teacher-unlabeled --report "$OUT/results-$job.md" \
        --time-budget "$(python -c "print(round($left / 60, 2))")" "${quick[@]}" 2>&1 | tail -40 | tee "$OUT/ll-$job.log" ;;
    *) echo "unknown job $job: tests, throughput, cifar10, mnist, teacher-cifar10, cpu-sizes, long-tailed or colour-teacher" >&2; exit 2 ;;
  esac
done
echo "gpu_session: ${SECONDS} s" | tee -a "$OUT/gpu.txt"
