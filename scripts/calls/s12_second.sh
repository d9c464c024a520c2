# Session 12, second GPU call (~480 s, on the warm machine after s12_first.sh). The bf16 sm90
# kernels of kernels.yaml at 64 / 128 / 256 (6 kernels), then: the benchmark of record with the
# side-by-side timing (its spread and host-bound marks are what the 32 x 512 rows lacked); the
# Llama-style training step (bench/train_step.py: flashgen against SDPA and FA4 inside one model);
# Nsight Compute of the head-dim-256 forward at 2 x 8192 (flashgen and FA4, one process each,
# with per-instruction source counters), where FA4 leads by 10%; the sanitizers of the first
# call's builds (memcheck of the 96 / 192 variants, racecheck and memcheck of o_in_v).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PYTHONPATH
R=/tmp/res2; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res2.tgz -C $R .; }
reuse_build build
step build 240 python3 build.py -j 16 --kernels 'flash_*_hdim64_bf16_sm90,flash_*_hdim128_bf16_sm90,flash_*_hdim256_bf16_sm90' \
  && mark_build build || exit 1
step record 200 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag s12; save
step train 120 python3 -m bench.train_step --out $R --impl none,flashgen,sdpa,sdpa_cudnn,fa4; save
mkdir -p /tmp/reps
for impl in flashgen fa4; do   # the warm-up call is skipped; FA4's kernel names hold "flash" (CuTe DSL)
  step ncu-$impl 100 ncu --clock-control none -k regex:'fwd_kernel|[Ff]lash' --launch-skip 1 -c 1 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section SourceCounters \
    --section ComputeWorkloadAnalysis -f -o /tmp/reps/fwd256-$impl \
    python3 scripts/profile_bwd.py --impl $impl --direction fwd --hdim 256 --batch 2 --seqlen 8192 --calls 1
  step sass-$impl 60 bash -c "ncu --import /tmp/reps/fwd256-$impl.ncu-rep --page details > $R/ncu-fwd256-$impl.txt &&
    ncu --import /tmp/reps/fwd256-$impl.ncu-rep --page source --csv --print-source sass > $R/sass-fwd256-$impl.csv"
  save
done
FLASHGEN_BUILD_DIR=build_v96 step m-v96 120 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py; save
FLASHGEN_BUILD_DIR=build_oinv step r-oinv 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py; save
FLASHGEN_BUILD_DIR=build_oinv step m-oinv 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py; save
