# Session 16, second GPU call (~480 s on a cold nvidia-h200; carry the whole .whl: FA4's set from
# scripts/fetch_fa4.sh and the CUTLASS headers, without the nvidia_cutlass wheel, as
# s15_second.sh). The profiles issues 10 and 11 still lack (docs/perf.md, session 15, "Rows under
# the issues' bars"), flashgen beside the row's best peer, bf16, kernels.yaml's sm90 kernels:
# - the forward at non-causal 32 x 512, head dims 128 and 256, flashgen and cuDNN (the rows under
#   1.00 whose limiter is not measured: session 11 profiled the causal ones only);
# - the 256 backward at causal 2 x 8192 and causal 32 x 512 (issue 11's causal rows), and the
#   per-kernel times of its whole backward (0.47 ms of 5.60 ran outside the main kernel);
# - the 64 and 128 backward at 2 x 8192, flashgen and FA4 (FA4 leads 10 of 12 rows at each);
# - the forward at 96 and 192 with the dynamic scheduler, A/B (head_dims grid, bf16).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res2
mkdir -p /tmp/reps
export PYTHONPATH=$PWD:$PYTHONPATH
python3 -c "import flash_attn.cute" 2>/dev/null || echo "FA4 does not import: carry .whl (scripts/fetch_fa4.sh)" | tee -a $OUT/steps.log
step build 300 python3 build.py -j 12 --hdim 64,128,256 --dtype bf16 --arch sm90 --features none &
# And the forward at 96 and 192 with the dynamic scheduler (bench/tuning/fwd_sm90_96_192_dynamic.yaml)
# against kernels.yaml's plans there: suites, sanitizers and an A/B at the end.
step b-dyn 300 python3 build.py -j 4 --build-dir build_dyn --catalog bench/tuning/fwd_sm90_96_192_dynamic.yaml &
step b-ref 300 python3 build.py -j 4 --build-dir build_ref --direction fwd --hdim 96,192 --dtype bf16 --arch sm90 \
  --features none &
wait; save
ls build/_C*.so >/dev/null || { save; exit 1; }
# prof NAME LIMIT PROFILE_BWD_ARGS...: every kernel of one call after a warm-up (profile_bwd.py
# runs it inside an NVTX range `profiled`: the implementation's kernels, for a backward its
# pre/postprocess and main kernels), details and per-instruction SASS into $R.
prof() {
  local name=$1 limit=$2; shift 2
  step ncu-$name $limit ncu --clock-control none --nvtx --nvtx-include profiled/ -c 8 --section SpeedOfLight \
    --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis --section LaunchStats \
    --section Occupancy -f -o /tmp/reps/$name python3 scripts/profile_bwd.py --calls 2 "$@" &&
  step sass-$name 30 bash -c "ncu --import /tmp/reps/$name.ncu-rep --page details > $R/ncu-$name.txt &&
    ncu --import /tmp/reps/$name.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-$name.csv.gz"
  save
}
step ktimes 60 bash -c "python3 scripts/profile_bwd.py --kernel-times --impl flashgen,sdpa_cudnn --hdim 256 --batch 2 \
  --seqlen 8192 > $R/kernel-times-bwd256.txt; python3 scripts/profile_bwd.py --kernel-times --impl flashgen,sdpa_cudnn \
  --direction fwd --hdim 256 --batch 32 --seqlen 512 > $R/kernel-times-fwd256-32x512.txt"; save
for impl in flashgen sdpa_cudnn; do
  for d in 128 256; do prof fwd$d-32x512-$impl 60 --impl $impl --direction fwd --hdim $d --batch 32 --seqlen 512; done
done
prof bwd256-causal-2x8192 60 --impl flashgen --hdim 256 --batch 2 --seqlen 8192 --causal
prof bwd256-causal-32x512 60 --impl flashgen --hdim 256 --batch 32 --seqlen 512 --causal
for impl in flashgen fa4; do
  for d in 64 128; do prof bwd$d-$impl 60 --impl $impl --hdim $d --batch 2 --seqlen 8192; done
done
# The 96 / 192 forward A/B (flashgen alone, each build twice alternating) after its checks.
if ls build_dyn/_C*.so build_ref/_C*.so >/dev/null; then
  FLASHGEN_BUILD_DIR=build_dyn step t-dyn 60 python3 -m pytest tests/gpu/test_forward.py -q -m per_family -rf; save
  FLASHGEN_BUILD_DIR=build_dyn step mc-dyn 40 compute-sanitizer --tool memcheck --error-exitcode 1 \
    python3 scripts/sanitize.py _sm90; save
  FLASHGEN_BUILD_DIR=build_dyn step rc-dyn 60 compute-sanitizer --tool racecheck --error-exitcode 1 \
    python3 scripts/sanitize.py _sm90; save
  ab() { FLASHGEN_BUILD_DIR=$2 step x-$1 30 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
    --grid head_dims --hdim 96,192 --impl flashgen --tag fwd96-192-$1; save; }
  ab dyn-1 build_dyn; ab ref-1 build_ref; ab ref-2 build_ref; ab dyn-2 build_dyn
fi
