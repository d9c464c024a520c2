# Session 12, third GPU call (~280 s, warm machine): Nsight Compute of the head-dim-256 forward at
# 2 x 8192, flashgen (build) and FA4, one process each, with per-instruction source counters and
# the SASS as csv (FA4 runs the same 128 x 80 tile, non-persistent, at 1.12x our TFLOPS); then
# racecheck and memcheck of o_in_v (build_oinv).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PYTHONPATH
R=/tmp/res3; mkdir -p $R /tmp/reps
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res3.tgz -C $R .; }
for impl in flashgen fa4; do   # the warm-up call is skipped; FA4's kernel names hold "flash" (CuTe DSL)
  step ncu-$impl 90 ncu --clock-control none -k regex:'fwd_kernel|[Ff]lash' --launch-skip 1 -c 1 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section SourceCounters \
    --section ComputeWorkloadAnalysis -f -o /tmp/reps/fwd256-$impl \
    python3 scripts/profile_bwd.py --impl $impl --direction fwd --hdim 256 --batch 2 --seqlen 8192 --calls 1
  step sass-$impl 40 bash -c "ncu --import /tmp/reps/fwd256-$impl.ncu-rep --page details > $R/ncu-fwd256-$impl.txt &&
    ncu --import /tmp/reps/fwd256-$impl.ncu-rep --page source --csv --print-source sass > $R/sass-fwd256-$impl.csv"
  save
done
step sass-compare 30 bash -c "python3 scripts/sass_stalls.py $R/sass-fwd256-flashgen.csv $R/sass-fwd256-fa4.csv > $R/sass-compare.txt"; save
FLASHGEN_BUILD_DIR=build_oinv step r-oinv 70 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py; save
FLASHGEN_BUILD_DIR=build_oinv step m-oinv 50 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py; save
