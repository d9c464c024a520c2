# Session 16, fourth GPU call (~350 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz`;
# the lowest priority of the four: run it when the device budget allows after the other three).
# dS stored keys-contiguous (`ds_keys_contiguous: 1`, bench/tuning/bwd_sm90_ws_ds_keys.yaml;
# written without a GPU in session 16, compiled and host-checked there): 128 at block_m 80 with
# dQ^T (FA4's non-causal tile there) and 64 at block_m 128, against kernels.yaml's plans, bf16.
# The wgmma probe first (its dQ GEMMs read dS K-major now), then the backward suite, the A/B,
# and the sanitizers last.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res4
step b-dsk 300 python3 build.py --catalog bench/tuning/bwd_sm90_ws_ds_keys.yaml --build-dir build_dsk -j 8 &
step b-ref 300 python3 build.py --build-dir build_ref --kernels flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90 \
  --features none -j 6 &
wait; save
ls build_dsk/_C*.so build_ref/_C*.so >/dev/null || { save; exit 1; }
step probe 180 python3 -m pytest tests/gpu/test_wgmma_probe.py -q -rf; save
export FLASHGEN_BUILD_DIR=build_dsk
step t-dsk 120 python3 -m pytest tests/gpu/test_backward.py -q -m per_family -rf; save
ab() {  # ab NAME BUILD: the backward's default-grid rows at 64 and 128, flashgen alone
  FLASHGEN_BUILD_DIR=$2 step x-$1 50 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd --hdim 64,128 \
    --impl flashgen --tag $1
}
ab dsk-1 build_dsk; ab ref-1 build_ref; ab ref-2 build_ref; ab dsk-2 build_dsk; save
step mc-dsk 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc-dsk 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
