# Session 14, fourth GPU call (~220 s on a cold nvidia-h200; carry the CUTLASS wheel only):
# Nsight Compute of the final warp-specialized backward (the step and the per-consumer dQ
# hand-off as its only code) at 128 and 64, bf16, 2 x 8192 non-causal, one launch each: the
# per-instruction stall samples the next step's analysis needs (call 2 profiled the step without
# the per-consumer hand-off; 64 was never profiled).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1 FLASHGEN_BUILD_DIR=build_ncu PYTHONPATH=$PWD:$PYTHONPATH
R=/tmp/res4; mkdir -p $R /tmp/reps
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res4.tgz -C $R .; }
step build 170 python3 build.py --build-dir build_ncu -j 8 --kernels \
  'flash_fwd_hdim128_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_fwd_hdim64_bf16_sm90,flash_bwd_hdim64_bf16_sm90' \
  || { save; exit 1; }
save
for h in 128 64; do
  step ncu-$h 40 ncu --clock-control none -k regex:'bwd_ws_kernel' --launch-skip 1 -c 1 --section SpeedOfLight \
    --section WarpStateStats --section SourceCounters -f -o /tmp/reps/bwd$h python3 scripts/profile_bwd.py \
    --impl flashgen --direction bwd --hdim $h --batch 2 --seqlen 8192 --calls 2 &&
  step sass-$h 20 bash -c "ncu --import /tmp/reps/bwd$h.ncu-rep --page details > $R/ncu-bwd$h.txt &&
    ncu --import /tmp/reps/bwd$h.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-bwd$h.csv.gz"
  save
done
