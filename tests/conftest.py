import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
# The suites test what was built: a kernel the build lacks raises KernelNotBuiltError (or its
# case skips) instead of compiling on first use. The JIT's own tests turn it on themselves.
os.environ.setdefault("FLASHGEN_JIT", "0")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and a built extension (skipped without a GPU)")
    config.addinivalue_line("markers", "compile: runs nvcc on real instantiations (minutes on 2 cores)")
    config.addinivalue_line("markers", "per_family: GPU numerics run once per built kernel family (tests/gpu)")
    config.addinivalue_line("markers", "probe: the wgmma operand probe (tests/gpu/test_wgmma_probe.py)")
    config.addinivalue_line("markers", "jit: compiles kernels on first use inside the test (minutes)")


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
