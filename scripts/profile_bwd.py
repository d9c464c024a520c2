#!/usr/bin/env python3
"""A few backward (or, with --direction fwd, forward) calls of one shape per implementation: the
workload for Nsight Compute, so flashgen's kernels and a peer's can be profiled side by side in
one run; with --kernel-times, PyTorch's profiler lists the time of every kernel one call
launches (memsets and the pre/postprocess kernels included), per implementation.

    ncu --clock-control none -k regex:'bwd_kernel|dq_dk_dv' -c 4 --section WarpStateStats \\
        python3 scripts/profile_bwd.py --impl flashgen,sdpa_flash --hdim 256 --seqlen 4096
    ncu --clock-control none -k regex:fwd_kernel -c 1 --section SpeedOfLight \
        python3 scripts/profile_bwd.py --direction fwd --impl flashgen --hdim 256 --seqlen 8192
    python3 scripts/profile_bwd.py --kernel-times --batch 2 --seqlen 8192
    ncu --nvtx --nvtx-include profiled/ -c 8 python3 scripts/profile_bwd.py --impl sdpa_cudnn --calls 2
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.impls import IMPLS  # noqa: E402
from gen.axes import DIRECTIONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="flashgen,sdpa_flash")
    parser.add_argument("--hdim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seqlen", type=int, default=4096)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--direction", default="bwd", choices=DIRECTIONS)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--kernel-times", action="store_true", help="print per-kernel CUDA times (torch profiler)")
    args = parser.parse_args()
    heads = 2048 // args.hdim
    q, k, v = (torch.randn(args.batch, args.seqlen, heads, args.hdim, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    for name in args.impl.split(","):
        run = IMPLS[name](q, k, v, args.causal, args.direction)
        if args.kernel_times:
            print_kernel_times(name, run, args.calls)
            continue
        # The first call warms up (compiles, allocates); the rest run inside an NVTX range named
        # `profiled`, so `ncu --nvtx --nvtx-include profiled/` takes exactly their kernels.
        run()
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_push("profiled")
        for _ in range(args.calls - 1):
            run()
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
        print(f"{name}: {args.calls} {args.direction} calls done", flush=True)


def print_kernel_times(name, run, calls: int) -> None:
    from torch.profiler import ProfilerActivity, profile
    run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            run()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    total = sum(e.device_time_total for e in events) / calls
    print(f"{name}: {total / 1000:.3f} ms of kernels per backward call")
    for e in sorted(events, key=lambda e: -e.device_time_total):
        print(f"  {e.device_time_total / calls / 1000:8.3f} ms  x{e.count // calls:<3} {e.key[:110]}")


if __name__ == "__main__":
    main()
