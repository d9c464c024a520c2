# Session 16, third GPU call (~550 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz`).
# Two experiments written in session 16 without a GPU (compiled there), bf16, against
# kernels.yaml's plans built in the same call:
# - the 256 backward with `skip_unseen_keys: 1` (bench/tuning/bwd_sm90_256_skip_unseen.yaml): a
#   cluster pair's steps that see none of one CTA's keys run only that CTA's dQ GEMM over the
#   partner's keys. Expected: +5-10% at 32 x 512 (1 CTA in 8 has no keys there; causal: ~1 step in
#   9 is one CTA's diagonal), ~+2% causal 8 x 2048, level at 2 x 8192. Suites with its softcap +
#   window and varlen variants (the union's edge cases: seqlens from 1, windows, deterministic),
#   a stress loop (scripts/stress_bwd.py: a timing-dependent hang), the A/B, and at the end
#   memcheck and racecheck;
# - the 256 forward with 64-key blocks (bench/tuning/fwd_sm90_256_n64.yaml): 512 keys in 8 blocks
#   instead of 7 x 80 = 560. Expected: the 32 x 512 rows up, 2 x 8192 down (narrower S wgmma).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res3
step b-skip 300 python3 build.py --catalog bench/tuning/bwd_sm90_256_skip_unseen.yaml --build-dir build_skip -j 8 &
step b-n64 300 python3 build.py --catalog bench/tuning/fwd_sm90_256_n64.yaml --build-dir build_n64 -j 2 &
step b-ref 300 python3 build.py --build-dir build_ref --kernels flash_fwd_hdim256_bf16_sm90,flash_bwd_hdim256_bf16_sm90 \
  --features none -j 4 &
wait; save
ls build_skip/_C*.so build_ref/_C*.so >/dev/null || { save; exit 1; }
export FLASHGEN_BUILD_DIR=build_skip
step t-skip 150 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py tests/gpu/test_varlen.py -q \
  -m per_family -rf; save
# A hang that depends on timing between the pair's CTAs shows only over many calls (session 16's
# review found one in the first version, by a model of the barriers): 6 cases x 1000 calls.
step stress-skip 90 python3 scripts/stress_bwd.py --hdim 256 --iters 1000; save
ab() {  # ab NAME BUILD DIRECTION: the default grid's rows at 256, flashgen alone
  FLASHGEN_BUILD_DIR=$2 step x-$1 40 python3 -m bench --out $R --no-sweep --dtype bf16 --direction $3 --hdim 256 \
    --impl flashgen --tag $1
}
ab bwd-skip-1 build_skip bwd; ab bwd-ref-1 build_ref bwd; ab bwd-ref-2 build_ref bwd; ab bwd-skip-2 build_skip bwd; save
if ls build_n64/_C*.so >/dev/null; then
  ab fwd-n64-1 build_n64 fwd; ab fwd-ref-1 build_ref fwd; ab fwd-ref-2 build_ref fwd; ab fwd-n64-2 build_n64 fwd; save
  FLASHGEN_BUILD_DIR=build_n64 step t-n64 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -rf; save
fi
# The sanitizers last (the call may reach its 600 s first; an adoption's verification call runs
# them then).
step mc-skip 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py hdim256; save
step rc-skip 150 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim256; save
