# Session 12, first GPU call (~560 s, carry .whl). Issue 12's last piece: the feature variants at
# head dims 96 and 192 of both families (bench/tuning/verify_features_96_192.yaml, 18 kernels),
# whose window and softcap paths no GPU suite had exercised (the feature suites parametrized 64,
# 128 and 256 until session 11). Beside it the head-dim-256 forward's o_in_v candidate
# (bench/tuning/fwd_sm90_o_in_v.yaml: dynamic scheduler, O out through V's ring; written in
# session 9, never run): its forward suite first, then two alternating benches against
# kernels.yaml's plan. Sanitizers of both builds: the second call (the builds stay).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res.tgz -C $R .; }
build() {  # NAME LIMIT BUILD_DIR build.py args...
  local name=$1 limit=$2 dir=$3; shift 3
  reuse_build $dir
  step $name $limit python3 build.py --build-dir $dir "$@" && mark_build $dir
}
build b-base256 330 build_base256 --kernels flash_fwd_hdim256_bf16_sm90 -j 1 &
build b-oinv 330 build_oinv --catalog bench/tuning/fwd_sm90_o_in_v.yaml -j 1 &
build b-v96 380 build_v96 --catalog bench/tuning/verify_features_96_192.yaml -j 13
wait; save
FLASHGEN_BUILD_DIR=build_v96 step t-v96 170 python3 -m pytest tests/gpu/test_features.py tests/gpu/test_varlen.py \
  tests/gpu/test_backward.py -q -m per_family -rf; save
FLASHGEN_BUILD_DIR=build_oinv step t-oinv 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -x; save
for i in 1 2; do
  for c in base256 oinv; do
    FLASHGEN_BUILD_DIR=build_$c step x-$c-$i 50 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
      --hdim 256 --impl flashgen --tag $c-fwd256-$i
  done
  save
done
