#!/usr/bin/env bash
# One call on a GPU machine: build the default selection, run the GPU numerics, the sanitizer
# on every bf16 kernel (forward and backward, each head dim), and a benchmark. Arguments go to `python -m bench`, e.g.
#   bash scripts/gpu_check.sh --direction bwd --hdim 128,256 --dtype bf16 --no-sweep
# Logs and results land in $OUT (default /tmp/flashgen-out). A machine without the CUTLASS
# headers gets them from wheels in .whl/ (see README: "On a GPU machine without internet"),
# and FlashAttention-4 for the benchmark the same way (scripts/fetch_fa4.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/flashgen-out}"
mkdir -p "$OUT"
. scripts/carried_wheels.sh || exit 1
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}" PYTHONUNBUFFERED=1

python3 build.py 2>&1 | tee "$OUT/build.log" | grep -E "^built|FAIL|error"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "build failed: $OUT/build.log"; exit 1; }
python3 -m pytest tests/gpu -q 2>&1 | tee "$OUT/gpu-tests.log" | tail -3
compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py bf16 \
  2>&1 | tee "$OUT/memcheck.log" | tail -1
compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py bf16 \
  2>&1 | tee "$OUT/racecheck.log" | tail -1
python3 -m bench --out "$OUT" "$@" 2>&1 | tee "$OUT/bench.log" | grep -E "^\||^wrote"
