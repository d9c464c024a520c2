# Session 10, first GPU call (~500 s): the new backward preprocess (16-byte loads, 64 rows per
# CTA) checked on kernels.yaml's sm90 plans, and the A/Bs written in session 9: the WS backward's
# dq_before_dk and causal_head_groups (64, 128); the forward's dynamic scheduler with its new
# longest-first causal order, with and without a separate O buffer (64, 128, 256); at 64 also
# the 128-row plan for causal calls up to 2048 tokens on top (causal_block_m_seqlen); per-kernel
# times of a short backward (flashgen and FA4). Results re-tarred after every step.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R
save() { cp $OUT/steps.log $R/ 2>/dev/null; tar czf $OUT/res.tgz -C $R .; }
step b-base 330 python3 build.py --arch sm90 --dtype bf16 --hdim 64,128,256 --features none --build-dir build_base -j 4 &
for c in bwd_sm90_ws_dq_before_dk bwd_sm90_ws_head_groups fwd_sm90_dynamic_o_buffer fwd_sm90_dynamic fwd_sm90_short_causal; do
  step b-$c 330 python3 build.py --catalog bench/tuning/$c.yaml --arch sm90 --build-dir build_$c -j 3 &
done
wait; save
per_family() { FLASHGEN_BUILD_DIR=build_$1 step t-$1 150 python3 -m pytest $2 -q -m per_family -x; save; }
bench() { FLASHGEN_BUILD_DIR=build_$1 step x-$1-$2 120 python3 -m bench --out $R --no-sweep --dtype bf16 --direction $2 --hdim $3 --impl flashgen --tag $1-$2; save; }
per_family base "tests/gpu/test_backward.py tests/gpu/test_forward.py"
per_family bwd_sm90_ws_dq_before_dk tests/gpu/test_backward.py
per_family bwd_sm90_ws_head_groups tests/gpu/test_backward.py
bench base bwd 64,128,256
bench bwd_sm90_ws_dq_before_dk bwd 64,128
bench bwd_sm90_ws_head_groups bwd 64,128
FLASHGEN_BUILD_DIR=build_base step times 60 bash -c 'for d in 64 128; do python3 scripts/profile_bwd.py --kernel-times --impl flashgen --batch 32 --seqlen 512 --hdim $d; done'; save
FLASHGEN_BUILD_DIR=build_base step times-fa4 90 bash -c 'for d in 64 128; do python3 scripts/profile_bwd.py --kernel-times --impl fa4 --batch 32 --seqlen 512 --hdim $d; done'; save
for c in fwd_sm90_dynamic_o_buffer fwd_sm90_dynamic fwd_sm90_short_causal; do per_family $c tests/gpu/test_forward.py; done
bench base fwd 64,128,256
bench fwd_sm90_dynamic_o_buffer fwd 64,128
bench fwd_sm90_dynamic fwd 64,128,256
bench fwd_sm90_short_causal fwd 64
FLASHGEN_BUILD_DIR=build_bwd_sm90_ws_dq_before_dk step r-dqf 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py bwd_hdim128; save
# The A/Bs side by side (also in the output's tail).
step cmp-bwd 30 python3 -m bench.compare $R/*-base-bwd.json $R/*-bwd_sm90_ws_dq_before_dk-bwd.json $R/*-bwd_sm90_ws_head_groups-bwd.json; cat $STEP_LOGS/cmp-bwd.log
step cmp-fwd 30 python3 -m bench.compare $R/*-base-fwd.json $R/*-fwd_sm90_dynamic_o_buffer-fwd.json $R/*-fwd_sm90_dynamic-fwd.json $R/*-fwd_sm90_short_causal-fwd.json; cat $STEP_LOGS/cmp-fwd.log; save
