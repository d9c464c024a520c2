"""flash_attn_func: the user-facing op."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from flashgen._ext import extension
from flashgen.dispatch import choose_kernel
from flashgen.errors import KernelNotBuiltError
from flashgen.inputs import check_attention_inputs

_ALIGN_ELEMENTS = 8  # kernels load 16 bytes per access: pointers and strides must allow it


def _kernel_ready(t: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Zero-pad the head dim to the kernel's, and copy if 16-byte loads would be misaligned."""
    if t.shape[-1] != head_dim:
        t = F.pad(t, (0, head_dim - t.shape[-1]))
    aligned = t.data_ptr() % 16 == 0 and all(s % _ALIGN_ELEMENTS == 0 for s in t.stride()[:-1])
    return t if aligned else t.contiguous()


def _forward(q, k, v, causal, softmax_scale, arch, nan_outputs=False):
    """Run the forward kernel. nan_outputs (tests only) fills out and lse with NaN first, so an
    element the kernel fails to write shows up as NaN instead of stale memory."""
    head_dim = q.shape[-1]
    key = choose_kernel("fwd", head_dim, q.dtype, torch.cuda.get_device_capability(q.device), arch)
    q_k, k_k, v_k = (_kernel_ready(t, key.hdim) for t in (q, k, v))
    batch, seqlen_q, nheads, _ = q.shape
    alloc = torch.full if nan_outputs else lambda shape, _, **kw: torch.empty(shape, **kw)
    out = alloc(q_k.shape, float("nan"), dtype=q.dtype, device=q.device)
    lse = alloc((batch, nheads, seqlen_q), float("nan"), dtype=torch.float32, device=q.device)
    extension().fwd(key.name, q_k, k_k, v_k, out, lse, softmax_scale, causal)
    if key.hdim != head_dim:
        out = out[..., :head_dim]
    return out, lse


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, softmax_scale, arch):
        out, lse = _forward(q, k, v, causal, softmax_scale, arch)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.softmax_scale, ctx.arch = causal, softmax_scale, arch
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q = ctx.saved_tensors[0]
        # Raises KernelNotBuiltError naming the backward kernel and how to get it.
        choose_kernel("bwd", q.shape[-1], q.dtype, torch.cuda.get_device_capability(q.device), ctx.arch)
        raise KernelNotBuiltError("flashgen backward is not implemented in this build")


def flash_attn_func(q, k, v, causal: bool = False, softmax_scale: float | None = None,
                    return_lse: bool = False, *, arch: str | None = None):
    """Attention softmax(q kᵀ · scale) v, FlashAttention style.

    q: (batch, seqlen_q, nheads, head_dim); k, v: (batch, seqlen_k, nheads_kv, head_dim), with
    nheads a multiple of nheads_kv (GQA/MQA). float16 or bfloat16 CUDA tensors whose last dim
    is contiguous. causal masks key j for query i unless j <= i + seqlen_k - seqlen_q (aligned
    to the bottom-right corner); a query that sees no key gets a zero output row.
    softmax_scale defaults to 1/sqrt(head_dim). return_lse also returns the log-sum-exp of
    each row, float32 (batch, nheads, seqlen_q). arch ("sm80", "sm90") forces a kernel family
    (also FLASHGEN_ARCH); by default the best compiled family for the GPU is used.
    """
    check_attention_inputs(q, k, v, causal, softmax_scale)
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(q.shape[-1])
    out, lse = _FlashAttention.apply(q, k, v, causal, float(softmax_scale), arch)
    return (out, lse) if return_lse else out
