# Session 14, second GPU call (~300 s, carry .whl/nvidia_cutlass-4.2.0.0-py3-none-any.whl and
# ab_base; self-contained). Session 13's changes to the warp-specialized backward's step
# (bench/tuning/bwd_sm90_ws_step_v2.yaml says what; compiled, never run): their backward, feature
# and varlen suites (64 / 96 / 128, 128's softcap, window and varlen variants), memcheck and
# racecheck, then the A/B against the step before them, each build twice, and Nsight Compute of
# the new 128 backward (the ncu file against session 13's, bench/results/s13/ncu/).
# Before the call, on the CPU machine: the step before, as sources to build beside the new ones:
#   rm -rf ab_base && mkdir ab_base && git archive a46b6b1 csrc | tar -x -C ab_base
#   (a46b6b1: the last commit before the step changes; ab_base/ is ignored, so carry it)
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res2; mkdir -p $R /tmp/reps
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res2.tgz -C $R .; }
[ -d ab_base/csrc ] || { echo "ab_base/csrc missing: see this script's header"; exit 1; }
# The step before: this tree with ab_base's csrc, in a copy of its own (built beside the new one).
rm -rf /tmp/old && mkdir /tmp/old && tar cf - --exclude='./build*' --exclude=./ab_base --exclude=./.whl . | tar xf - -C /tmp/old
rm -rf /tmp/old/csrc && cp -r ab_base/csrc /tmp/old/csrc
KERNELS='flash_fwd_hdim64_bf16_sm90,flash_fwd_hdim96_bf16_sm90,flash_fwd_hdim128_bf16_sm90'
KERNELS="$KERNELS,flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim96_bf16_sm90,flash_bwd_hdim128_bf16_sm90"
step b-new 220 python3 build.py --build-dir build_new --catalog bench/tuning/bwd_sm90_ws_step_v2.yaml -j 10 &
(cd /tmp/old && step b-old 220 python3 build.py --build-dir build_old --kernels "$KERNELS" --features none -j 6) &
wait; save
export FLASHGEN_BUILD_DIR=build_new
step t-new 90 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_features.py tests/gpu/test_varlen.py -q \
  -m per_family -rf; save
step mc-new 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc-new 60 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py \
  hdim64_bf16_sm90 hdim96_bf16_sm90 hdim128_bf16_sm90_softcap_window; save
ab() {  # ab NAME DIR BUILD: the backward rows at 64, 128 (default grid) and 96 (head_dims grid)
  (cd "$2" && FLASHGEN_BUILD_DIR=$3 step x-$1 40 bash -c "python3 -m bench --out $R --no-sweep --dtype bf16 \
    --direction bwd --hdim 64,128 --impl flashgen --tag bwd-$1 && python3 -m bench --out $R --no-sweep --dtype bf16 \
    --direction bwd --grid head_dims --hdim 96 --impl flashgen --tag bwd96-$1")
}
for i in 1 2; do ab new-$i "$PWD" build_new; ab old-$i /tmp/old build_old; save; done
export PYTHONPATH=$PWD:$PYTHONPATH
step ncu-new 45 ncu --clock-control none -k regex:'bwd_ws_kernel' --launch-skip 1 -c 1 --section SpeedOfLight \
  --section WarpStateStats --section SourceCounters -f -o /tmp/reps/bwd128-new python3 scripts/profile_bwd.py \
  --impl flashgen --direction bwd --hdim 128 --batch 2 --seqlen 8192 --calls 1 &&
step sass-new 20 bash -c "ncu --import /tmp/reps/bwd128-new.ncu-rep --page details > $R/ncu-bwd128-new.txt &&
  ncu --import /tmp/reps/bwd128-new.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-bwd128-new.csv.gz"
save
