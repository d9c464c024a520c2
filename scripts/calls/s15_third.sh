# Session 15, third GPU call (~450 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz` only,
# from scripts/pack_cutlass_headers.sh). Head
# dim 192 on the head-dim-split sm90 backward with three consumers (bench/tuning/bwd_sm90_192.yaml;
# compiled in session 14, never run): its backward, feature and varlen suites in both dtypes,
# memcheck and racecheck, then the A/B against the sm80 backward Hopper runs at 192 today
# (build_192_sm80: kernels.yaml's sm80 backward with the same forward), flashgen alone on the
# head_dims grid, each build twice alternating. If the suites pass and it wins, kernels.yaml
# takes the plan (fp16 and bf16, with the 256 softcap + window variant's counterpart if wanted).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res3
step b-192 300 python3 build.py --catalog bench/tuning/bwd_sm90_192.yaml --build-dir build_192 -j 12 &
step b-sm80 300 python3 build.py --build-dir build_192_sm80 --kernels flash_bwd_hdim192_bf16_sm80,flash_fwd_hdim192_bf16_sm90 \
  --features none -j 4 &
wait; save
ls build_192/_C*.so >/dev/null || { save; exit 1; }
export FLASHGEN_BUILD_DIR=build_192
step t-192 150 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py tests/gpu/test_varlen.py -q \
  -m per_family -rf; save
step mc-192 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py hdim192; save
step rc-192 60 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim192; save
ab() {  # ab NAME BUILD: the backward's head_dims-grid rows at 192
  FLASHGEN_BUILD_DIR=$2 step x-$1 40 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
    --grid head_dims --hdim 192 --impl flashgen --tag bwd192-$1
}
ab sm90-1 build_192; ab sm80-1 build_192_sm80; ab sm80-2 build_192_sm80; ab sm90-2 build_192; save
