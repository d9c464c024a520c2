# The benchmark of record as one GPU call (session 9's third; run it on the warm machine after
# s9_default.sh, whose build/ it times): bf16 with every peer in one run (session 7's command),
# fp16 at head dim 256, and what deterministic=True costs on the sm90 backwards. TAG names the
# result files (default s9). Each step re-tars the results.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res.tgz -C $R .; }
[ -f build/_C*.so ] || step build 400 python3 build.py -j 16 || exit 1
step record 330 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag ${TAG:-s9}; save
step fp16 120 python3 -m bench --out $R --no-sweep --dtype fp16 --hdim 256 --impl flashgen,fa4,sdpa_cudnn --tag ${TAG:-s9}-fp16; save
step determ 90 python3 scripts/deterministic_cost.py --hdim 64,128,256 --batch 2 --seqlen 8192; save
