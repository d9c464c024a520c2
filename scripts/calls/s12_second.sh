# Session 12, second GPU call (~540 s, on the warm machine after s12_first.sh, whose builds it
# uses; nothing is compiled). The benchmark of record with the side-by-side timing (its spread and
# host-bound marks are what the 32 x 512 rows lacked); the A/Bs, each build twice, alternating:
# the 4-chain row reductions (build) against one serial chain (build_serial) for the forward at
# 64 / 128 / 256, and o_in_v (build_oinv) against kernels.yaml's d256 plan (build_base256); the
# Llama-style training step (bench/train_step.py).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res2; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res2.tgz -C $R .; }
step record 170 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag s12; save
for i in 1 2; do
  for c in build build_serial; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 55 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
      --hdim 64,128,256 --impl flashgen --tag $c-fwd-$i
  done
  for c in build_base256 build_oinv; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 35 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
      --hdim 256 --impl flashgen --tag $c-fwd256-$i
  done
  save
done
step train 90 python3 -m bench.train_step --out $R --impl none,flashgen,sdpa,sdpa_cudnn,fa4; save
