# Session 15, second GPU call (~540 s on a cold nvidia-h200; carry the whole .whl: the CUTLASS
# headers from scripts/pack_cutlass_headers.sh and FlashAttention-4's set from scripts/fetch_fa4.sh,
# ~58 MB, and no nvidia_cutlass wheel: with it and the tree the carry is over 64 MiB). Issue 10's record in both dtypes:
# kernels.yaml's sm90 kernels at 64 / 128 / 256 (fp16 and bf16), FA4 and cuDNN in the same
# process (the committed H200 records so far are bf16 only, but for session 9's fp16 one on the
# forward before the rewrite), then Nsight Compute of the 64 forward, flashgen and FA4, with
# per-instruction SASS (the one forward row under 1.00 at 2 x 8192 whose limiter is unmeasured).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res2
mkdir -p /tmp/reps
python3 -c "import flash_attn.cute" 2>/dev/null || echo "FA4 does not import: carry .whl (scripts/fetch_fa4.sh)" | tee -a $OUT/steps.log
step build 300 python3 build.py -j 16 --hdim 64,128,256 --arch sm90 --features none || { save; exit 1; }
save
step record-bf16 150 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 \
  --impl flashgen,fa4,sdpa_cudnn --tag s15-bf16; save
step record-fp16 150 python3 -m bench --out $R --no-sweep --dtype fp16 --hdim 64,128,256 \
  --impl flashgen,fa4,sdpa_cudnn --tag s15-fp16; save
export PYTHONPATH=$PWD:$PYTHONPATH
for impl in flashgen fa4; do
  step ncu-$impl 40 ncu --clock-control none -k regex:'fwd_kernel|[Ff]lash' --launch-skip 1 -c 1 --section SpeedOfLight \
    --section WarpStateStats --section SourceCounters -f -o /tmp/reps/fwd64-$impl python3 scripts/profile_bwd.py \
    --impl $impl --direction fwd --hdim 64 --batch 2 --seqlen 8192 --calls 3 &&
  step sass-$impl 20 bash -c "ncu --import /tmp/reps/fwd64-$impl.ncu-rep --page details > $R/ncu-fwd64-$impl.txt &&
    ncu --import /tmp/reps/fwd64-$impl.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-fwd64-$impl.csv.gz"
  save
done
# The 256 backward (issue 11's 550 TFLOPS bar; last profiled in session 9), flashgen alone.
step ncu-bwd256 40 ncu --clock-control none -k regex:'bwd_ws_split_kernel' --launch-skip 1 -c 1 --section SpeedOfLight \
  --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis -f -o /tmp/reps/bwd256 \
  python3 scripts/profile_bwd.py --impl flashgen --direction bwd --hdim 256 --batch 2 --seqlen 8192 --calls 2 &&
step sass-bwd256 20 bash -c "ncu --import /tmp/reps/bwd256.ncu-rep --page details > $R/ncu-bwd256.txt &&
  ncu --import /tmp/reps/bwd256.ncu-rep --page source --csv --print-source sass | gzip > $R/sass-bwd256.csv.gz"
save
