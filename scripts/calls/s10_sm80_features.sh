# Session 10, second GPU call (~400 s; fire it while the first call's machine is warm, so its
# build_base is still there): issue 12's last unrun piece, the sm80 feature variants at 96, 192
# and 256 (bench/tuning/verify_sm80_features.yaml, 18 kernels): the feature, varlen and backward
# suites on them and memcheck of the varlen ones; beside it the forward's q_in_registers A/B at
# 128 (written in session 5, never run) against build_base.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res2; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res2.tgz -C $R .; }
step b-qreg 330 python3 build.py --catalog bench/tuning/fwd_sm90_q_in_registers.yaml --arch sm90 --hdim 128 --build-dir build_qreg -j 2 &
step b-v80 400 python3 build.py --catalog bench/tuning/verify_sm80_features.yaml --build-dir build_v80 -j 14
wait; save
FLASHGEN_BUILD_DIR=build_v80 step t-v80 300 python3 -m pytest tests/gpu/test_features.py tests/gpu/test_varlen.py tests/gpu/test_backward.py -q -m per_family; save
FLASHGEN_BUILD_DIR=build_v80 step m-v80 120 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py varlen; save
FLASHGEN_BUILD_DIR=build_qreg step t-qreg 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -x; save
for c in base qreg; do [ -d build_$c ] && FLASHGEN_BUILD_DIR=build_$c step x-$c 90 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd --hdim 128 --impl flashgen --tag $c-fwd128; save; done
