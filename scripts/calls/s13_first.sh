# Session 13, first GPU call (~580 s, carry .whl; self-contained: a later call finds no build,
# the machine goes back 30 s after a call). Session 12 changed the sm90 forward after the last
# whole-suite run (one row-reduction chain, split_masked_steps at 128 for non-causal calls, o_in_v
# with the dynamic scheduler at 256, the warp-uniform warpgroup index) and flashgen's Python per
# call (host time): the default build (predicted ~230 s now that sm80 objects compile for the
# visible GPU only), the whole GPU suite on it (278 s in session 11), racecheck of the sm90
# forwards (with their backwards). The record and memcheck go in the second call
# (s13_second.sh), which builds the bf16 sm90 kernels again.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res.tgz -C $R .; }
step build 330 python3 build.py -j 16 || { save; exit 1; }
save
step suite 300 python3 -m pytest tests/gpu -q -rf; save
step racecheck 60 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py \
  hdim64_bf16_sm90 hdim128_fp16_sm90 hdim256_bf16_sm90; save
