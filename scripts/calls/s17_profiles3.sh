# Session 17 (~250 s): the 256 forward at causal 32 x 512 beside cuDNN (issue 10's one row under
# 1.00 whose limiter came from the byte floor, not a profile), bf16; and kernels.yaml's new
# forward plans at 96 / 192 (dynamic scheduler; adopted from s16_second.sh's bf16 A/B) in fp16:
# the forward suite, memcheck, racecheck.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start s17r
mkdir -p /tmp/reps
export PYTHONPATH=$PWD:$PYTHONPATH
step build 300 python3 build.py -j 8 --hdim 256 --direction fwd --dtype bf16 --arch sm90 --features none &
step b-fp16 300 python3 build.py -j 8 --build-dir build_fp16 --hdim 96,192 --direction fwd --dtype fp16 --arch sm90 \
  --features none &
wait; save
for impl in flashgen sdpa_cudnn; do
  step ncu-$impl 60 ncu --clock-control none --nvtx --nvtx-include profiled/ -c 8 --section SpeedOfLight \
    --section WarpStateStats --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
    -f -o /tmp/reps/$impl python3 scripts/profile_bwd.py --calls 2 --impl $impl --direction fwd --hdim 256 --batch 32 \
    --seqlen 512 --causal &&
    step details-$impl 30 bash -c "ncu --import /tmp/reps/$impl.ncu-rep --page details > $R/ncu-fwd256-causal-32x512-$impl.txt"
  save
done
export FLASHGEN_BUILD_DIR=build_fp16
step t-fp16 90 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -rf; save
step mc-fp16 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc-fp16 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
