# Session 11, second GPU call (~300 s; on the warm machine after s11_first.sh, whose build/ it
# profiles): Nsight Compute of the short rows still behind FA4 at the main kernel, flashgen's and
# FA4's side by side in one run (32 x 512, bf16): the WS backward at 64 and 128 (1.14x / 1.07x
# FA4's kernel time in session 10) and the forward, causal, at 64 and 128.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PYTHONPATH
SECTIONS="--section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats"
profile() {  # NAME LIMIT KERNEL_REGEX profile_bwd.py args...
  local name=$1 limit=$2 regex=$3; shift 3
  step $name $limit ncu --clock-control none -k regex:"$regex" -c 2 $SECTIONS \
    python3 scripts/profile_bwd.py --impl flashgen,fa4 --batch 32 --seqlen 512 --calls 1 "$@"
  cp $STEP_LOGS/$name.log $OUT/ncu-$name.txt
}
profile bwd64 120 'bwd_ws_kernel|FlashAttentionBackwardSm90' --hdim 64
profile bwd128 120 'bwd_ws_kernel|FlashAttentionBackwardSm90' --hdim 128
profile fwd64c 100 'fwd_kernel|FlashAttentionForward' --direction fwd --causal --hdim 64
profile fwd128c 100 'fwd_kernel|FlashAttentionForward' --direction fwd --causal --hdim 128
