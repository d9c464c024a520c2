#!/usr/bin/env bash
# One call on a GPU machine: build the default selection, run the GPU numerics, the sanitizer on
# every bf16 kernel (forward and backward, each head dim), and a benchmark. Arguments go to
# `python -m bench`, e.g.
#   bash scripts/gpu_check.sh --direction bwd --hdim 128,256 --dtype bf16 --no-sweep
# Environment:
#   EXTRA_CATALOG="bench/tuning/a.yaml bench/tuning/b.yaml"   also build each catalog (into
#       build_<its name>) and run the GPU suite and the benchmark (tagged with its name) on it
#   SANITIZE=0                                           skip compute-sanitizer
#   SANITIZE_FILTER=bf16_sm90                            sanitize only kernels whose names contain it
#   BUILD_ARGS="--arch sm90 --direction fwd"             build a selection instead of the default
#   TESTS="tests/gpu/test_forward.py"                    run these GPU tests instead of tests/gpu
#   STOP_ON_FAIL=1                                       a failed smoke run or test step ends the call
# Results land in $OUT (default /tmp/flashgen-out): the benchmark's JSON, table and plot, and one
# log of every step (steps.log). The device tool brings back at most 8 files: with extra
# catalogs pass --no-sweep (no plots), two files per benchmark. Each step has a
# time limit, so one that hangs cannot take the whole call; a failed step is reported and the
# next one runs.
# A machine without the CUTLASS headers gets them from wheels in .whl/ (README: "On a GPU
# machine"), and FlashAttention-4 for the benchmark the same way (scripts/fetch_fa4.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/flashgen-out}"
mkdir -p "$OUT"
. scripts/carried_wheels.sh || exit 1
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}" PYTHONUNBUFFERED=1

. scripts/steps.sh

step build 400 python3 build.py ${BUILD_ARGS:-} || { tail -n 30 "$STEP_LOGS/build.log"; exit 1; }
# Every built bf16 kernel once, small: a kernel that hangs or faults shows here in a minute.
step smoke 90 python3 scripts/sanitize.py bf16 || { [ "${STOP_ON_FAIL:-0}" = 1 ] && exit 1; }
step gpu-tests 300 python3 -m pytest ${TESTS:-tests/gpu} -q --maxfail=20 -m "not jit" || { [ "${STOP_ON_FAIL:-0}" = 1 ] && exit 1; }
# Compiling on first use, from no build into a fresh cache: its own step, as it compiles for minutes.
[ -z "${TESTS:-}" ] && step jit 600 python3 -m pytest tests/gpu/test_jit.py -q -m jit
if [ "${SANITIZE:-1}" != 0 ]; then
  step memcheck 300 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py ${SANITIZE_FILTER:-bf16}
  step racecheck 300 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py ${SANITIZE_FILTER:-bf16}
fi
step bench 400 python3 -m bench --out "$OUT" "$@"

for catalog in ${EXTRA_CATALOG:-}; do
  name=$(basename "$catalog" .yaml)
  step "$name-build" 400 python3 build.py --catalog "$catalog" --build-dir "build_$name" || continue
  export FLASHGEN_BUILD_DIR="build_$name"
  # A tuning catalog builds a few configs: the per-family numerics skip the others.
  if ! step "$name-tests" 300 python3 -m pytest tests/gpu -q --maxfail=20 -m "per_family or probe"; then
    # Where it goes wrong: error grids per tensor (scripts/error_map.py), into steps.log.
    for hdim in 64 256; do
      step "map-d$hdim" 120 python3 scripts/error_map.py --hdim "$hdim" --seqlen-q 300 --seqlen-k 200
      step "map-d$hdim-causal" 120 python3 scripts/error_map.py --hdim "$hdim" --seqlen-q 200 --seqlen-k 300 --causal
    done
  fi
  # Its own tag, so its result files do not overwrite the default build's.
  step "$name-bench" 400 python3 -m bench --out "$OUT" "$@" --impl "${EXTRA_IMPLS:-flashgen,sdpa_flash,sdpa_cudnn}" --tag "$name"
  unset FLASHGEN_BUILD_DIR
done
