# Session 12, call 6 (~200 s of the session's last 327 s; carry .whl; self-contained). The
# warp-uniform warpgroup index (fwd_kernel.cuh) and split_masked_steps at 64 and 256, forward,
# bf16: build_ref = kernels.yaml's plans with the old index (-DFLASHGEN_PLAIN_WARPGROUP_INDEX),
# build = the same plans with the new index, build_split = the new index with the split at
# 64 / 128 / 256 (bench/tuning/fwd_sm90_split_all.yaml; non-causal calls only). Their forward
# suites, then the A/B, each build twice, alternating.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res6; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res6.tgz -C $R .; }
FWD='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90'
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_PLAIN_WARPGROUP_INDEX step b-ref 150 python3 build.py --build-dir build_ref \
  --kernels "$FWD" --features none -j 3 &
step b-wg 150 python3 build.py --build-dir build --kernels "$FWD" --features none -j 3 &
step b-split 150 python3 build.py --build-dir build_split --catalog bench/tuning/fwd_sm90_split_all.yaml -j 3 &
wait; save
for c in build build_split; do
  FLASHGEN_BUILD_DIR=$c step t-$c 30 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -x; save
done
for i in 1 2; do
  for c in build_ref build build_split; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 22 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
      --hdim 64,128,256 --impl flashgen --tag $c-fwd-$i
  done
  save
done
