#!/usr/bin/env bash
# A/B of tuning catalogs in one GPU call: build every catalog at once (each into build_<name>,
# the cores shared out), then per catalog a smoke run of its bf16 kernels, the per-family GPU
# numerics and a benchmark tagged with its name. Arguments go to `python -m bench`, e.g.
#   bash scripts/ab_check.sh kernels.yaml bench/tuning/a.yaml -- --direction fwd --no-sweep --impl flashgen
# kernels.yaml as a catalog builds BASE_SELECTION (build.py flags, default: the whole catalog)
# into build_kernels. Environment: TESTS (default tests/gpu), OUT (default /tmp/flashgen-out).
# Results: $OUT/steps.log (every step's output) and each benchmark's JSON and table.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/flashgen-out}"
mkdir -p "$OUT"
. scripts/carried_wheels.sh || exit 1
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}" PYTHONUNBUFFERED=1

catalogs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do catalogs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
jobs=$(( $(nproc) / ${#catalogs[@]} ))
[ "$jobs" -ge 1 ] || jobs=1

. scripts/steps.sh

for catalog in "${catalogs[@]}"; do
  name=$(basename "$catalog" .yaml)
  selection=()
  [ "$name" = kernels ] && selection=(${BASE_SELECTION:-})
  step "$name-build" 500 python3 build.py --catalog "$catalog" --build-dir "build_$name" -j "$jobs" "${selection[@]}" &
done
wait

for catalog in "${catalogs[@]}"; do
  name=$(basename "$catalog" .yaml)
  export FLASHGEN_BUILD_DIR="build_$name"
  step "$name-smoke" 90 python3 scripts/sanitize.py bf16 || continue
  step "$name-tests" 300 python3 -m pytest ${TESTS:-tests/gpu} -q --maxfail=20 -m "per_family or probe"
  step "$name-bench" 300 python3 -m bench --out "$OUT" "$@" --tag "$name"
  unset FLASHGEN_BUILD_DIR
done
