# Session 14, second GPU call (~420 s, carry .whl/nvidia_cutlass-4.2.0.0-py3-none-any.whl;
# ran as call 4 of session 14 (at e9425a2); since 505af63 the flags below are gone
# and the step_v2 catalog is bench/tuning/verify_bwd_sm90_step.yaml, so it no longer runs as is;
# self-contained). Session 13's changes to the warp-specialized backward's step, behind
# -DFLASHGEN_BWD_STEP_V2 (bench/tuning/bwd_sm90_ws_step_v2.yaml says what), and the dQ hand-off
# per consumer behind -DFLASHGEN_BWD_DQ_PER_CONSUMER (sm90/warpgroup.cuh); compiled, never run;
# off, the kernel compiles to the step before (SASS compared at 64 and 128). Their backward,
# feature and varlen suites (64 / 96 / 128, 128's softcap, window and varlen variants), memcheck
# and racecheck, then the A/B of build_v2 (step), build_e5 (step + hand-off) and build_ref (no
# flag), each twice, and Nsight Compute of the new 128 backward (against bench/results/s13/ncu/).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res2; mkdir -p $R /tmp/reps
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res2.tgz -C $R .; }
KERNELS='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim96_bf16_sm90,flash_fwd_hdim128_bf16_sm90'
KERNELS="$KERNELS,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim96_bf16_sm90,flash_bwd_hdim128_bf16_sm90"
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_BWD_STEP_V2 step b-v2 220 python3 build.py --build-dir build_v2 \
  --catalog bench/tuning/bwd_sm90_ws_step_v2.yaml -j 8 &
FLASHGEN_NVCC_FLAGS="-DFLASHGEN_BWD_STEP_V2 -DFLASHGEN_BWD_DQ_PER_CONSUMER" step b-e5 220 python3 build.py \
  --build-dir build_e5 --kernels "$KERNELS" --features none -j 8 &
# The reference: on a warm machine the first call's default build (same six kernels, no flag).
REF=build_ref
if [ -f build/.sources_hash ] && [ "$(cat build/.sources_hash)" = "$(_sources_hash)" ]; then REF=build
else step b-ref 220 python3 build.py --build-dir build_ref --kernels "$KERNELS" --features none -j 4 & fi
wait; save
export FLASHGEN_BUILD_DIR=build_v2
step t-v2 90 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py tests/gpu/test_varlen.py -q \
  -m per_family -rf; save
step mc-v2 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc-v2 60 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py \
  hdim64_bf16_sm90 hdim96_bf16_sm90 hdim128_bf16_sm90_softcap_window; save
FLASHGEN_BUILD_DIR=build_e5 step t-e5 60 python3 -m pytest tests/gpu/test_backward.py -q -m per_family -rf; save
FLASHGEN_BUILD_DIR=build_e5 step rc-e5 60 compute-sanitizer --tool racecheck --error-exitcode 1 \
  python3 scripts/sanitize.py _sm90; save
FLASHGEN_BUILD_DIR=build_e5 step mc-e5 60 compute-sanitizer --tool memcheck --error-exitcode 1 \
  python3 scripts/sanitize.py _sm90; save
ab() {  # ab NAME BUILD: the backward rows at 64, 128 (default grid) and 96 (head_dims grid)
  FLASHGEN_BUILD_DIR=$2 step x-$1 40 bash -c "python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
    --hdim 64,128 --impl flashgen --tag bwd-$1 && python3 -m bench --out $R --no-sweep --dtype bf16 \
    --direction bwd --grid head_dims --hdim 96 --impl flashgen --tag bwd96-$1"
}
ab v2-1 build_v2; ab e5-1 build_e5; ab ref-1 $REF; save
# ncu before the second round: the step the call's 600 s would cut first is the last one.
export PYTHONPATH=$PWD:$PYTHONPATH
step ncu-v2 45 ncu --clock-control none -k regex:'bwd_ws_kernel' --launch-skip 1 -c 1 --section SpeedOfLight \
  --section WarpStateStats --section SourceCounters -f -o /tmp/reps/bwd128-v2 python3 scripts/profile_bwd.py \
  --impl flashgen --direction bwd --hdim 128 --batch 2 --seqlen 8192 --calls 1 &&
step sass-v2 20 bash -c "ncu --import /tmp/reps/bwd128-v2.ncu-rep --page details > $R/ncu-bwd128-v2.txt &&
  ncu --import /tmp/reps/bwd128-v2.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-bwd128-v2.csv.gz"
save
ab ref-2 $REF; ab e5-2 build_e5; ab v2-2 build_v2; save
