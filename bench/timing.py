"""Timing with CUDA events: warm up, then the median of many timed calls."""
from __future__ import annotations

import statistics

import torch


def median_ms(fn, warmup: int = 5, rounds: int = 15, round_ms: float = 20.0) -> float:
    """Median over `rounds` of the mean time per call of a batch of back-to-back calls.

    Calls are enqueued without synchronizing in between, so the GPU runs ahead of the host as
    in real use: host-side overhead (argument checks, dispatch) stays out of kernel timings as
    long as it is shorter than the kernel. Each batch lasts about `round_ms`.
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    batch = max(1, min(200, int(round_ms / max(start.elapsed_time(end), 1e-3))))
    per_call = []
    for _ in range(rounds):
        start.record()
        for _ in range(batch):
            fn()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) / batch)
    return statistics.median(per_call)


def attention_flops(batch, seqlen_q, seqlen_k, nheads, head_dim, causal, direction) -> float:
    """FlashAttention's convention: forward 4*b*sq*sk*h*d (halved when causal), backward 2.5x."""
    flops = 4.0 * batch * seqlen_q * seqlen_k * nheads * head_dim
    if causal:
        flops /= 2
    return flops * (2.5 if direction == "bwd" else 1.0)


def ceilings() -> dict:
    """The two roofs measured in this run: a large bf16 matmul and a device-to-device copy."""
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b)
    matmul_tflops = 2 * n**3 / ms / 1e9
    src = torch.empty(2**28, device="cuda", dtype=torch.float32).uniform_()   # 1 GiB
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    copy_gbs = 2 * src.numel() * 4 / ms / 1e6   # bytes read + written
    return {"matmul_bf16_tflops": matmul_tflops, "copy_gb_per_s": copy_gbs}
