#!/usr/bin/env bash
# Install what flashgen needs to build and test. Usage:
#   bash scripts/setup.sh               # torch 2.14.1 (CUDA 13.0 build) and the rest
#   bash scripts/setup.sh --keep-torch  # a machine with its own CUDA build of torch (e.g. the GPU machine)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--keep-torch" ]]; then
  grep -v '^torch' requirements.txt > /tmp/flashgen-requirements.txt
  python3 -m pip install -q -r /tmp/flashgen-requirements.txt
else
  python3 -m pip install -q -r requirements.txt
fi
# CUTLASS/CuTe headers only: the package's Python dependencies are not needed.
python3 -m pip install -q --no-deps nvidia-cutlass==4.2.0.0
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
"$CUDA_HOME/bin/nvcc" --version | tail -1
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
