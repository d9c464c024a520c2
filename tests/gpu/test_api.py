"""flash_attn_func's FlashAttention arguments on the GPU: what return_attn_probs returns (values
and gradients), window_size=(-1, 0) as causal and a window over every key as full attention,
a sliding window and a softcap reaching the kernels, and the unsupported arguments refused on
real CUDA tensors. Without a GPU: tests/cpu/test_api.py. The window and softcap numerics:
tests/gpu/test_features.py."""
import pytest
import torch

import flashgen
from flashgen.reference import attention_reference, attention_reference_grads, check_against_reference
from tests.gpu.test_forward import random_qkv, run_or_skip
from tests.gpu.test_varlen import check_lse

pytestmark = pytest.mark.gpu


def test_return_attn_probs_returns_out_lse_and_none(arch):
    q, k, v = random_qkv(2, 333, 517, 8, 2, 128, torch.bfloat16)
    out, lse, probs = run_or_skip(
        lambda: flashgen.flash_attn_func(q, k, v, causal=True, return_attn_probs=True, arch=arch), arch)
    assert probs is None and lse.shape == (2, 8, 333) and lse.dtype == torch.float32
    out_lse, lse_lse = flashgen.flash_attn_func(q, k, v, causal=True, return_lse=True, arch=arch)
    assert torch.equal(out, out_lse) and torch.equal(lse, lse_lse)
    ref, ref_lse = attention_reference(q, k, v, causal=True)
    same, _ = attention_reference(q, k, v, causal=True, upcast=False)
    check_against_reference("out", out, ref, same)
    check_lse("lse", lse, ref_lse)


def test_gradients_flow_through_return_attn_probs():
    q, k, v = (t.requires_grad_() for t in random_qkv(2, 257, 129, 4, 4, 64, torch.float16))
    out, lse, _ = flashgen.flash_attn_func(q, k, v, 0.0, None, True, return_attn_probs=True)
    assert out.requires_grad and not lse.requires_grad   # FlashAttention's softmax_lse has no gradient either
    dout = torch.randn_like(out)
    out.backward(dout)
    want = attention_reference_grads(q, k, v, dout, causal=True, upcast=True)
    want_same = attention_reference_grads(q, k, v, dout, causal=True, upcast=False)
    for name, t, r, s in zip(("dq", "dk", "dv"), (q, k, v), want, want_same):
        check_against_reference(name, t.grad, r, s)


def test_window_minus_one_zero_is_causal_and_a_window_over_every_key_is_full():
    q, k, v = random_qkv(2, 300, 400, 4, 4, 64, torch.bfloat16)
    causal, full = flashgen.flash_attn_func(q, k, v, causal=True), flashgen.flash_attn_func(q, k, v)
    assert not torch.equal(causal, full)
    assert torch.equal(flashgen.flash_attn_func(q, k, v, window_size=(-1, 0)), causal)
    assert torch.equal(flashgen.flash_attn_func(q, k, v, causal=True, window_size=(-1, 0)), causal)
    assert torch.equal(flashgen.flash_attn_func(q, k, v, window_size=(399, 299)), full)   # reaches every key


@pytest.mark.parametrize("kwargs", [{"window_size": (128, 0)}, {"softcap": 30.0},
                                    {"window_size": (64, 64), "softcap": 50.0, "causal": True}],
                         ids=["window", "softcap", "both"])
def test_window_and_softcap_run_and_change_the_result(kwargs):
    q, k, v = random_qkv(1, 512, 512, 4, 4, 64, torch.bfloat16)
    q = q * 20   # logits past the softcap
    try:
        out, lse = flashgen.flash_attn_func(q, k, v, return_lse=True, **kwargs)
    except flashgen.KernelNotBuiltError as exc:
        pytest.skip(str(exc).split(". ")[0])
    plain = flashgen.flash_attn_func(q, k, v, causal=kwargs.get("causal", False))
    assert not torch.equal(out, plain)
    ref, ref_lse = attention_reference(q, k, v, **kwargs)
    same, _ = attention_reference(q, k, v, upcast=False, **kwargs)
    check_against_reference("out", out, ref, same)
    assert (lse - ref_lse).abs().max().item() <= 1e-3 + kwargs.get("softcap", 0.0) * 2.0 ** -10


@pytest.mark.parametrize("argument,value", [("dropout_p", 0.1), ("alibi_slopes", "tensor")])
def test_unsupported_arguments_raise_on_cuda_tensors(argument, value):
    q, k, v = random_qkv(1, 512, 512, 4, 4, 64, torch.bfloat16)
    if value == "tensor":
        value = torch.rand(4, device="cuda", dtype=torch.float32)
    with pytest.raises(NotImplementedError, match=f"{argument}=.* is not supported yet"):
        flashgen.flash_attn_func(q, k, v, **{argument: value})
