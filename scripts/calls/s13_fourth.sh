# Session 13, fourth GPU call (~250 s, carry .whl; self-contained): the sm90 backward at head
# dim 128 with dQ^T = K^T dS^T and block_m 80 (bench/tuning/bwd_sm90_ws_dq_transposed.yaml, FA4's
# tile at 128; compiled: 92 B of spills against kernels.yaml's plan's 44; never run): its
# backward, feature and varlen per-family suites (the wgmma probe only if they fail), racecheck,
# memcheck, then the A/B against kernels.yaml's 64 x 128 plan (build_ref), each build twice.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res4; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res4.tgz -C $R .; }
step b-dqt 200 python3 build.py --build-dir build_dqt --catalog bench/tuning/bwd_sm90_ws_dq_transposed.yaml -j 10 &
step b-ref 200 python3 build.py --build-dir build_ref --kernels flash_fwd_hdim128_bf16_sm90,flash_bwd_hdim128_bf16_sm90 \
  --features none -j 4 &
wait; save
export FLASHGEN_BUILD_DIR=build_dqt
step t-dqt 90 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py tests/gpu/test_varlen.py -q \
  -m per_family -rf -x || { step probe 120 python3 -m pytest tests/gpu/test_wgmma_probe.py -q -rf; save; }
save
step racecheck 40 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim128_bf16_sm90; save
step memcheck 40 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py hdim128_bf16_sm90; save
for i in 1 2; do
  for c in build_dqt build_ref; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 25 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
      --hdim 128 --impl flashgen --tag bwd128-$c-$i
  done
  save
done
