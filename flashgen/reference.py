"""Plain-PyTorch attention with flashgen's exact semantics, for tests and benchmarks.

Same mask rule as the kernels (FlashAttention's: causal and sliding windows aligned to the
bottom-right corner), softcapping as FlashAttention/Gemma 2 (scores capped at
softcap * tanh(score / softcap) before the softmax), GQA/MQA by repeating k/v heads, and a zero
output row (lse +inf) for a query that sees no key.
"""
from __future__ import annotations

import math

import torch


def visible_keys(seqlen_q: int, seqlen_k: int, causal: bool, device, window_size=(-1, -1)) -> torch.Tensor:
    """(seqlen_q, seqlen_k) bool: may query i attend to key j? FlashAttention's rule: iff
    i + seqlen_k - seqlen_q - left <= j <= i + seqlen_k - seqlen_q + right, a bound of -1
    unbounded on its side, and causal=True sets right to 0."""
    left, right = window_size
    if causal:
        right = 0
    rows = torch.arange(seqlen_q, device=device)[:, None]
    cols = torch.arange(seqlen_k, device=device)[None, :]
    diagonal = rows + (seqlen_k - seqlen_q)   # the key aligned with query i
    visible = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool, device=device)
    if left >= 0:
        visible &= cols >= diagonal - left
    if right >= 0:
        visible &= cols <= diagonal + right
    return visible


def capped_scores(scores: torch.Tensor, softcap: float) -> torch.Tensor:
    """softcap * tanh(scores / softcap), or the scores unchanged for softcap 0."""
    return scores if softcap == 0 else torch.tanh(scores / softcap) * softcap


def attention_reference(q, k, v, causal=False, softmax_scale=None, upcast=True, window_size=(-1, -1), softcap=0.0):
    """Returns (out, lse). upcast=True computes in float32 (the reference); upcast=False in the
    inputs' dtype (the "same-dtype PyTorch" baseline the error rule compares against).
    window_size: (left, right) by visible_keys' rule; softcap > 0 caps the scaled scores before
    the mask and the softmax, and lse is the log-sum-exp of the capped scores."""
    dtype = q.dtype
    if upcast:
        q, k, v = q.float(), k.float(), v.float()
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    groups = q.shape[2] // k.shape[2]
    k = k.repeat_interleave(groups, dim=2)
    v = v.repeat_interleave(groups, dim=2)
    scores = capped_scores(torch.einsum("bqhd,bkhd->bhqk", q * scale, k), softcap)
    visible = visible_keys(q.shape[1], k.shape[1], causal, q.device, window_size)
    scores = scores.masked_fill(~visible, float("-inf"))
    lse = torch.logsumexp(scores.float(), dim=-1)                       # (b, h, q): -inf if no key
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)               # empty rows -> 0, not NaN
    out = torch.einsum("bhqk,bkhd->bqhd", probs, v)
    return out.to(dtype), lse.masked_fill(lse == float("-inf"), float("inf"))


def attention_reference_grads(q, k, v, dout, causal=False, softmax_scale=None, upcast=True, window_size=(-1, -1),
                              softcap=0.0):
    """[dq, dk, dv] of attention_reference for the output gradient dout, by autograd: in
    float32 (upcast, the reference) or in the inputs' dtype (the same-dtype baseline)."""
    leaves = [(t.detach().float() if upcast else t.detach()).requires_grad_() for t in (q, k, v)]
    out, _ = attention_reference(*leaves, causal=causal, softmax_scale=softmax_scale, upcast=False,
                                 window_size=window_size, softcap=softcap)
    out.backward(dout.float() if upcast else dout)
    return [t.grad for t in leaves]


class NumericsError(AssertionError):
    pass


def same_dtype_error(ref: torch.Tensor, ref_same_dtype: torch.Tensor) -> float:
    """The same-dtype computation's max error against the float32 reference."""
    return (ref_same_dtype.float() - ref.float()).abs().max().item()


def error_tolerance(ref: torch.Tensor, ref_same_dtype: torch.Tensor, atol: float = 1e-5,
                    baseline: float | None = None) -> tuple[float, float]:
    """FlashAttention's bound on a kernel's max error, with the same-dtype computation's max
    error it derives from: (2 x that error + atol, that error). `baseline` overrides that error
    (a packed batch checked sequence by sequence passes the whole batch's, since the rule
    measures over the whole output tensor)."""
    if baseline is None:
        baseline = same_dtype_error(ref, ref_same_dtype)
    return 2 * baseline + atol, baseline


def check_against_reference(name: str, got: torch.Tensor, ref: torch.Tensor, ref_same_dtype: torch.Tensor,
                            atol: float = 1e-5, baseline: float | None = None) -> dict:
    """FlashAttention's rule: max|got - ref| <= 2 * max|ref_same_dtype - ref| + atol, with ref in
    float32. NaN or Inf never passes. Raises NumericsError naming the fraction of mismatched
    elements and the worst position; returns the error figures otherwise."""
    got32, ref32 = got.float(), ref.float()
    tolerance, baseline = error_tolerance(ref32, ref_same_dtype, atol, baseline)
    bad_values = ~torch.isfinite(got32)
    if bad_values.any():
        first = tuple(int(i) for i in torch.nonzero(bad_values)[0])
        raise NumericsError(f"{name}: {bad_values.sum().item()} of {got.numel()} elements are NaN/Inf "
                            f"(first at {first})")
    err = (got32 - ref32).abs()
    worst = err.max().item()
    if worst > tolerance:
        worst_at = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
        fraction = (err > tolerance).float().mean().item()
        raise NumericsError(f"{name}: max abs error {worst:.3e} > tolerance {tolerance:.3e} "
                            f"(2 x same-dtype error {baseline:.3e} + {atol}); {fraction:.2%} of elements "
                            f"mismatched; worst at {worst_at}: got {got32[worst_at].item():.5f}, "
                            f"reference {ref32[worst_at].item():.5f}")
    return {"max_error": worst, "tolerance": tolerance}
