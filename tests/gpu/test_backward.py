"""Backward numerics on the GPU: dq, dk, dv against the float32 reference by the same rule as
the forward (flashgen.reference). The kernel's fp32 buffers start as NaN, so an element it
fails to write fails the test."""
import math

import pytest
import torch

import flashgen
from flashgen import ops
from flashgen.reference import attention_reference_grads, check_against_reference
from tests.gpu.test_forward import CATALOG_HDIMS, DTYPES, ROUNDED_HDIMS, random_qkv, run_or_skip

pytestmark = pytest.mark.gpu

SEQLENS = ((1, 1), (17, 113), (113, 17), (1000, 1000), (2049, 1023))


def check_backward(q, k, v, causal, deterministic=False, arch=None):
    scale = 1.0 / math.sqrt(q.shape[-1])
    out, lse = run_or_skip(lambda: ops._forward(q, k, v, causal, scale, arch), arch)
    dout = torch.randn_like(out)
    got = run_or_skip(lambda: ops._backward(q, k, v, out, lse, dout, causal, scale, arch, deterministic,
                                            nan_outputs=True), arch)
    ref = attention_reference_grads(q, k, v, dout, causal, scale, upcast=True)
    same = attention_reference_grads(q, k, v, dout, causal, scale, upcast=False)
    for name, g, r, s in zip(("dq", "dk", "dv"), got, ref, same):
        assert g.shape == r.shape and g.dtype == q.dtype, name
        check_against_reference(name, g, r, s)
    return got


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("head_dim", CATALOG_HDIMS + ROUNDED_HDIMS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("seqlens", SEQLENS, ids=[f"{q}x{k}" for q, k in SEQLENS])
def test_backward_matches_reference(seqlens, causal, head_dim, dtype, arch):
    q, k, v = random_qkv(2, *seqlens, nheads=3, nheads_kv=3, head_dim=head_dim, dtype=dtype)
    check_backward(q, k, v, causal, arch=arch)


@pytest.mark.parametrize("head_dim", CATALOG_HDIMS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_backward_long_sequence(causal, head_dim, arch):
    q, k, v = random_qkv(1, 8192, 8192, nheads=1, nheads_kv=1, head_dim=head_dim, dtype=torch.bfloat16)
    check_backward(q, k, v, causal, arch=arch)


@pytest.mark.parametrize("nheads,nheads_kv", [(8, 1), (8, 2), (6, 1)], ids=["gqa8to1", "gqa4to1", "mqa6"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("head_dim", (64, 128, 256))
def test_backward_gqa(head_dim, causal, nheads, nheads_kv, arch):
    q, k, v = random_qkv(2, 300, 517, nheads, nheads_kv, head_dim, torch.bfloat16)
    check_backward(q, k, v, causal, arch=arch)


def test_backward_batch_of_several():
    q, k, v = random_qkv(5, 257, 391, 4, 2, 128, torch.float16)
    check_backward(q, k, v, causal=True)


# 96 and 192: head dims whose rows the preprocess splits into a non-power-of-two count of pieces.
@pytest.mark.parametrize("head_dim", (96, 128, 192, 256))
def test_deterministic_dq_is_bit_identical_and_correct(head_dim, arch):
    q, k, v = random_qkv(2, 1000, 1500, 4, 2, head_dim, torch.bfloat16)
    first = check_backward(q, k, v, causal=False, deterministic=True, arch=arch)
    scale = 1.0 / math.sqrt(head_dim)
    out, lse = ops._forward(q, k, v, False, scale, arch)
    torch.manual_seed(0)
    dout = torch.randn_like(out)
    runs = [ops._backward(q, k, v, out, lse, dout, False, scale, arch, deterministic=True) for _ in range(3)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)
    assert all(t.isfinite().all() for t in first)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("head_dim", (64, 256))
def test_deterministic_mode_with_more_key_blocks_than_splits(head_dim, causal, arch):
    # batch x nheads = 288 CTAs per key block fill any GPU up to 288 SMs, so there is one dQ
    # split per head and every key block of a head lands in it, one launch after another.
    q, k, v = random_qkv(2, 200, 333, 144, 72, head_dim, torch.bfloat16)
    check_backward(q, k, v, causal, deterministic=True, arch=arch)
    scale = 1.0 / math.sqrt(head_dim)
    out, lse = ops._forward(q, k, v, causal, scale, arch)
    dout = torch.randn_like(out)
    runs = [ops._backward(q, k, v, out, lse, dout, causal, scale, arch, deterministic=True) for _ in range(2)]
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_autograd_through_the_public_api_with_a_stride0_gradient():
    # out.sum().backward() hands the kernel a gradient whose strides are all 0.
    q, k, v = (t.requires_grad_() for t in random_qkv(2, 129, 257, 4, 4, 64, torch.bfloat16))
    flashgen.flash_attn_func(q, k, v, causal=True).sum().backward()
    ones = torch.ones(2, 129, 4, 64, device="cuda", dtype=torch.bfloat16)  # the gradient sum() hands back
    ref = attention_reference_grads(q, k, v, ones, True, 1 / 8, upcast=True)
    same = attention_reference_grads(q, k, v, ones, True, 1 / 8, upcast=False)
    for name, t, r, s in zip(("dq", "dk", "dv"), (q, k, v), ref, same):
        check_against_reference(name, t.grad, r, s)


def test_repeated_runs_give_the_same_output():
    q, k, v = random_qkv(2, 700, 700, 4, 4, 256, torch.bfloat16)
    assert torch.equal(flashgen.flash_attn_func(q, k, v, causal=True), flashgen.flash_attn_func(q, k, v, causal=True))
