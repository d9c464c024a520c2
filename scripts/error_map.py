#!/usr/bin/env python3
"""Where a kernel is wrong: for one shape, the error of out, dq, dk and dv against the float32
reference, as a grid of (row block x column block) cells, so a bad tile, a bad half of the
head dim or an unwritten ragged edge shows at a glance.

    python3 scripts/error_map.py --hdim 256 --seqlen-q 300 --seqlen-k 200 [--causal] [--arch sm90]

Each cell is the cell's worst |kernel - reference| divided by the tolerance (FlashAttention's
rule, flashgen.reference): '.' is within tolerance, a digit is 1-9x over, '#' is 10x or more,
'N' holds NaN/Inf. Rows are sequence positions of head 0, batch 0 (query rows for out/dq, key
rows for dk/dv); columns are head-dim positions.
"""
import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from flashgen import ops  # noqa: E402
from flashgen.dispatch import TORCH_DTYPES as DTYPES  # noqa: E402
from gen.axes import ARCHS  # noqa: E402
from flashgen.reference import attention_reference, attention_reference_grads, error_tolerance  # noqa: E402


def cell_char(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "N"
    if ratio <= 1:
        return "."
    return "#" if ratio >= 10 else str(int(ratio))


def print_map(name, got, ref, same, row_block, col_block):
    """got, ref, same: (seqlen, head_dim) of one head."""
    tolerance, _ = error_tolerance(ref, same)
    err = (got.float() - ref.float()).abs()
    err[~torch.isfinite(got.float())] = float("inf")
    rows, cols = err.shape
    worst = err.max().item()
    print(f"{name}: worst {worst:.3e}, tolerance {tolerance:.3e}, "
          f"{(err > tolerance).float().mean().item():.2%} over; cells of {row_block} x {col_block}")
    for r0 in range(0, rows, row_block):
        line = "".join(cell_char(err[r0:r0 + row_block, c0:c0 + col_block].max().item() / tolerance)
                       for c0 in range(0, cols, col_block))
        print(f"  rows {r0:5d}-{min(r0 + row_block, rows) - 1:5d} {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hdim", type=int, default=256)
    parser.add_argument("--seqlen-q", type=int, default=300)
    parser.add_argument("--seqlen-k", type=int, default=200)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--kv-heads", type=int, default=None)
    parser.add_argument("--dtype", choices=DTYPES, default="bf16")
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--arch", default=None, help=f"force a kernel family ({', '.join(ARCHS)})")
    parser.add_argument("--row-block", type=int, default=32)
    parser.add_argument("--col-block", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    dtype = DTYPES[args.dtype]
    kv_heads = args.kv_heads or args.heads
    q = torch.randn(1, args.seqlen_q, args.heads, args.hdim, device="cuda", dtype=dtype)
    k, v = (torch.randn(1, args.seqlen_k, kv_heads, args.hdim, device="cuda", dtype=dtype) for _ in range(2))
    scale = 1.0 / math.sqrt(args.hdim)
    out, lse = ops._forward(q, k, v, args.causal, scale, args.arch, nan_outputs=True)
    dout = torch.randn_like(out)
    grads = ops._backward(q, k, v, out, lse, dout, args.causal, scale, args.arch, nan_outputs=True)
    torch.cuda.synchronize()
    ref_out, _ = attention_reference(q, k, v, args.causal, scale, upcast=True)
    same_out, _ = attention_reference(q, k, v, args.causal, scale, upcast=False)
    ref_grads = attention_reference_grads(q, k, v, dout, args.causal, scale, upcast=True)
    same_grads = attention_reference_grads(q, k, v, dout, args.causal, scale, upcast=False)
    print(f"hdim {args.hdim}, {args.dtype}, seqlens {args.seqlen_q} x {args.seqlen_k}, heads {args.heads}/{kv_heads}, "
          f"causal {args.causal}, arch {args.arch or 'auto'}")
    for name, got, ref, same in zip(("out", "dq", "dk", "dv"), (out, *grads), (ref_out, *ref_grads),
                                    (same_out, *same_grads)):
        print_map(name, got[0, :, 0], ref[0, :, 0], same[0, :, 0], args.row_block, args.col_block)


if __name__ == "__main__":
    main()
