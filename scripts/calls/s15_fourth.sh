# Session 15, fourth GPU call (~330 s on a cold nvidia-h200; carry the whole .whl as for
# s15_second.sh). Verifies what call 1 and call 3 moved into kernels.yaml: the sm90 backward at
# 64 and 96 with dq_before_dk (timed in bf16 only) and head dim 192 on the three-consumer
# head-dim-split backward, in both dtypes: the backward suite (deterministic bit-identity
# included), memcheck and racecheck; then the head_dims grid at 96 and 192 with FA4 and cuDNN in
# one process (issue 11's rows beyond 64 / 128 / 256).
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
call_start res4
step build 300 python3 build.py -j 16 --hdim 64,96,192 --arch sm90 --features none || { save; exit 1; }
save
step t-bwd 150 python3 -m pytest tests/gpu/test_backward.py -q -m per_family -rf; save
step mc 60 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step rc 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py _sm90; save
step record-hd 200 python3 -m bench --out $R --no-sweep --dtype bf16 --grid head_dims --hdim 96,192 \
  --impl flashgen,fa4,sdpa_cudnn --tag s15-head-dims-bf16; save
