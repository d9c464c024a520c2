#!/usr/bin/env python3
"""One small call of every built kernel, ragged seqlens, causal and not: the workload for
compute-sanitizer on the GPU machine.

    compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import flashgen  # noqa: E402
from flashgen.naming import KernelKey  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def main() -> int:
    for name in flashgen.available_kernels():
        key = KernelKey.parse(name)
        for causal in (False, True):
            q = torch.randn(1, 77, 2, key.hdim, device="cuda", dtype=DTYPES[key.dtype])
            k = torch.randn(1, 133, 1, key.hdim, device="cuda", dtype=DTYPES[key.dtype])
            v = torch.randn_like(k)
            out = flashgen.flash_attn_func(q, k, v, causal=causal, arch=key.arch)
            torch.cuda.synchronize()
            assert torch.isfinite(out).all(), name
        print(f"ran {name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
