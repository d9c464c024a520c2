# Session 15, first GPU call (~530 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz` only,
# from scripts/pack_cutlass_headers.sh). The
# warp-specialized backward with `split_masked_steps: 1` (bench/tuning/bwd_sm90_ws_split_masked.yaml;
# compiled in session 14, never run): its backward, feature and varlen suites, memcheck and
# racecheck, then the A/B against the same kernels on kernels.yaml's plans (build_ref: bwd 64 /
# 96 / 128 with their forwards), rows at 64 / 128 (default grid) and 96 (head_dims grid), each
# build twice alternating; and 64 / 96 with dq_before_dk: 1 (bench/tuning/bwd_sm90_ws_dq_before_dk.yaml)
# against the same reference. If one wins, kernels.yaml takes it before call 2's record.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res1
step b-ref 300 python3 build.py --build-dir build_ref --hdim 64,96,128 --dtype bf16 --arch sm90 --features none -j 6 &
step b-split 300 python3 build.py --catalog bench/tuning/bwd_sm90_ws_split_masked.yaml --build-dir build_split -j 10 &
# And 64 and 96 with dQ's GEMM before dK's (64: 0.98-1.00x in session 10, before the
# per-consumer hand-off; 96 never timed with it).
step b-dqb 300 python3 build.py --catalog bench/tuning/bwd_sm90_ws_dq_before_dk.yaml --build-dir build_dqb \
  --kernels 'flash_*_hdim64_bf16_sm90,flash_*_hdim96_bf16_sm90' -j 4 &
wait; save
ls build_split/_C*.so build_ref/_C*.so >/dev/null || { save; exit 1; }
FLASHGEN_BUILD_DIR=build_split step t-split 120 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py \
  tests/gpu/test_varlen.py -q -m per_family -rf; save
# build_ref is kernels.yaml's code since session 14's step lambda (64 / 96: the same instructions
# as call 5 of session 14 ran, 38-92 lines scheduled differently): its backward suite too.
FLASHGEN_BUILD_DIR=build_ref step t-ref 60 python3 -m pytest tests/gpu/test_backward.py -q -m per_family -rf; save
FLASHGEN_BUILD_DIR=build_ref step mc-ref 40 compute-sanitizer --tool memcheck --error-exitcode 1 \
  python3 scripts/sanitize.py _sm90; save
FLASHGEN_BUILD_DIR=build_split step mc-split 60 compute-sanitizer --tool memcheck --error-exitcode 1 \
  python3 scripts/sanitize.py _sm90; save
FLASHGEN_BUILD_DIR=build_split step rc-split 60 compute-sanitizer --tool racecheck --error-exitcode 1 \
  python3 scripts/sanitize.py _sm90; save
ab() {  # ab NAME BUILD: the backward rows at 64, 128 (default grid) and 96 (head_dims grid)
  FLASHGEN_BUILD_DIR=$2 step x-$1 40 bash -c "python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
    --hdim 64,128 --impl flashgen --tag bwd-$1 && python3 -m bench --out $R --no-sweep --dtype bf16 \
    --direction bwd --grid head_dims --hdim 96 --impl flashgen --tag bwd96-$1"
}
ab split-1 build_split; ab ref-1 build_ref; ab ref-2 build_ref; ab split-2 build_split; save
FLASHGEN_BUILD_DIR=build_dqb step t-dqb 40 python3 -m pytest tests/gpu/test_backward.py -q -m per_family -rf; save
ab64() { FLASHGEN_BUILD_DIR=$2 step x-$1 40 bash -c "python3 -m bench --out $R --no-sweep --dtype bf16 \
  --direction bwd --hdim 64 --impl flashgen --tag bwd64-$1 && python3 -m bench --out $R --no-sweep --dtype bf16 \
  --direction bwd --grid head_dims --hdim 96 --impl flashgen --tag bwd96dqb-$1"; }
ab64 dqb-1 build_dqb; ab64 ref64-1 build_ref; ab64 ref64-2 build_ref; ab64 dqb-2 build_dqb; save
