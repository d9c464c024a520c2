# Session 14, third GPU call (~450 s on a cold nvidia-h200; carry the CUTLASS wheel only). The
# backward's step and per-consumer dQ hand-off became the kernel's only code (call 2's A/B:
# +2.9% at 64 and 128 over the step before, -1.8% at 96), and the head-dim-split backward took
# the warp-uniform index (session 13's A/B: +1.3-2.8% at 256): the suites the change reaches in
# both dtypes (bench/tuning/verify_bwd_sm90_step.yaml: the sm90 backward at 64 / 96 / 128 / 256
# with their forwards, 128's feature variants), memcheck and racecheck, then the backward's rows.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1 FLASHGEN_BUILD_DIR=build_step
R=/tmp/res3; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res3.tgz -C $R .; }
step build 260 python3 build.py --catalog bench/tuning/verify_bwd_sm90_step.yaml --build-dir build_step -j 16 \
  || { save; exit 1; }
save
step suites 150 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py tests/gpu/test_varlen.py \
  -q -m per_family -rf; save
step memcheck 50 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step racecheck 50 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step bench 60 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd --hdim 64,128,256 --impl flashgen \
  --tag s14-step; save
