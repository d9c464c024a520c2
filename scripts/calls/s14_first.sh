# Session 14, first GPU call (~520 s on nvidia-h200-x2, whose 32 cores build the default
# selection in about half the 16-core time; carry the CUTLASS wheel only: no FA4 here, and the
# whole .whl folder with the tree is over the 64 MiB a call carries). What session 13 could not
# run: the whole GPU suite on the final default build (42 kernels: the sm90 backward at 96 is new,
# the forward changed in session 12, the eager autograd path and binding's context fix in
# session 13), then racecheck of the sm90 forwards and backwards in both dtypes. On a 16-core
# machine the build alone takes ~313 s: split the suite over two calls there (STEP=suite1|suite2).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res1; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res1.tgz -C $R .; }
case "${STEP:-all}" in all | suite1 | suite2) ;; *) echo "STEP must be all, suite1 or suite2"; exit 2 ;; esac
# A warm machine keeps build/ from the call before (steps.sh: reuse_build); a cold one rebuilds.
reuse_build build
step build 360 python3 build.py -j "$(nproc)" || { save; exit 1; }
mark_build build; save
case "${STEP:-all}" in
  all) step suite 330 python3 -m pytest tests/gpu -q -rf ;;
  suite1) step suite1 200 python3 -m pytest tests/gpu/test_forward.py tests/gpu/test_features.py -q -rf ;;
  suite2) step suite2 200 python3 -m pytest tests/gpu -q -rf --ignore tests/gpu/test_forward.py \
    --ignore tests/gpu/test_features.py ;;
esac
save
# Racecheck once (the split's second call, or the whole one).
[ "${STEP:-all}" = suite1 ] || step racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 1 \
  python3 scripts/sanitize.py hdim64_bf16_sm90 hdim96_fp16_sm90 hdim128_fp16_sm90 hdim256_bf16_sm90
save
