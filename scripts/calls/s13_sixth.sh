# Session 13, sixth GPU call (~180 s, carry .whl; self-contained). The fifth call's dQ^T backward
# at 128, block_m 80, read past its dQ staging tile in the postprocess (whose 256 threads stored
# 32-row passes: 80 rows are no whole number of them; now 16-row passes of whole rows). Its
# backward, feature and varlen per-family suites, memcheck, racecheck, then the A/B against
# kernels.yaml's plan (build_ref), each build twice.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res6; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res6.tgz -C $R .; }
step b-dqt 150 python3 build.py --build-dir build_dqt --catalog bench/tuning/bwd_sm90_ws_dq_transposed.yaml -j 12 &
step b-ref 150 python3 build.py --build-dir build_ref --kernels flash_fwd_hdim128_bf16_sm90,flash_bwd_hdim128_bf16_sm90 \
  --features none -j 4 &
wait; save
FLASHGEN_BUILD_DIR=build_dqt step mc-dqt 40 compute-sanitizer --tool memcheck --error-exitcode 1 \
  python3 scripts/sanitize.py hdim128_bf16_sm90; save
FLASHGEN_BUILD_DIR=build_dqt step t-dqt 60 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py \
  tests/gpu/test_varlen.py -q -m per_family -rf -x; save
for i in 1 2; do
  for c in build_dqt build_ref; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 25 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
      --hdim 128 --impl flashgen --tag bwd128-$c-$i
  done
  save
done
FLASHGEN_BUILD_DIR=build_dqt step rc-dqt 40 compute-sanitizer --tool racecheck --error-exitcode 1 \
  python3 scripts/sanitize.py hdim128_bf16_sm90; save
