# Session 15, sixth GPU call (~240 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz`):
# the 64 forward with O rescaled after the P V wait, outside the GEMM turn (FA4's order; a
# helper's reading of call 3's profiles: flashgen's turn is 94 instructions against FA4's 48, 32
# of them the rescale), -DFLASHGEN_FWD_RESCALE_AFTER_PV against the same kernel without it:
# the forward suite, then the A/B (bf16, 64, each build twice alternating).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res6
K=flash_fwd_hdim64_bf16_sm90
step b-ref 150 python3 build.py --build-dir build_ref --kernels $K --features none -j 4 &
FLASHGEN_NVCC_FLAGS=-DFLASHGEN_FWD_RESCALE_AFTER_PV step b-new 150 python3 build.py --build-dir build_new \
  --catalog bench/tuning/fwd_sm90_64_split_masked.yaml -j 4 &
wait; save
ls build_new/_C*.so build_ref/_C*.so >/dev/null || { save; exit 1; }
FLASHGEN_BUILD_DIR=build_new step t-new 40 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -rf -x; save
ab() { FLASHGEN_BUILD_DIR=$2 step x-$1 30 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
  --hdim 64 --impl flashgen --tag fwd64-$1; save; }
ab new-1 build_new; ab ref-1 build_ref; ab ref-2 build_ref; ab new-2 build_new
