# Session 16, first GPU call (~520 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz`
# from scripts/pack_cutlass_headers.sh). Two experiments compiled in session 15, in one pair of
# builds from one tree (bf16, kernels.yaml's plans):
# - the 256 backward with dO released as soon as dV^T is done, before the wait for the partner's
#   dS (-DFLASHGEN_BWD_EARLY_DO_RELEASE; session 15's ncu: the step waits ~680 cycles for dO);
# - the forward with O rescaled after the P V wait, outside the GEMM turn
#   (-DFLASHGEN_FWD_RESCALE_AFTER_PV; session 15's call 6 at 64 with split_masked_steps: causal
#   +2%, non-causal level), here at 64 / 128 / 256 on kernels.yaml's plans;
# - (added in session 16, no GPU then) the 128 backward reading D's rows after the exps
#   (-DFLASHGEN_BWD_D_AFTER_EXP; FA4's order, a helper's reading of its source); the 64 backward
#   comes along as a control (block_m 128 reads its statistics at each use: no change).
# The three flags touch disjoint kernels (256 backward / forwards / 64-128 backward), so each
# kernel's rows are an A/B of one change.
# Suites (forward, backward, features: the 256 softcap + window pair comes along), the A/B (each
# build twice alternating), then memcheck and racecheck of the flagged build.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res1
K='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90*,flash_bwd_hdim256_bf16_sm90*'
K="$K,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90"
step b-ref 300 python3 build.py --build-dir build_ref --kernels "$K" -j 8 &
FLASHGEN_NVCC_FLAGS="-DFLASHGEN_BWD_EARLY_DO_RELEASE -DFLASHGEN_FWD_RESCALE_AFTER_PV -DFLASHGEN_BWD_D_AFTER_EXP" \
  step b-new 300 \
  python3 build.py --build-dir build_new --kernels "$K" -j 8 &
wait; save
ls build_new/_C*.so build_ref/_C*.so >/dev/null || { save; exit 1; }
export FLASHGEN_BUILD_DIR=build_new
step t-new 200 python3 -m pytest tests/gpu/test_forward.py tests/gpu/test_backward.py tests/gpu/test_features.py \
  -q -m per_family -rf; save
ab() { FLASHGEN_BUILD_DIR=$2 step x-$1 60 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 \
  --impl flashgen --tag ab-$1; save; }
ab new-1 build_new; ab ref-1 build_ref; ab ref-2 build_ref; ab new-2 build_new
# The sanitizers last: they matter only for what the A/B adopts, and the call may reach its
# 600 s before them (then the adoption's verification call runs them).
step mc-new 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc-new 150 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
