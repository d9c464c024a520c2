# Sourced by the GPU-call scripts (gpu_check.sh, ab_check.sh): `step NAME SECONDS COMMAND...`
# runs COMMAND with a time limit, appends its output to $OUT/steps.log and prints one line: the
# exit status, the seconds taken and the output's last line. Returns the command's status.
# FLASHGEN_JIT=0: a benchmark or smoke run of a partial build must time and test what was built,
# never compile a missing kernel (kernels.yaml's plan) on first use (tests/gpu/test_jit.py turns
# it on for itself).
export FLASHGEN_JIT=0
STEP_LOGS=$(mktemp -d)
step() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$STEP_LOGS/$name.log" 2>&1
  local rc=$?
  { echo "===== $name (rc=$rc): $*"; cat "$STEP_LOGS/$name.log"; } >>"$OUT/steps.log"
  printf '%-28s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$(tail -n 1 "$STEP_LOGS/$name.log")"
  return $rc
}
