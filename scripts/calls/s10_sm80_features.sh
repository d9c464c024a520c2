# Session 10, second GPU call (~350 s; fire it while the first call's machine is warm): issue 12's
# last unrun piece, the sm80 feature variants at 96, 192 and 256 (bench/tuning/verify_sm80_features.yaml,
# 18 kernels): the feature and varlen suites on them, and memcheck of the varlen ones.
. scripts/carried_wheels.sh || exit 1; . scripts/steps.sh
export CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1
step b-v80 400 python3 build.py --catalog bench/tuning/verify_sm80_features.yaml --build-dir build_v80 -j 16 || exit 1
export FLASHGEN_BUILD_DIR=build_v80
step t-v80 300 python3 -m pytest tests/gpu/test_features.py tests/gpu/test_varlen.py tests/gpu/test_backward.py -q -m per_family
step m-v80 120 compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py varlen
