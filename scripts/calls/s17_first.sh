# Session 17, first GPU call (~560 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz`
# from scripts/pack_cutlass_headers.sh). Written without a GPU: three changes that keep the
# softmax's exps under a GEMM where ptxas had moved them after its wait (docs/perf.md, session
# 17: in kernels.yaml's SASS 0-28 of the forward's 40-66 exps a thread computes per step come
# before the P V wait, 2 of the 128 backward's 32 before the dP^T wait, none of the 256's 20):
# - the forwards: a shared-memory store of the row sums before the P V wait
#   (-DFLASHGEN_FWD_PIN_EXPS);
# - the 64 / 128 backward: dV's GEMM (P^T from registers) issued before the dP^T wait
#   (-DFLASHGEN_BWD_DV_BEFORE_DS);
# - the 256 backward: P stored to shared memory before the dP wait (-DFLASHGEN_BWD_P_BEFORE_DP_WAIT).
# Each flag reaches disjoint kernels, so each kernel's rows are an A/B of one change. bf16,
# kernels.yaml's plans, one pair of builds from one tree. Suites (forward, backward, features:
# the 256 softcap + window pair comes along and keeps the old order, softcap needs dP first),
# the A/B (each build twice, alternating), then memcheck and racecheck of the flagged build.
# The flags also reach the 96 / 192 kernels (compiled here: 192 backward 16 exps before its dP
# wait, no spills); they are not in this call (its 600 s), so an adoption's verification call,
# which builds every head dim, runs them first.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start s17a
K='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90*,flash_bwd_hdim256_bf16_sm90*'
K="$K,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90"
step b-ref 300 python3 build.py --build-dir build_ref --kernels "$K" -j 8 &
FLASHGEN_NVCC_FLAGS="-DFLASHGEN_FWD_PIN_EXPS -DFLASHGEN_BWD_DV_BEFORE_DS -DFLASHGEN_BWD_P_BEFORE_DP_WAIT" \
  step b-new 300 python3 build.py --build-dir build_new --kernels "$K" -j 8 &
wait; save
ls build_new/_C*.so build_ref/_C*.so >/dev/null || { save; exit 1; }
export FLASHGEN_BUILD_DIR=build_new
step t-new 200 python3 -m pytest tests/gpu/test_forward.py tests/gpu/test_backward.py tests/gpu/test_features.py \
  -q -m per_family -rf; save
ab() { FLASHGEN_BUILD_DIR=$2 step x-$1 60 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 \
  --impl flashgen --tag ab-$1; save; }
ab new-1 build_new; ab ref-1 build_ref; ab ref-2 build_ref; ab new-2 build_new
# The sanitizers last (the call may reach its 600 s first; an adoption's verification call runs
# them then).
step mc-new 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc-new 150 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
