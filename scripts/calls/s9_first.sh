# Session 9, first GPU call: ds_exchange correctness + d256 bwd A/B (base, pds1, exchange 64x80 and
# 64x64), the features grid against FA4 and cuDNN, causal_block_m's fwd A/B. Results are re-tarred
# after every step so a call cut at its limit still returns what ran.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res.tgz -C $R .; }
for c in bwd_sm90_ds_exchange bwd_sm90_ds_exchange_n64 bwd_sm90_split_pds1 features_bench fwd_sm90_causal_block_m; do
  step b-$c 330 python3 build.py --catalog bench/tuning/$c.yaml --arch sm90 --build-dir build_$c -j $([ $c = features_bench ] && echo 5 || echo 3) &
done
step b-base 330 python3 build.py --arch sm90 --features none --build-dir build_base -j 2 \
  --kernels 'flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim256_bf16_sm90,flash_bwd_hdim256_bf16_sm90' &
wait; save
bwd256() { FLASHGEN_BUILD_DIR=build_$1 step x-$1 60 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd --hdim 256 --impl flashgen --tag $1; save; }
FLASHGEN_BUILD_DIR=build_bwd_sm90_ds_exchange step t-ds_exchange 120 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_varlen.py -q -m per_family -x; save
bwd256 bwd_sm90_ds_exchange
bwd256 base
bwd256 bwd_sm90_split_pds1
FLASHGEN_BUILD_DIR=build_features_bench step features 200 python3 -m bench --out $R --grid features --impl flashgen,fa4,sdpa_cudnn --tag features; save
FLASHGEN_BUILD_DIR=build_bwd_sm90_ds_exchange_n64 step t-ds_exchange_n64 120 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_varlen.py -q -m per_family -x; save
bwd256 bwd_sm90_ds_exchange_n64
FLASHGEN_BUILD_DIR=build_bwd_sm90_ds_exchange step r-ds_exchange 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim256; save
FLASHGEN_BUILD_DIR=build_fwd_sm90_causal_block_m step t-cbm 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -x; save
for c in base fwd_sm90_causal_block_m; do FLASHGEN_BUILD_DIR=build_$c step x-$c-fwd 60 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd --hdim 64 --impl flashgen --tag $c-fwd; save; done
