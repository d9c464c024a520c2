"""flash_attn_varlen_func on the GPU: out, lse, dq, dk and dv of each packed sequence against the
float32 reference of that sequence alone, by the rule the fixed-length tests use
(flashgen.reference.check_against_reference), with empty query sequences, queries with no key,
more queries than keys, causal and not, GQA. The checks without a GPU: tests/cpu/test_varlen.py."""
import pytest
import torch

import flashgen
from flashgen.varlen import cu_seqlens_of
from flashgen.reference import (attention_reference, attention_reference_grads, check_against_reference,
                                same_dtype_error)
from tests.gpu.test_forward import CATALOG_HDIMS, random_qkv, run_or_skip

pytestmark = pytest.mark.gpu

LENGTHS_Q = [1, 17, 1000, 2049, 0, 513]
# Per sequence of LENGTHS_Q: keys as long, longer or shorter (causal rows of 2049 x 1023 see no
# key), keys for an empty query sequence, and 513 queries with no key at all.
LENGTHS_K = {"ragged": [1, 113, 1000, 1023, 7, 0], "longer": [64, 17, 1500, 2049, 300, 1]}


def cu_seqlens(lengths):
    return cu_seqlens_of(lengths, "cuda")


def packed_qkv(lengths_q, lengths_k, nheads, nheads_kv, head_dim, dtype):
    """q (total_q, nheads, head_dim), k and v (total_k, nheads_kv, head_dim), leaves that need grad."""
    q, k, v = random_qkv(1, sum(lengths_q), sum(lengths_k), nheads, nheads_kv, head_dim, dtype)
    return [t[0].detach().requires_grad_() for t in (q, k, v)]


def check_lse(name, lse, ref_lse):
    """lse against the reference's: +inf exactly where a row sees no key, else within 1e-3 (as
    tests/gpu/test_forward.py checks the fixed-length lse)."""
    finite = torch.isfinite(ref_lse)
    assert torch.equal(torch.isfinite(lse), finite), f"{name}: rows with no visible key must be +inf, others finite"
    assert (lse[~finite] == float("inf")).all(), name
    err = (lse[finite] - ref_lse[finite]).abs().max().item() if finite.any() else 0.0
    assert err <= 1e-3, f"{name}: max abs error {err:.3e}"


def check_packed(checks):
    """checks: (label, tensor name, got, ref, ref_same_dtype) per sequence. Each sequence is
    checked against its own reference, with the tolerance FlashAttention's rule gives the whole
    packed tensor: the same-dtype error is the max over all sequences of that tensor. (A
    sequence alone can have none: with one key, dS = P (dP - D) cancels exactly in the same-dtype
    computation, leaving the kernel's fp32 rounding, ~1e-5, against a bound of 1e-5.)"""
    baselines = {}
    for _, tensor, _, ref, same in checks:
        baselines[tensor] = max(baselines.get(tensor, 0.0), same_dtype_error(ref, same))
    for label, tensor, got, ref, same in checks:
        check_against_reference(label, got, ref, same, baseline=baselines[tensor])


def check_sequence(i, q, k, v, dout, out, lse, grads, causal, checks):
    """Sequence i's slices of the varlen results against the reference on that sequence alone,
    each as a batch of one: q, k, v, dout, out, dq, dk, dv (1, seqlen, heads, head_dim), lse
    (1, nheads, seqlen_q)."""
    ref, ref_lse = attention_reference(q, k, v, causal, upcast=True)
    same, _ = attention_reference(q, k, v, causal, upcast=False)
    check_against_reference(f"out, sequence {i}", out, ref, same)
    check_lse(f"lse, sequence {i}", lse, ref_lse)
    want = attention_reference_grads(q, k, v, dout, causal, upcast=True)
    want_same = attention_reference_grads(q, k, v, dout, causal, upcast=False)
    checks.extend((f"{name}, sequence {i}", name, got, r, s) for name, got, r, s in zip(("dq", "dk", "dv"), grads, want,
                                                                                          want_same))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("head_dim", CATALOG_HDIMS)
@pytest.mark.parametrize("nheads,nheads_kv", [(4, 4), (6, 2)], ids=["mha", "gqa"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("keys", LENGTHS_K)
def test_varlen_forward_and_backward_match_each_sequences_reference(keys, causal, nheads, nheads_kv, head_dim,
                                                                    dtype, arch):
    lengths_q, lengths_k = LENGTHS_Q, LENGTHS_K[keys]
    q, k, v = packed_qkv(lengths_q, lengths_k, nheads, nheads_kv, head_dim, dtype)
    out, lse, probs = run_or_skip(lambda: flashgen.flash_attn_varlen_func(
        q, k, v, cu_seqlens(lengths_q), cu_seqlens(lengths_k), max(lengths_q), max(lengths_k), causal=causal,
        return_attn_probs=True, arch=arch), arch)
    assert probs is None and out.shape == q.shape and out.dtype == dtype
    assert lse.shape == (nheads, sum(lengths_q)) and lse.dtype == torch.float32
    dout = torch.randn_like(out)
    dq, dk, dv = run_or_skip(lambda: torch.autograd.grad(out, (q, k, v), dout), arch)
    checks = []  # the gradients', checked once every sequence's reference is known
    q_start = k_start = 0
    for i, (len_q, len_k) in enumerate(zip(lengths_q, lengths_k)):
        rows_q, rows_k = slice(q_start, q_start + len_q), slice(k_start, k_start + len_k)
        q_start, k_start = rows_q.stop, rows_k.stop
        if len_q == 0:   # no query attends to these keys
            assert not dk[rows_k].any() and not dv[rows_k].any(), f"sequence {i}: dk, dv must be 0"
        elif len_k == 0:  # queries with no key: zero rows, lse +inf, no gradient
            assert not out[rows_q].any() and not dq[rows_q].any(), f"sequence {i}: out, dq must be 0"
            assert (lse[:, rows_q] == float("inf")).all(), f"sequence {i}: lse must be +inf"
        else:
            # Sequence i as a batch of one, the reference's layout.
            inputs = [t.detach()[None] for t in (q[rows_q], k[rows_k], v[rows_k], dout[rows_q])]
            grads = (dq[rows_q][None], dk[rows_k][None], dv[rows_k][None])
            check_sequence(i, *inputs, out[rows_q].detach()[None], lse[None, :, rows_q], grads, causal, checks)
    check_packed(checks)


@pytest.mark.parametrize("lengths_q,lengths_k", [([3, 0, 5], [0, 0, 0]), ([0, 0], [4, 7]), ([0], [0])],
                         ids=["no-keys", "no-queries", "nothing"])
def test_varlen_batch_without_keys_or_queries(lengths_q, lengths_k):
    # Queries with no key at all get zero rows and lse +inf; keys no query sees get zero
    # gradients; nothing is launched, so nothing can fault on an empty tensor.
    q, k, v = packed_qkv(lengths_q, lengths_k, 4, 2, 128, torch.bfloat16)
    out, lse, _ = flashgen.flash_attn_varlen_func(q, k, v, cu_seqlens(lengths_q), cu_seqlens(lengths_k),
                                                  max(lengths_q), max(lengths_k), causal=True, return_attn_probs=True)
    assert out.shape == q.shape and lse.shape == (4, sum(lengths_q))
    assert not out.any() and (lse == float("inf")).all()
    if out.numel():
        dq, dk, dv = torch.autograd.grad(out, (q, k, v), torch.randn_like(out), allow_unused=True)
        assert all(g is None or not g.any() for g in (dq, dk, dv))


def test_varlen_of_equal_lengths_matches_the_batched_call():
    # Three sequences of 300 queries and 500 keys are a batch of 3: the same kernels, one call per sequence.
    q, k, v = (t.detach() for t in packed_qkv([300] * 3, [500] * 3, 8, 2, 128, torch.bfloat16))
    cu_q, cu_k = cu_seqlens([300] * 3), cu_seqlens([500] * 3)
    out, lse, _ = flashgen.flash_attn_varlen_func(q, k, v, cu_q, cu_k, 300, 500, causal=True, return_attn_probs=True)
    batched, batched_lse, _ = flashgen.flash_attn_func(q.view(3, 300, 8, 128), k.view(3, 500, 2, 128),
                                                       v.view(3, 500, 2, 128), causal=True, return_attn_probs=True)
    torch.testing.assert_close(out, batched.reshape(900, 8, 128), rtol=0, atol=0)
    torch.testing.assert_close(lse, batched_lse.permute(1, 0, 2).reshape(8, 900), rtol=0, atol=0)


# The forward alone on each family's varlen kernel, at every head dim and with windows and
# softcap (the test above takes head dims 64 and 128, and without a family's varlen backward
# built, forced to that family it loops over the sequences). Outputs start as NaN: a
# row the kernel leaves unwritten fails, and so does one overwritten by the next sequence's tile
# (the sm90 O store stops at each sequence's end). Windows and softcap need kernels built with
# those features too; a family without the kernel skips.
@pytest.mark.parametrize("head_dim", CATALOG_HDIMS)
@pytest.mark.parametrize("nheads,nheads_kv", [(4, 4), (6, 2)], ids=["mha", "gqa"])
@pytest.mark.parametrize("causal,window_size,softcap", [(False, (-1, -1), 0.0), (True, (-1, -1), 0.0),
                                                       (False, (96, 32), 0.0), (True, (-1, -1), 30.0)],
                         ids=["full", "causal", "window", "causal-softcap"])
@pytest.mark.parametrize("keys", LENGTHS_K)
def test_varlen_forward_of_each_family_matches_each_sequences_reference(keys, causal, window_size, softcap, nheads,
                                                                        nheads_kv, head_dim, arch):
    from flashgen import ops
    from flashgen.inputs import mask_args
    lengths_q, lengths_k = LENGTHS_Q, LENGTHS_K[keys]
    q, k, v = (t.detach() for t in packed_qkv(lengths_q, lengths_k, nheads, nheads_kv, head_dim, torch.bfloat16))
    causal_k, left, right = mask_args(causal, window_size, seqlen_q=max(lengths_q), seqlen_k=max(lengths_k))
    scale = head_dim ** -0.5
    out, lse = run_or_skip(lambda: ops._varlen_forward(
        q, k, v, cu_seqlens(lengths_q), cu_seqlens(lengths_k), max(lengths_q), max(lengths_k), causal_k, scale, arch,
        nan_outputs=True, window_left=left, window_right=right, softcap=softcap), arch)
    q_start = k_start = 0
    for i, (len_q, len_k) in enumerate(zip(lengths_q, lengths_k)):
        rows_q, rows_k = slice(q_start, q_start + len_q), slice(k_start, k_start + len_k)
        q_start, k_start = rows_q.stop, rows_k.stop
        if len_q == 0:
            continue
        if len_k == 0:
            assert not out[rows_q].any() and (lse[:, rows_q] == float("inf")).all(), f"sequence {i}: no keys"
            continue
        seq = [t[None] for t in (q[rows_q], k[rows_k], v[rows_k])]
        ref, ref_lse = attention_reference(*seq, causal, scale, upcast=True, window_size=window_size, softcap=softcap)
        same, _ = attention_reference(*seq, causal, scale, upcast=False, window_size=window_size, softcap=softcap)
        check_against_reference(f"out, sequence {i}", out[rows_q][None], ref, same)
        check_lse(f"lse, sequence {i}", lse[None, :, rows_q], ref_lse)
    assert q_start == out.shape[0] and not out.isnan().any() and not lse.isnan().any()


# The backward alone on each family's varlen kernel at every head dim (the sm90 backward: the
# warp-specialized kernel at 64 and 128, the head-dim-split one at 256), on that family's varlen
# forward's out and lse. dq, dk and dv start as NaN: a row the kernel leaves unwritten fails,
# and so does one overwritten by the next sequence's tile (the sm90 dK/dV store stops at each
# sequence's end). Deterministic mode launches the key blocks a few at a time (n_block_offset).
@pytest.mark.parametrize("head_dim", CATALOG_HDIMS)
@pytest.mark.parametrize("nheads,nheads_kv", [(4, 4), (6, 2)], ids=["mha", "gqa"])
@pytest.mark.parametrize("causal,deterministic", [(False, False), (True, False), (True, True)],
                         ids=["full", "causal", "causal-deterministic"])
@pytest.mark.parametrize("keys", LENGTHS_K)
def test_varlen_backward_of_each_family_matches_each_sequences_reference(keys, causal, deterministic, nheads,
                                                                         nheads_kv, head_dim, arch):
    from flashgen import ops
    lengths_q, lengths_k = LENGTHS_Q, LENGTHS_K[keys]
    q, k, v = (t.detach() for t in packed_qkv(lengths_q, lengths_k, nheads, nheads_kv, head_dim, torch.bfloat16))
    cu_q, cu_k = cu_seqlens(lengths_q), cu_seqlens(lengths_k)
    scale = head_dim ** -0.5
    out, lse = run_or_skip(lambda: ops._varlen_forward(q, k, v, cu_q, cu_k, max(lengths_q), max(lengths_k), causal,
                                                       scale, arch), arch)
    dout = torch.randn_like(out)
    dq, dk, dv = run_or_skip(lambda: ops._varlen_backward(
        q, k, v, out, lse, dout, cu_q, cu_k, max(lengths_q), max(lengths_k), causal, scale, arch, deterministic,
        nan_outputs=True), arch)
    checks = []
    q_start = k_start = 0
    for i, (len_q, len_k) in enumerate(zip(lengths_q, lengths_k)):
        rows_q, rows_k = slice(q_start, q_start + len_q), slice(k_start, k_start + len_k)
        q_start, k_start = rows_q.stop, rows_k.stop
        if len_q == 0:
            assert not dk[rows_k].any() and not dv[rows_k].any(), f"sequence {i}: dk, dv must be 0"
            continue
        if len_k == 0:
            assert not dq[rows_q].any(), f"sequence {i}: dq must be 0"
            continue
        seq = [t[None] for t in (q[rows_q], k[rows_k], v[rows_k], dout[rows_q])]
        want = attention_reference_grads(*seq, causal, scale, upcast=True)
        want_same = attention_reference_grads(*seq, causal, scale, upcast=False)
        for name, got, r, s in zip(("dq", "dk", "dv"), (dq[rows_q], dk[rows_k], dv[rows_k]), want, want_same):
            checks.append((f"{name}, sequence {i}", name, got[None], r, s))
    check_packed(checks)
    assert (q_start, k_start) == (q.shape[0], k.shape[0])
    assert not dq.isnan().any() and not dk.isnan().any() and not dv.isnan().any()
