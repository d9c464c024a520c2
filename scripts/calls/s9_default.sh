# Session 9, second GPU call: kernels.yaml with the head-dim-256 backward on ds_exchange. The
# default build, a smoke run of every bf16 kernel, the sanitizer on the d256 sm90 kernels, and
# the whole GPU suite in two processes (backward + varlen | the rest) so it fits the call.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
step build 400 python3 build.py -j 16 || exit 1
step smoke 90 python3 scripts/sanitize.py bf16
step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py hdim256_bf16_sm90 hdim256_fp16_sm90
step racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim256_bf16_sm90
step suite-bwd 330 python3 -m pytest tests/gpu/test_backward.py tests/gpu/test_varlen.py -q -m "not jit" &
step suite-rest 330 python3 -m pytest tests/gpu -q -m "not jit" --ignore tests/gpu/test_backward.py --ignore tests/gpu/test_varlen.py &
wait
