# Session 13, fifth GPU call (~400 s, carry .whl; self-contained). The fourth call found the
# eager path (flashgen's own autograd.Function, this session's host-time change) building the
# backward's TMA descriptors on torch's autograd worker thread with no CUDA context current
# (CUDA_ERROR_INVALID_CONTEXT, then an illegal address); csrc/binding.cpp now makes the context
# current first. This call: kernels.yaml's bf16 sm90 kernels at 64 / 128 / 256 (build) and the
# dQ^T backward at 128, block_m 80 (build_dqt); the API, library-op and backward suites on build
# (the eager path, CUDA graphs, torch.compile against eager); build_dqt's backward, feature and
# varlen suites, racecheck and memcheck; racecheck of build's forwards and backwards (the final
# forward code); the A/B of the 128 backward, each build twice; the record.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res5; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res5.tgz -C $R .; }
KERNELS='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90'
KERNELS="$KERNELS,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_bwd_hdim256_bf16_sm90"
step build 220 python3 build.py --kernels "$KERNELS" --features none -j 7 &
step b-dqt 220 python3 build.py --build-dir build_dqt --catalog bench/tuning/bwd_sm90_ws_dq_transposed.yaml -j 7 &
wait; save
step t-eager 150 python3 -m pytest tests/gpu/test_library_ops.py tests/gpu/test_api.py tests/gpu/test_backward.py \
  -q -m per_family -rf; save
FLASHGEN_BUILD_DIR=build_dqt step t-dqt 90 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py \
  tests/gpu/test_varlen.py -q -m per_family -rf; save
FLASHGEN_BUILD_DIR=build_dqt step rc-dqt 40 compute-sanitizer --tool racecheck --error-exitcode 1 \
  python3 scripts/sanitize.py hdim128_bf16_sm90; save
FLASHGEN_BUILD_DIR=build_dqt step mc-dqt 40 compute-sanitizer --tool memcheck --error-exitcode 1 \
  python3 scripts/sanitize.py hdim128_bf16_sm90; save
step rc-build 100 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
for i in 1 2; do
  for c in build_dqt build; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 25 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
      --hdim 128 --impl flashgen --tag bwd128-$c-$i
  done
  save
done
step record 130 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag s13b
save
