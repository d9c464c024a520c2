# Session 11, second GPU call (~300 s; on the warm machine after s11_first.sh, whose build/ it
# profiles): Nsight Compute of the short rows still behind FA4 at the main kernel, flashgen's and
# FA4's side by side in one run (32 x 512, bf16): the WS backward at 64 and 128 (1.14x / 1.07x
# FA4's kernel time in session 10) and the forward, causal, at 64 and 128. Beside it, what issue
# 12 has not run (bench/tuning/verify_sm90_features.yaml, built while ncu runs): the sm90
# forward's feature variants at 96 and 192 and on session 10's plans at 64 and 128, the WS
# backward's on the new preprocess; their feature and varlen suites, and memcheck.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PYTHONPATH
SECTIONS="--section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats"
profile() {  # NAME LIMIT KERNEL_REGEX profile_bwd.py args...
  local name=$1 limit=$2 regex=$3; shift 3
  step $name $limit ncu --clock-control none -k regex:"$regex" -c 2 $SECTIONS \
    python3 scripts/profile_bwd.py --impl flashgen,fa4 --batch 32 --seqlen 512 --calls 1 "$@"
  cp $STEP_LOGS/$name.log $OUT/ncu-$name.txt
}
step b-v90 330 python3 build.py --catalog bench/tuning/verify_sm90_features.yaml --build-dir build_v90 -j 14 &
profile bwd64 120 'bwd_ws_kernel|FlashAttentionBackwardSm90' --hdim 64
profile bwd128 120 'bwd_ws_kernel|FlashAttentionBackwardSm90' --hdim 128
profile fwd64c 100 'fwd_kernel|FlashAttentionForward' --direction fwd --causal --hdim 64
profile fwd128c 100 'fwd_kernel|FlashAttentionForward' --direction fwd --causal --hdim 128
wait
FLASHGEN_BUILD_DIR=build_v90 step t-v90 150 python3 -m pytest tests/gpu/test_features.py tests/gpu/test_varlen.py tests/gpu/test_backward.py -q -m per_family
FLASHGEN_BUILD_DIR=build_v90 step m-v90 150 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py softcap_window
