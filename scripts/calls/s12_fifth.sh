# Session 12, call 5 (~560 s, carry .whl; self-contained). kernels.yaml's new sm90 forward plans
# (one serial row-reduction chain again; split_masked_steps at 64 and 128; the dynamic scheduler
# with o_in_v at 256): build them (every sm90 forward of the default build, both dtypes, and the
# bf16 sm90 backwards for the record), the old plans (build_ref,
# bench/tuning/fwd_sm90_s11_plans.yaml) and the window / softcap / varlen forwards at 64 and 128
# (split loops with a window's start) and 256 (o_in_v with varlen). Then their suites, the A/B
# against the old plans (twice, alternating), the benchmark of record, racecheck and memcheck of
# the new forwards, and ncu + SASS of the d256 forward (flashgen, FA4) if time is left.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res5; mkdir -p $R /tmp/reps
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res5.tgz -C $R .; }
BWD='flash_bwd_hdim64_bf16_sm90,flash_bwd_hdim128_bf16_sm90,flash_bwd_hdim256_bf16_sm90'
FEAT='flash_fwd_hdim64_bf16_sm90_softcap_window,flash_fwd_hdim128_bf16_sm90_softcap_window'
FEAT="$FEAT,flash_fwd_hdim64_bf16_sm90_softcap_window_varlen,flash_fwd_hdim128_bf16_sm90_softcap_window_varlen"
FEAT="$FEAT,flash_fwd_hdim256_bf16_sm90_softcap_window_varlen"
step b-cand 330 python3 build.py --build-dir build --kernels "flash_fwd_*_sm90*,$BWD" -j 12 &
step b-ref 330 python3 build.py --build-dir build_ref --catalog bench/tuning/fwd_sm90_s11_plans.yaml -j 3 &
step b-feat 330 python3 build.py --build-dir build_feat --catalog bench/tuning/verify_features.yaml --kernels "$FEAT" -j 5 &
wait; save
step t-cand 90 python3 -m pytest tests/gpu/test_forward.py tests/gpu/test_features.py -q -m per_family -rf; save
FLASHGEN_BUILD_DIR=build_feat step t-feat 60 python3 -m pytest tests/gpu/test_features.py tests/gpu/test_varlen.py -q -m per_family -rf; save
for i in 1 2; do
  for c in build build_ref; do
    FLASHGEN_BUILD_DIR=$c step x-$c-$i 30 python3 -m bench --out $R --no-sweep --dtype bf16 --direction fwd \
      --hdim 64,128,256 --impl flashgen --tag $c-fwd-$i
  done
  save
done
step record 150 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag s12b; save
step r-cand 50 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim64_bf16_sm90 hdim128_bf16_sm90 hdim256_bf16_sm90; save
FLASHGEN_BUILD_DIR=build_feat step m-feat 40 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py; save
export PYTHONPATH=$PWD:$PYTHONPATH
for impl in flashgen fa4; do
  step ncu-$impl 45 ncu --clock-control none -k regex:'fwd_kernel|[Ff]lash' --launch-skip 1 -c 1 \
    --section SpeedOfLight --section WarpStateStats --section SourceCounters -f -o /tmp/reps/fwd256-$impl \
    python3 scripts/profile_bwd.py --impl $impl --direction fwd --hdim 256 --batch 2 --seqlen 8192 --calls 1 &&
  step sass-$impl 20 bash -c "ncu --import /tmp/reps/fwd256-$impl.ncu-rep --page details > $R/ncu-fwd256-$impl.txt &&
    ncu --import /tmp/reps/fwd256-$impl.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-fwd256-$impl.csv.gz"
  save
done
