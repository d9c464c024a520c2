#!/usr/bin/env python3
"""A few backward calls of one shape per implementation: the workload for Nsight Compute, so
flashgen's kernels and a peer's can be profiled side by side in one run.

    ncu --clock-control none -k regex:'bwd_kernel|dq_dk_dv' -c 2 --section WarpStateStats \\
        python3 scripts/profile_bwd.py --impl flashgen,sdpa_flash --hdim 256 --seqlen 4096
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.impls import IMPLS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="flashgen,sdpa_flash")
    parser.add_argument("--hdim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seqlen", type=int, default=4096)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--calls", type=int, default=2)
    args = parser.parse_args()
    heads = 2048 // args.hdim
    q, k, v = (torch.randn(args.batch, args.seqlen, heads, args.hdim, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    for name in args.impl.split(","):
        run = IMPLS[name](q, k, v, args.causal, "bwd")
        for _ in range(args.calls):
            run()
        torch.cuda.synchronize()
        print(f"{name}: {args.calls} backward calls done", flush=True)


if __name__ == "__main__":
    main()
