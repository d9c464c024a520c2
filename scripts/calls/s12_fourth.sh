# Session 12, call 4 (~520 s, carry .whl; self-contained: calls 2 and 3 found no warm machine's
# builds, the machine had gone back between calls). Builds at once: kernels.yaml's bf16 sm90
# kernels at 64 / 128 / 256 (build), their forwards with one serial row-reduction chain
# (build_serial), with the masked / unmasked split loops (build_split,
# -DFLASHGEN_FWD_SPLIT_MASKED_STEPS, first run), and o_in_v at 256 (build_oinv). Then the split
# build's forward suite, the benchmark of record, the A/Bs (each build twice, alternating) and the
# training step.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res4; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res4.tgz -C $R .; }
FWD='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90'
BWD='flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_bwd_hdim256_bf16_sm90'
step b-record 300 python3 build.py --build-dir build --kernels "$FWD,$BWD" --features none -j 6 &
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_SERIAL_ROW_REDUCTIONS step b-serial 300 python3 build.py --build-dir build_serial \
  --kernels "$FWD" --features none -j 3 &
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_FWD_SPLIT_MASKED_STEPS step b-split 300 python3 build.py --build-dir build_split \
  --kernels "$FWD" --features none -j 3 &
step b-oinv 300 python3 build.py --build-dir build_oinv --catalog bench/tuning/fwd_sm90_o_in_v.yaml -j 1 &
wait; save
FLASHGEN_BUILD_DIR=build_split step t-split 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -x; save
step record 200 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag s12; save
for i in 1 2; do
  for c in build build_serial build_split; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 40 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
      --hdim 64,128,256 --impl flashgen --tag $c-fwd-$i
  done
  for c in build build_oinv; do
    FLASHGEN_BUILD_DIR=$c step y-$c-$i 25 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
      --hdim 256 --impl flashgen --tag $c-fwd256-$i
  done
  save
done
step train 90 python3 -m bench.train_step --out $R --impl none,flashgen,sdpa,sdpa_cudnn,fa4; save
