#!/usr/bin/env python3
"""Many backward calls of a few shapes, to catch what one call rarely shows: a hang or a wrong
result that depends on the timing between CTAs (a barrier protocol's phases). Each call's
gradients are compared with the first call's of the same shape (dQ's atomics add in any order:
a tolerance), every call synchronized; run it under a time limit, which a hang exceeds.

    timeout 120 python3 scripts/stress_bwd.py --hdim 256 --iters 300
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import flashgen  # noqa: E402

# (batch, seqlen_q, seqlen_k): seqlen 512 leaves the 256 backward's last cluster pair a key block
# past the keys; 200 x 40 keys within one block; 200 x 200 causal a diagonal unseen step.
SHAPES = ((32, 512, 512), (4, 200, 40), (8, 200, 200))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hdim", type=int, default=256)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16"))
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    heads = max(1, 2048 // args.hdim)
    torch.manual_seed(0)
    worst = 0.0
    for batch, seqlen_q, seqlen_k in SHAPES:
        for causal in (False, True):
            q = torch.randn(batch, seqlen_q, heads, args.hdim, device="cuda", dtype=dtype, requires_grad=True)
            k, v = (torch.randn(batch, seqlen_k, heads, args.hdim, device="cuda", dtype=dtype, requires_grad=True)
                    for _ in range(2))
            dout = torch.randn(batch, seqlen_q, heads, args.hdim, device="cuda", dtype=dtype)
            first = None
            for _ in range(args.iters):
                out = flashgen.flash_attn_func(q, k, v, causal=causal)
                grads = torch.autograd.grad(out, (q, k, v), dout)
                torch.cuda.synchronize()
                if first is None:
                    first = [g.float() for g in grads]
                    scale = [g.abs().max().item() + 1e-6 for g in first]
                    continue
                for name, g, ref, s in zip("qkv", grads, first, scale):
                    err = (g.float() - ref).abs().max().item() / s
                    worst = max(worst, err)
                    if not err < 1e-2:  # NaN fails too
                        print(f"FAIL {batch}x{seqlen_q}x{seqlen_k} causal={causal}: d{name} moved {err:.3g} of its "
                              f"max from the first call's", flush=True)
                        return 1
            print(f"ok {batch}x{seqlen_q}x{seqlen_k} causal={causal}: {args.iters} calls", flush=True)
    print(f"all calls agree with the first within {worst:.3g} (relative to each gradient's max)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
