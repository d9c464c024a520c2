# Session 13, third GPU call (~350 s, carry .whl; self-contained): the warp-specialized sm90
# backward at head dim 96 (bench/tuning/bwd_sm90_ws_96.yaml; written and compiled in session 12,
# never run): its backward, feature and varlen per-family suites, the wgmma operand probe (which
# now covers its 32- and 64-byte swizzle layouts), racecheck and memcheck, then the A/B against
# the sm80 backward Hopper runs at 96 today (build_96_sm80 holds it and the same forward).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res3; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res3.tgz -C $R .; }
step b-96 240 python3 build.py --build-dir build_96 --catalog bench/tuning/bwd_sm90_ws_96.yaml -j 8 &
step b-sm80 240 python3 build.py --build-dir build_96_sm80 --kernels flash_bwd_hdim96_bf16_sm80,flash_fwd_hdim96_bf16_sm90 \
  --features none -j 2 &
wait; save
export FLASHGEN_BUILD_DIR=build_96
step t-96 90 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py tests/gpu/test_varlen.py -q -m per_family -rf; save
step probe 90 python3 -m pytest tests/gpu/test_wgmma_probe.py -q -rf; save
step racecheck 40 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim96_bf16_sm90; save
step memcheck 40 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py hdim96; save
for i in 1 2; do
  FLASHGEN_BUILD_DIR=build_96 step x-sm90-$i 25 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
    --grid head_dims --hdim 96 --impl flashgen --tag bwd96-sm90-$i
  FLASHGEN_BUILD_DIR=build_96_sm80 step x-sm80-$i 25 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
    --grid head_dims --hdim 96 --impl flashgen --tag bwd96-sm80-$i
  save
done
