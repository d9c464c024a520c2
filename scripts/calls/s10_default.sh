# Session 10, third GPU call: kernels.yaml with session 10's winners (forward 64 and 128 on the
# dynamic scheduler with a separate O buffer, 64's 128-row plan for causal calls up to 1024
# tokens; the WS backward at 128 with dq_before_dk). The default build, a smoke run of every
# bf16 kernel, memcheck and racecheck of the changed sm90 kernels (sanitize.py selects forward
# names; a kernel's backward runs with it), and the whole GPU suite in two processes.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
step build 400 python3 build.py -j 16 || exit 1
step smoke 90 python3 scripts/sanitize.py bf16
step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py hdim64_bf16_sm90 hdim128_bf16_sm90 hdim128_fp16_sm90
step racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim64_bf16_sm90 hdim128_bf16_sm90
step suite-bwd 300 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_varlen.py -q -m "not jit" &
step suite-rest 300 python3 -m pytest tests/gpu -q -m "not jit" --ignore tests/gpu/test_backward.py --ignore tests/gpu/test_varlen.py &
wait
