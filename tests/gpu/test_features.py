"""Sliding windows (window_size) and softcapping (softcap) on the GPU: forward and backward
numerics against the float32 reference (flashgen.reference's rule), on the kernels built with the
window and softcap features.

The cases: windows (0, 0), (-1, 0), (128, 64), (4096, 0), one-sided ones, with and without
causal; a window larger than the sequence; softcap 30 and 50 with logits scaled up to ~100;
softcap with a window; GQA; odd and unequal seqlens; deterministic dQ under a window; a kernel
built with both features running calls that use fewer; varlen with a window and a softcap.
Each case runs the kernels a call needs (flashgen.inputs.mask_args normalizes the window,
flashgen.ops.required_features names the features) and skips when this build lacks them; the
feature build is bench/tuning/features.yaml:

    python build.py --catalog bench/tuning/features.yaml --build-dir build_features
    FLASHGEN_BUILD_DIR=build_features python -m pytest tests/gpu/test_features.py

The reference gets the window and causal flag as the user wrote them, the kernels the
normalized ones, so the normalization is checked too. Outputs start as NaN (nan_outputs).
"""
import math

import pytest
import torch

import flashgen
from flashgen import dispatch, ops
from flashgen.inputs import mask_args
from flashgen.reference import attention_reference, attention_reference_grads, check_against_reference
from tests.gpu.test_forward import CATALOG_HDIMS, random_qkv
from tests.gpu.test_varlen import cu_seqlens, packed_qkv

pytestmark = pytest.mark.gpu

HEAD_DIMS = CATALOG_HDIMS   # every one: a tuning catalog's feature variants at 96 / 192 must run too
DTYPES = (torch.float16, torch.bfloat16)
DTYPE_IDS = ["fp16", "bf16"]
LOGIT_SCALE = 25.0   # q is scaled by this in softcap cases: logits (q.k / sqrt(d), std 25) reach ~100


def mask_and_features(causal, window_size, softcap, seqlen_q, seqlen_k):
    """What flash_attn_func runs for the call: (causal, window_left, window_right), features."""
    causal, left, right = mask_args(causal, window_size, seqlen_q, seqlen_k)
    return (causal, left, right), ops.required_features(left, right, softcap)


def kernels_or_skip(head_dim, dtype, features, arch, directions=("fwd", "bwd")):
    """Skip the case unless this build holds its kernels (tests/conftest.py sets FLASHGEN_JIT=0,
    so a kernel the build lacks raises instead of compiling on first use)."""
    capability = torch.cuda.get_device_capability()
    for direction in directions:
        try:
            dispatch.choose_kernel(direction, head_dim, dtype, capability, arch, features)
        except flashgen.KernelNotBuiltError as exc:
            pytest.skip(f"{arch or 'auto'}: {str(exc).split('. ')[0]}")


def lse_tolerance(softcap: float) -> float:
    """The lse bound: 1e-3 as tests/gpu/test_forward.py, plus, with softcap, the kernels' tanh
    (tanh.approx.f32, relative error about 2^-11: the capped scores, and so the lse, are off by up
    to softcap * 2^-11; twice that here)."""
    return 1e-3 + softcap * 2.0 ** -10


def grad_atol(softcap: float) -> float:
    """The gradients' absolute slack: the rule's 1e-5, plus FlashAttention's own 3e-4 with
    softcap (its tests add `0 if softcap == 0 else 3e-4` to dq/dk/dv atol): the backward
    recomputes tanh.approx scores from a differently ordered S, and where the exact gradient
    cancels to zero (one visible key per query: dS = P (dP - D) = 0) the kernels leave ~1e-4."""
    return 1e-5 + (3e-4 if softcap else 0.0)


def check_lse(name, lse, ref_lse, atol):
    """+inf exactly where a row sees no key (a window can leave rows without one), else within atol."""
    finite = torch.isfinite(ref_lse)
    assert torch.equal(torch.isfinite(lse), finite), f"{name}: rows with no visible key must be +inf, others finite"
    assert (lse[~finite] == float("inf")).all(), name
    err = (lse[finite] - ref_lse[finite]).abs().max().item() if finite.any() else 0.0
    assert err <= atol, f"{name}: max abs error {err:.3e} > {atol:.3e}"


def make_inputs(batch, seqlen_q, seqlen_k, nheads, nheads_kv, head_dim, dtype, softcap):
    q, k, v = random_qkv(batch, seqlen_q, seqlen_k, nheads, nheads_kv, head_dim, dtype)
    if softcap:
        q = (q.float() * LOGIT_SCALE).to(dtype)
    return q, k, v


def check_features(q, k, v, causal=False, window_size=(-1, -1), softcap=0.0, arch=None, backward=True,
                   deterministic=False, kernel_mask=None):
    """Forward (and backward) of the call through ops._forward/_backward, each output NaN-filled
    first, against the float32 reference by the rule. kernel_mask overrides the
    (causal, window_left, window_right) the kernels get (else mask_args's). Returns the outputs."""
    head_dim, seqlen_q, seqlen_k = q.shape[-1], q.shape[1], k.shape[1]
    mask, features = mask_and_features(causal, window_size, softcap, seqlen_q, seqlen_k)
    if kernel_mask is not None:
        mask = kernel_mask
        features = ops.required_features(mask[1], mask[2], softcap)
    kernels_or_skip(head_dim, q.dtype, features, arch, ("fwd", "bwd") if backward else ("fwd",))
    run_causal, left, right = mask
    scale = 1.0 / math.sqrt(head_dim)
    options = dict(window_left=left, window_right=right, softcap=float(softcap))
    out, lse = ops._forward(q, k, v, run_causal, scale, arch, nan_outputs=True, **options)
    reference = dict(causal=causal, softmax_scale=scale, window_size=window_size, softcap=softcap)
    ref, ref_lse = attention_reference(q, k, v, upcast=True, **reference)
    same, _ = attention_reference(q, k, v, upcast=False, **reference)
    check_against_reference("out", out, ref, same)
    check_lse("lse", lse, ref_lse, lse_tolerance(softcap))
    if not backward:
        return out, lse
    dout = torch.randn_like(out)
    grads = ops._backward(q, k, v, out, lse, dout, run_causal, scale, arch, deterministic, nan_outputs=True,
                          **options)
    want = attention_reference_grads(q, k, v, dout, upcast=True, **reference)
    want_same = attention_reference_grads(q, k, v, dout, upcast=False, **reference)
    for name, got, r, s in zip(("dq", "dk", "dv"), grads, want, want_same):
        assert got.shape == r.shape and got.dtype == q.dtype, name
        check_against_reference(name, got, r, s, atol=grad_atol(softcap))
    return out, lse, dout, grads


# --- sliding windows -------------------------------------------------------------------------

WINDOWS = [(0, 0), (-1, 0), (128, 64), (4096, 0), (200, -1), (-1, 96)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("window_size", WINDOWS, ids=[f"w{l}_{r}" for l, r in WINDOWS])
def test_windows(window_size, causal, head_dim, dtype, arch):
    # 1000 x 1000: (4096, 0) reaches every key to the left (causal); 700 x 1300 below does not.
    q, k, v = make_inputs(2, 1000, 1000, 4, 4, head_dim, dtype, 0.0)
    check_features(q, k, v, causal, window_size, arch=arch)


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("window_size", WINDOWS, ids=[f"w{l}_{r}" for l, r in WINDOWS])
@pytest.mark.parametrize("seqlens", [(700, 1300), (1300, 700)], ids=["700x1300", "1300x700"])
def test_windows_unequal_seqlens(seqlens, window_size, causal, head_dim, arch):
    # 1300 queries x 700 keys: the first rows of right-bounded windows see no key (lse +inf).
    q, k, v = make_inputs(1, *seqlens, 4, 4, head_dim, torch.bfloat16, 0.0)
    check_features(q, k, v, causal, window_size, arch=arch)


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_window_larger_than_the_sequence(head_dim, causal, arch):
    q, k, v = make_inputs(2, 300, 500, 4, 4, head_dim, torch.bfloat16, 0.0)
    # Through flash_attn_func: normalized away, the same as no window.
    try:
        wide = flashgen.flash_attn_func(q, k, v, causal=causal, window_size=(5000, 3000), arch=arch)
        plain = flashgen.flash_attn_func(q, k, v, causal=causal, arch=arch)
    except flashgen.KernelNotBuiltError as exc:
        pytest.skip(str(exc).split(". ")[0])
    assert torch.equal(wide, plain)
    # The window kernels given the bounds as they are: they mask nothing.
    check_features(q, k, v, causal, (5000, 3000), arch=arch, kernel_mask=(causal, 5000, -1 if causal else 3000))


# --- softcapping -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("softcap", [30.0, 50.0])
def test_softcap_with_large_logits(softcap, causal, head_dim, dtype, arch):
    q, k, v = make_inputs(2, 1000, 1000, 4, 4, head_dim, dtype, softcap)
    logits = torch.einsum("bqhd,bkhd->bhqk", q[:, :64].float(), k[:, :64].float()) / math.sqrt(head_dim)
    assert logits.abs().max().item() > 1.5 * softcap, "the logits must reach well past the cap"
    check_features(q, k, v, causal, softcap=softcap, arch=arch)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("causal,window_size,softcap", [(False, (128, 64), 30.0), (True, (256, -1), 50.0),
                                                        (False, (0, 0), 50.0), (False, (-1, 32), 30.0)],
                         ids=["w128_64-cap30", "causal-w256-cap50", "w0_0-cap50", "w-1_32-cap30"])
def test_softcap_and_window(causal, window_size, softcap, head_dim, dtype, arch):
    q, k, v = make_inputs(2, 777, 1000, 4, 4, head_dim, dtype, softcap)
    check_features(q, k, v, causal, window_size, softcap, arch=arch)


# --- GQA, odd seqlens, deterministic ---------------------------------------------------------

VARIANTS = {"plain": (False, (-1, -1), 0.0), "window": (False, (32, 8), 0.0), "causal-window": (True, (32, -1), 0.0),
            "softcap": (False, (-1, -1), 30.0), "softcap-window": (False, (64, 0), 50.0)}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("nheads,nheads_kv", [(8, 2), (8, 1)], ids=["gqa4to1", "mqa8"])
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_gqa(head_dim, nheads, nheads_kv, variant, arch):
    causal, window_size, softcap = VARIANTS[variant]
    q, k, v = make_inputs(2, 300, 517, nheads, nheads_kv, head_dim, torch.bfloat16, softcap)
    check_features(q, k, v, causal, window_size, softcap, arch=arch)


ODD_SEQLENS = [(1, 1), (1, 17), (17, 1), (17, 300), (300, 17), (300, 1000), (1000, 300), (1, 1000), (1000, 17)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seqlens", ODD_SEQLENS, ids=[f"{q}x{k}" for q, k in ODD_SEQLENS])
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_odd_seqlens(head_dim, seqlens, variant, arch):
    causal, window_size, softcap = VARIANTS[variant]
    q, k, v = make_inputs(2, *seqlens, 3, 3, head_dim, torch.bfloat16, softcap)
    check_features(q, k, v, causal, window_size, softcap, arch=arch)


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_deterministic_dq_under_a_window_and_softcap(head_dim, arch):
    q, k, v = make_inputs(2, 1000, 1500, 4, 2, head_dim, torch.bfloat16, 30.0)
    out, lse, dout, first = check_features(q, k, v, False, (200, 100), 30.0, arch=arch, deterministic=True)
    scale = 1.0 / math.sqrt(head_dim)
    for _ in range(2):
        again = ops._backward(q, k, v, out, lse, dout, False, scale, arch, True, window_left=200, window_right=100,
                              softcap=30.0)
        for a, b in zip(first, again):
            assert torch.equal(a, b)


# --- a kernel with more features than the call -----------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_kernels_built_with_both_features_run_calls_that_use_fewer(monkeypatch, head_dim, variant, arch):
    # Every call asks for both features, as if only the softcap_window variants were built: a
    # feature the call does not use is off (window bounds -1, softcap 0).
    both = frozenset({"softcap", "window"})

    def choose_with_both(direction, head_dim, dtype, capability, arch=None, features=frozenset()):
        return dispatch.choose_kernel(direction, head_dim, dtype, capability, arch, features | both)

    kernels_or_skip(head_dim, torch.bfloat16, both, arch)
    monkeypatch.setattr(ops, "choose_kernel", choose_with_both)
    causal, window_size, softcap = VARIANTS[variant]
    q, k, v = make_inputs(2, 333, 517, 4, 2, head_dim, torch.bfloat16, softcap)
    check_features(q, k, v, causal, window_size, softcap, arch=arch)
    check_features(q, k, v, True, arch=arch)


# --- the public functions --------------------------------------------------------------------

def test_flash_attn_func_autograd_with_window_and_softcap(arch):
    q, k, v = (t.requires_grad_() for t in make_inputs(2, 513, 700, 8, 2, 128, torch.bfloat16, 30.0))
    kwargs = dict(causal=True, window_size=(100, 0), softcap=30.0)
    kernels_or_skip(128, torch.bfloat16, ops.required_features(100, -1, 30.0), arch)
    out, lse = flashgen.flash_attn_func(q, k, v, return_lse=True, arch=arch, **kwargs)
    dout = torch.randn_like(out)
    out.backward(dout)
    ref, ref_lse = attention_reference(q.detach(), k.detach(), v.detach(), **kwargs)
    same, _ = attention_reference(q.detach(), k.detach(), v.detach(), upcast=False, **kwargs)
    check_against_reference("out", out, ref, same)
    check_lse("lse", lse, ref_lse, lse_tolerance(30.0))
    want = attention_reference_grads(q, k, v, dout, upcast=True, **kwargs)
    want_same = attention_reference_grads(q, k, v, dout, upcast=False, **kwargs)
    for name, t, r, s in zip(("dq", "dk", "dv"), (q, k, v), want, want_same):
        check_against_reference(name, t.grad, r, s)


def test_varlen_with_a_window_and_softcap(arch):
    # Each sequence's window is bottom-right aligned on its own lengths: more queries than keys
    # (rows with no key), fewer, an empty query sequence, one with no keys.
    lengths_q, lengths_k = [1, 17, 1000, 700, 0, 65], [9, 300, 1000, 300, 5, 0]
    causal, window_size, softcap = False, (64, 16), 30.0
    nheads, nheads_kv, head_dim, dtype = 6, 2, 128, torch.bfloat16
    mask, features = mask_and_features(causal, window_size, softcap, max(lengths_q), max(lengths_k))
    kernels_or_skip(head_dim, dtype, features, arch)
    q, k, v = packed_qkv(lengths_q, lengths_k, nheads, nheads_kv, head_dim, dtype)
    with torch.no_grad():
        q.mul_(LOGIT_SCALE)
    out, lse, _ = flashgen.flash_attn_varlen_func(
        q, k, v, cu_seqlens(lengths_q), cu_seqlens(lengths_k), max(lengths_q), max(lengths_k), causal=causal,
        window_size=window_size, softcap=softcap, return_attn_probs=True, arch=arch)
    dout = torch.randn_like(out)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), dout)
    q_start = k_start = 0
    kwargs = dict(causal=causal, window_size=window_size, softcap=softcap)
    for i, (len_q, len_k) in enumerate(zip(lengths_q, lengths_k)):
        rows_q, rows_k = slice(q_start, q_start + len_q), slice(k_start, k_start + len_k)
        q_start, k_start = rows_q.stop, rows_k.stop
        if len_q == 0:
            assert not dk[rows_k].any() and not dv[rows_k].any(), f"sequence {i}: dk, dv must be 0"
            continue
        if len_k == 0:
            assert not out[rows_q].any() and (lse[:, rows_q] == float("inf")).all(), f"sequence {i}"
            continue
        seq = [t.detach()[None] for t in (q[rows_q], k[rows_k], v[rows_k], dout[rows_q])]
        ref, ref_lse = attention_reference(*seq[:3], **kwargs)
        same, _ = attention_reference(*seq[:3], upcast=False, **kwargs)
        check_against_reference(f"out, sequence {i}", out[rows_q][None], ref, same)
        check_lse(f"lse, sequence {i}", lse[None, :, rows_q], ref_lse, lse_tolerance(softcap))
        want = attention_reference_grads(*seq, upcast=True, **kwargs)
        want_same = attention_reference_grads(*seq, upcast=False, **kwargs)
        for name, got, r, s in zip(("dq", "dk", "dv"), (dq[rows_q], dk[rows_k], dv[rows_k]), want, want_same):
            check_against_reference(f"{name}, sequence {i}", got[None], r, s)
