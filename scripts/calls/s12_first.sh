# Session 12, first GPU call (~580 s, carry .whl): every build of the session at once, then issue
# 12's last piece. Builds (they stay on the warm machine for s12_second.sh and s12_third.sh):
# - build_v96: bench/tuning/verify_features_96_192.yaml, the feature variants at head dims 96 and
#   192 of both families (18 kernels), whose window and softcap paths no GPU suite had exercised
#   (the feature suites parametrized 64, 128 and 256 until session 11);
# - build: kernels.yaml's bf16 sm90 kernels at 64 / 128 / 256 (6), for the record and the A/Bs;
# - build_serial: the forwards of `build` with the softmax's row max and sum in one serial chain
#   (FLASHGEN_NVCC_FLAGS=-DFLASHGEN_SERIAL_ROW_REDUCTIONS), the A/B of session 11's 4-chain rows;
# - build_base256 / build_oinv: the head-dim-256 forward on kernels.yaml's plan and on
#   bench/tuning/fwd_sm90_o_in_v.yaml (dynamic scheduler, O out through V's ring; never run).
# Then: the 96 / 192 suites and memcheck (closes issue 12 if green), o_in_v's forward suite, and
# build's forward suite (the 4-chain row reductions, first run; build_serial is the old order).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res.tgz -C $R .; }
build() {  # NAME LIMIT BUILD_DIR build.py args...
  local name=$1 limit=$2 dir=$3; shift 3
  reuse_build $dir
  step $name $limit python3 build.py --build-dir $dir "$@" && mark_build $dir
}
FWD='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90'
BWD='flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_bwd_hdim256_bf16_sm90'
build b-v96 380 build_v96 --catalog bench/tuning/verify_features_96_192.yaml -j 9 &
build b-record 380 build --kernels "$FWD,$BWD" --features none -j 3 &
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_SERIAL_ROW_REDUCTIONS build b-serial 380 build_serial --kernels "$FWD" --features none -j 2 &
build b-base256 380 build_base256 --kernels flash_fwd_hdim256_bf16_sm90 --features none -j 1 &
build b-oinv 380 build_oinv --catalog bench/tuning/fwd_sm90_o_in_v.yaml -j 1 &
wait; save
FLASHGEN_BUILD_DIR=build_v96 step t-v96 150 python3 -m pytest tests/gpu/test_features.py tests/gpu/test_varlen.py \
  tests/gpu/test_backward.py -q -m per_family -rf; save
FLASHGEN_BUILD_DIR=build_oinv step t-oinv 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -x; save
FLASHGEN_BUILD_DIR=build step t-build 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -x; save  # the 4-chain row reductions' first run
FLASHGEN_BUILD_DIR=build_v96 step m-v96 100 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py; save
