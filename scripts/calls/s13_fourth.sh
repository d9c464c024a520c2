# Session 13, fourth GPU call (~330 s, carry .whl; self-contained): the warp-uniform warpgroup
# index in the sm90 backward kernels (-DFLASHGEN_BWD_UNIFORM_WARPGROUP; the forward took it in
# session 12, +1% mean; compiled: the 128 backward 323 -> 245 R2UR, 44 -> 40 B of spills). Both
# builds hold kernels.yaml's bf16 sm90 forwards and backwards at 64 / 128 / 256; the backward
# suites on the new one, then the A/B, each build twice, alternating.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res4; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res4.tgz -C $R .; }
KERNELS='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90'
KERNELS="$KERNELS,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_bwd_hdim256_bf16_sm90"
step b-ref 200 python3 build.py --build-dir build_ref --kernels "$KERNELS" --features none -j 8 &
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_BWD_UNIFORM_WARPGROUP step b-wg 200 python3 build.py --build-dir build_wg \
  --kernels "$KERNELS" --features none -j 8 &
wait; save
FLASHGEN_BUILD_DIR=build_wg step t-wg 60 python3 -m pytest tests/gpu/test_backward.py -q -m per_family -x; save
for i in 1 2; do
  for c in build_ref build_wg; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 30 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
      --hdim 64,128,256 --impl flashgen --tag $c-bwd-$i
  done
  save
done
