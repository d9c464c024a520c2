#!/usr/bin/env python3
"""What deterministic=True costs in the backward: median time of one backward call with and
without it, and the extra memory the dQ splits take, per head dim (bf16, 2048/head_dim heads).

    python3 scripts/deterministic_cost.py --hdim 128,256 --batch 2 --seqlen 8192
"""
import argparse
import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import flashgen  # noqa: E402
from bench.impls import direction_call  # noqa: E402
from bench.timing import attention_flops, median_ms  # noqa: E402


def backward_call(head_dim, batch, seqlen, causal, deterministic):
    heads = 2048 // head_dim
    q, k, v = (torch.randn(batch, seqlen, heads, head_dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    forward = functools.partial(flashgen.flash_attn_func, q, k, v, causal=causal, deterministic=deterministic)
    return direction_call(forward, (q, k, v), "bwd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hdim", default="128,256")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seqlen", type=int, default=8192)
    args = parser.parse_args()
    print(f"{torch.cuda.get_device_name()}, bf16, batch {args.batch}, seqlen {args.seqlen}, 2048/head_dim heads")
    print("| head dim | causal | default ms | deterministic ms | slowdown | default TFLOPS | peak memory, default / deterministic |")
    print("|---|---|---|---|---|---|---|")
    for head_dim in (int(h) for h in args.hdim.split(",")):
        for causal in (False, True):
            times, peaks = [], []
            for deterministic in (False, True):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                run = backward_call(head_dim, args.batch, args.seqlen, causal, deterministic)
                times.append(median_ms(run))
                peaks.append(torch.cuda.max_memory_allocated() / 2**30)
                del run
            flops = attention_flops(args.batch, args.seqlen, args.seqlen, 2048 // head_dim, head_dim, causal, "bwd")
            print(f"| {head_dim} | {'yes' if causal else 'no'} | {times[0]:.3f} | {times[1]:.3f} | "
                  f"{times[1] / times[0]:.2f}x | {flops / times[0] / 1e9:.0f} | {peaks[0]:.2f} / {peaks[1]:.2f} GiB |",
                  flush=True)


if __name__ == "__main__":
    main()
