# Session 17, second GPU call (~450 s on a cold nvidia-h200; carry `.whl/cutlass_include.tar.xz`).
# Written without a GPU: the sm90 backward's main kernel and dQ postprocess as programmatic
# dependent launches (-DFLASHGEN_BWD_PDL; FA4 launches its sm90 backward's main kernel so). The
# preprocess and the main kernel let their successor start once their last wave is on the GPU;
# the main kernel loads K and V before it waits for the preprocess's lse / D and zeroed dQ
# accumulator, the postprocess waits before it reads the accumulator. Expected: the launch gap
# and the main kernel's start-up hidden, a few microseconds a call: +1-2% on the 32 x 512 rows
# (0.2-0.6 ms calls), level at 2 x 8192. bf16, kernels.yaml's sm90 backwards at 64 / 128 / 256,
# against the same kernels without the flag: the backward suite (deterministic bit-identity
# included: its launches now overlap too), the CUDA-graph and torch.compile tests (a programmatic
# launch inside a captured graph), the A/B twice alternating, memcheck and racecheck.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start s17b
K='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim128_bf16_sm90,flash_fwd_hdim256_bf16_sm90'
K="$K,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_bwd_hdim256_bf16_sm90"
step b-ref 300 python3 build.py --build-dir build_ref --kernels "$K" -j 8 &
FLASHGEN_NVCC_FLAGS="-DFLASHGEN_BWD_PDL" step b-pdl 300 python3 build.py --build-dir build_pdl --kernels "$K" -j 8 &
wait; save
ls build_pdl/_C*.so build_ref/_C*.so >/dev/null || { save; exit 1; }
export FLASHGEN_BUILD_DIR=build_pdl
step t-pdl 200 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_library_ops.py -q -rf; save
ab() { FLASHGEN_BUILD_DIR=$2 step x-$1 50 python3 -m bench --out $R --no-sweep --dtype bf16 --direction bwd \
  --hdim 64,128,256 --impl flashgen --tag ab-$1; save; }
ab pdl-1 build_pdl; ab ref-1 build_ref; ab ref-2 build_ref; ab pdl-2 build_pdl
step mc-pdl 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc-pdl 150 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
