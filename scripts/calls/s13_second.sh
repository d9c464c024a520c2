# Session 13, second GPU call (~540 s, carry .whl; self-contained). kernels.yaml's bf16 sm90
# kernels at 64 / 128 / 256, built twice: as they are (build) and with the warp-uniform
# warpgroup index in the backward kernels (build_wg, -DFLASHGEN_BWD_UNIFORM_WARPGROUP; the forward
# took it in session 12, +1% mean; compiled: the 128 backward 323 -> 245 R2UR, 44 -> 40 B of
# spills). Then: memcheck of build, the benchmark of record (its host columns: session 12's cut
# of flashgen's Python per call, and host_idle_ms), Nsight Compute of the 128 backward, flashgen
# and FA4 each in its own process, with the SASS as csv for scripts/sass_stalls.py (the 64 / 128
# backwards are 0.84-0.95x of FA4), build_wg's backward suite and the A/B (each build twice).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res2; mkdir -p $R /tmp/reps
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res2.tgz -C $R .; }
KERNELS='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90'
KERNELS="$KERNELS,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_bwd_hdim256_bf16_sm90"
step build 220 python3 build.py --kernels "$KERNELS" --features none -j 8 &
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_BWD_UNIFORM_WARPGROUP step b-wg 220 python3 build.py --build-dir build_wg \
  --kernels "$KERNELS" --features none -j 8 &
wait; save
step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step record 130 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag s13; save
export PYTHONPATH=$PWD:$PYTHONPATH
for impl in flashgen fa4; do
  step ncu-$impl 45 ncu --clock-control none -k regex:'bwd_ws_kernel|BackwardSm90' --launch-skip 1 -c 1 \
    --section SpeedOfLight --section WarpStateStats --section SourceCounters -f -o /tmp/reps/bwd128-$impl \
    python3 scripts/profile_bwd.py --impl $impl --direction bwd --hdim 128 --batch 2 --seqlen 8192 --calls 1 &&
  step sass-$impl 20 bash -c "ncu --import /tmp/reps/bwd128-$impl.ncu-rep --page details > $R/ncu-bwd128-$impl.txt &&
    ncu --import /tmp/reps/bwd128-$impl.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-bwd128-$impl.csv.gz"
  save
done
FLASHGEN_BUILD_DIR=build_wg step t-wg 60 python3 -m pytest tests/gpu/test_backward.py -q -m per_family -x; save
for i in 1 2; do
  for c in build build_wg; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 25 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
      --hdim 64,128,256 --impl flashgen --tag $c-bwd-$i
  done
  save
done
