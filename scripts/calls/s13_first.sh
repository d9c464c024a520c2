# Session 13, first GPU call (~560 s, carry .whl; self-contained: a later call finds no build,
# the machine goes back 30 s after a call). Session 12 changed the sm90 forward after the last
# whole-suite run (one row-reduction chain, split_masked_steps at 128 for non-causal calls, o_in_v
# with the dynamic scheduler at 256, the warp-uniform warpgroup index) and flashgen's Python per
# call (host time): the default build (predicted ~230 s now that sm80 objects compile for the
# visible GPU only), the whole GPU suite on it, racecheck and memcheck of the sm90 forwards (with
# their backwards), then the benchmark of record (the host column shows the Python cut).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res.tgz -C $R .; }
step build 330 python3 build.py -j 16 || { save; exit 1; }
save
step suite 150 python3 -m pytest tests/gpu -q -x -rf; save
step racecheck 60 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py \
  hdim64_bf16_sm90 hdim128_fp16_sm90 hdim256_bf16_sm90; save
step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step record 130 python3 -m bench --out $R --no-sweep --dtype bf16 --hdim 64,128,256 --impl flashgen,fa4,sdpa_cudnn --tag s13; save
