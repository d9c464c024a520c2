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

# Rebuilding on a warm machine. ninja decides by mtimes, and each call copies the tree afresh
# (and carried_wheels.sh reinstalls the CUTLASS headers), so every source looks newer than the
# objects an earlier call built and a second `build.py` recompiles everything (session 11: 319 s
# twice). `mark_build DIR` after a build records a hash of what the objects were compiled from;
# `reuse_build DIR` before the next build, if the tree still hashes the same, dates the sources and
# the carried headers back so ninja keeps those objects. A changed tree keeps its new mtimes:
# ninja then rebuilds what the change reaches, as always.
_sources_hash() {
  find csrc generated templates -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
mark_build() { _sources_hash >"$1/.sources_hash"; }
reuse_build() {
  [ -f "$1/.sources_hash" ] && [ "$(cat "$1/.sources_hash")" = "$(_sources_hash)" ] || return 0
  find csrc generated templates /tmp/site -type f -exec touch -h -d '2001-01-01' {} + 2>/dev/null
  echo "reuse_build: $1 was built from this tree; its objects stay"
}

# A call script's common start: `call_start NAME` exports CUDA_HOME and unbuffered Python, makes
# the results folder R=/tmp/NAME, and save() packs it with steps.log into $OUT/NAME.tgz (what
# comes back; call save after each step, so a call cut short still returns what it had).
call_start() {
  export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
  R=/tmp/$1
  _CALL_NAME=$1
  mkdir -p "$R"
}
save() { cp "$OUT/steps.log" "$R/" 2>/dev/null; tar czf "$OUT/$_CALL_NAME.tgz" -C "$R" .; }
