#!/usr/bin/env python3
"""One small call of every built kernel (forward, and backward where built), ragged seqlens,
GQA, causal and not: the workload for compute-sanitizer on the GPU machine.

    compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim256_bf16
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import flashgen  # noqa: E402
from flashgen.dispatch import TORCH_DTYPES  # noqa: E402
from flashgen.naming import KernelKey  # noqa: E402


def main() -> int:
    only = sys.argv[1:]  # optional substrings: run only kernels whose name contains one
    built = {n for n in flashgen.available_kernels() if not only or any(o in n for o in only)}
    for name in sorted(built):
        key = KernelKey.parse(name)
        if key.direction != "fwd":
            continue
        with_backward = name.replace("flash_fwd_", "flash_bwd_") in built
        for causal in (False, True):
            q, k, v = (torch.randn(1, n, h, key.hdim, device="cuda", dtype=TORCH_DTYPES[key.dtype],
                                   requires_grad=with_backward) for n, h in ((77, 2), (133, 1), (133, 1)))
            out = flashgen.flash_attn_func(q, k, v, causal=causal, arch=key.arch)
            if with_backward:
                out.backward(torch.randn_like(out))
            torch.cuda.synchronize()
            assert torch.isfinite(out).all(), name
            assert not with_backward or all(torch.isfinite(t.grad).all() for t in (q, k, v)), name
        print(f"ran {name}{' and its backward' if with_backward else ''}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
