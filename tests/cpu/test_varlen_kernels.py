"""flash_attn_varlen_func on varlen kernels, without a GPU: the flashgen::varlen_fwd/varlen_bwd
ops run their real implementation on CPU tensors over a stand-in extension (the packed reference
of tests/cpu/test_varlen.py, recording each call), and the real choose_kernel picks among stubbed
kernel lists. When varlen kernels are built one call per direction takes the packed batch and the
offsets; when not, the call loops over the sequences on the fixed-length kernels and warns once
with the build command. The real kernels: tests/gpu/test_varlen.py."""
import warnings

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from flashgen import dispatch, inputs, ops, varlen
from flashgen.errors import KernelNotBuiltError
from flashgen.varlen import flash_attn_varlen_func
from tests.cpu.test_library_ops import _fwd_reference, _bwd_reference
from tests.cpu.test_varlen import LENGTHS_K, LENGTHS_Q, cu, packed_reference

PLAIN = [f"flash_{d}_hdim64_bf16_{a}" for d in ("fwd", "bwd") for a in ("sm80", "sm90")]
VARLEN = [f"flash_{d}_hdim64_bf16_sm80_varlen" for d in ("fwd", "bwd")]
CATALOG = PLAIN + VARLEN


def lengths_of(cu_seqlens):
    return (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()


class VarlenExtension:
    """extension()'s fwd and bwd as the binding takes them (the varlen arguments trailing),
    computed on CPU: packed with cu_seqlens, per batch entry without."""

    def __init__(self):
        self.calls = []

    def fwd(self, name, q, k, v, out, lse, softmax_scale, causal, window_left, window_right, softcap,
            cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=-1, max_seqlen_k=-1):
        self.calls.append(("fwd", name, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                           window_left, window_right, softcap))
        if cu_seqlens_q is None:
            o, l = _fwd_reference(q, k, v, causal, softmax_scale, None, False, window_left, window_right, softcap)
        else:
            assert q.dim() == 3 and lse.shape == (q.shape[1], q.shape[0])
            o, l = packed_reference(q.float(), k.float(), v.float(), lengths_of(cu_seqlens_q), lengths_of(cu_seqlens_k),
                                    causal, softmax_scale, (window_left, window_right), softcap)
        out.copy_(o)
        lse.copy_(l)

    def bwd(self, name, q, k, v, out, dout, lse, dq, dk, dv, softmax_scale, causal, deterministic, window_left,
            window_right, softcap, cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=-1, max_seqlen_k=-1):
        self.calls.append(("bwd", name, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                           window_left, window_right, softcap))
        assert dk.shape == k.shape, "the stand-in takes no GQA (dk, dv would be per query head)"
        if cu_seqlens_q is None:
            grads = _bwd_reference(q, k, v, out, lse, dout, causal, softmax_scale, None, deterministic, window_left,
                                   window_right, softcap)
        else:
            # Per sequence by formula (an op's kernel runs below autograd); no rows or no keys: zeros.
            grads = [torch.zeros(t.shape) for t in (q, k, v)]
            for b in range(len(cu_seqlens_q) - 1):
                rows_q = slice(int(cu_seqlens_q[b]), int(cu_seqlens_q[b + 1]))
                rows_k = slice(int(cu_seqlens_k[b]), int(cu_seqlens_k[b + 1]))
                if rows_q.stop == rows_q.start or rows_k.stop == rows_k.start:
                    continue
                seq = _bwd_reference(q[None, rows_q], k[None, rows_k], v[None, rows_k], None, None,
                                     dout[None, rows_q], causal, softmax_scale, None, deterministic, window_left,
                                     window_right, softcap)
                for grad, part, rows in zip(grads, seq, (rows_q, rows_k, rows_k)):
                    grad[rows] = part[0].float()
        for buffer, grad in zip((dq, dk, dv), grads):
            buffer.copy_(grad)


@pytest.fixture
def varlen_kernels(monkeypatch):
    """Returns (extension, chosen, build): the stand-in, the (direction, features) of each
    choose_kernel call, and build(*names) to set which kernels of CATALOG are built (all at first)."""
    ext, chosen, built = VarlenExtension(), [], []

    def recording_choose_kernel(direction, head_dim, dtype, capability, arch=None, features=frozenset()):
        chosen.append((direction, frozenset(features)))
        return dispatch.choose_kernel(direction, head_dim, dtype, capability, arch, features)

    def build(*names):
        built[:] = names
        dispatch._kernel_sets.cache_clear()
        dispatch._choose.cache_clear()

    monkeypatch.delenv("FLASHGEN_ARCH", raising=False)
    monkeypatch.setenv("FLASHGEN_JIT", "0")
    monkeypatch.setattr(dispatch, "available_kernels", lambda: list(built))
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: list(CATALOG))
    monkeypatch.setattr(ops, "choose_kernel", recording_choose_kernel)
    monkeypatch.setattr(ops, "extension", lambda: ext)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # a Hopper
    monkeypatch.setattr(inputs, "_check_dtypes_devices_strides", lambda q, k, v: None)  # CPU tensors pass
    monkeypatch.setattr(varlen, "_warned_loop", False)
    build(*CATALOG)
    with torch.library._scoped_library("flashgen", "FRAGMENT") as lib:
        for op, impl in (("fwd", ops._fwd_op_impl), ("bwd", ops._bwd_op_impl), ("varlen_fwd", ops._varlen_fwd_op_impl),
                         ("varlen_bwd", ops._varlen_bwd_op_impl)):
            torch.library.register_kernel(f"flashgen::{op}", "cpu", impl, lib=lib)
        yield ext, chosen, build
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()


def packed_inputs(nheads=2, head_dim=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(sum(LENGTHS_Q), nheads, head_dim, generator=gen).to(torch.bfloat16).requires_grad_()
    k, v = (torch.randn(sum(LENGTHS_K), nheads, head_dim, generator=gen).to(torch.bfloat16).requires_grad_()
            for _ in range(2))
    return q, k, v


# (causal, window_size, softcap) -> the features the call needs besides varlen and the
# (causal, window_left, window_right, softcap) the kernels get (normalized by the longest sequences).
CALLS = [((False, (-1, -1), 0.0), (), (False, -1, -1, 0.0)),
         ((True, (-1, -1), 0.0), (), (True, -1, -1, 0.0)),
         ((False, (2, 1), 0.0), ("window",), (False, 2, 1, 0.0)),
         ((False, (-1, -1), 0.5), ("softcap",), (False, -1, -1, 0.5))]


@pytest.mark.parametrize("call,features,kernel_args", CALLS, ids=[str(c[0]) for c in CALLS])
def test_varlen_kernels_take_the_packed_batch_in_one_call_per_direction(varlen_kernels, monkeypatch, call, features,
                                                                       kernel_args):
    ext, chosen, build = varlen_kernels
    causal, window_size, softcap = call
    suffix = "".join("_" + f for f in (*features, "varlen"))  # gen.axes' order: softcap, window, varlen
    names = sorted(set(CATALOG + [f"flash_{d}_hdim64_bf16_sm80{suffix}" for d in ("fwd", "bwd")]))
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: list(names))
    build(*names)
    q, k, v = packed_inputs()
    cu_q, cu_k = cu(LENGTHS_Q), cu(LENGTHS_K)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no looping warning
        out, lse, _ = flash_attn_varlen_func(q, k, v, cu_q, cu_k, 100, 90, causal=causal, window_size=window_size,
                                             softcap=softcap, return_attn_probs=True)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    out.backward(dout)
    want = frozenset({"varlen", *features})
    # varlen_kernels_built asks for both directions, then each op for its own.
    assert chosen == [("fwd", want), ("bwd", want), ("fwd", want), ("bwd", want)]
    assert [c[:2] for c in ext.calls] == [("fwd", f"flash_fwd_hdim64_bf16_sm80{suffix}"),
                                          ("bwd", f"flash_bwd_hdim64_bf16_sm80{suffix}")]
    for c in ext.calls:
        assert c[2] is cu_q and c[3] is cu_k and c[4:6] == (100, 90) and c[6:] == kernel_args
    want_out, want_lse = packed_reference(q.float(), k.float(), v.float(), LENGTHS_Q, LENGTHS_K, causal, 1 / 8,
                                          window_size, softcap)
    assert lse.shape == (2, sum(LENGTHS_Q)) and lse.dtype == torch.float32
    torch.testing.assert_close(out, want_out.to(out.dtype))
    torch.testing.assert_close(lse, want_lse)
    leaves = [t.detach().float().requires_grad_() for t in (q, k, v)]
    ref, _ = packed_reference(*leaves, LENGTHS_Q, LENGTHS_K, causal, 1 / 8, window_size, softcap)
    for got, grad in zip((q.grad, k.grad, v.grad), torch.autograd.grad(ref, leaves, dout.float())):
        torch.testing.assert_close(got, grad.to(got.dtype))


def test_without_varlen_kernels_the_call_loops_and_warns_once_with_the_build_command(varlen_kernels):
    ext, chosen, build = varlen_kernels
    build(*PLAIN)
    q, k, v = packed_inputs()
    args = (q, k, v, cu(LENGTHS_Q), cu(LENGTHS_K), 7, 6)
    with pytest.warns(UserWarning, match=r"loops over the sequences.*flash_fwd_hdim64_bf16_sm80_varlen is needed"
                                         r".*Add it with: "):
        out = flash_attn_varlen_func(*args, causal=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once
        flash_attn_varlen_func(*args, causal=True)
    # One fixed-length call per sequence with queries and keys (4 of 7), on the plain sm90 kernel.
    fwd_calls = [c for c in ext.calls if c[0] == "fwd"]
    assert len(fwd_calls) == 8 and {c[1] for c in fwd_calls} == {"flash_fwd_hdim64_bf16_sm90"}
    assert all(c[2] is None for c in fwd_calls)
    want, _ = packed_reference(q.float(), k.float(), v.float(), LENGTHS_Q, LENGTHS_K, True, 1 / 8)
    torch.testing.assert_close(out, want.to(out.dtype))
    # Only the backward missing: loops too (the forward alone would leave autograd without a kernel).
    build(*PLAIN, VARLEN[0])
    ext.calls.clear()
    flash_attn_varlen_func(*args).sum().backward()
    assert {c[1] for c in ext.calls} == {"flash_fwd_hdim64_bf16_sm90", "flash_bwd_hdim64_bf16_sm90"}
    # ... but without gradients the forward kernel suffices.
    ext.calls.clear()
    with torch.no_grad():
        flash_attn_varlen_func(*args)
    assert [c[1] for c in ext.calls] == [VARLEN[0]]


def test_varlen_kernels_run_varlen_calls_only(varlen_kernels):
    _, _, build = varlen_kernels
    choose = dispatch.choose_kernel
    # On a Hopper without an sm90 varlen forward a varlen call runs the sm80 varlen kernels; a
    # fixed-length call never takes them.
    assert choose("fwd", 64, torch.bfloat16, (9, 0), None, frozenset({"varlen"})).name == VARLEN[0]
    assert choose("bwd", 64, torch.bfloat16, (9, 0), None, frozenset({"varlen"})).name == VARLEN[1]
    assert choose("fwd", 64, torch.bfloat16, (8, 0)).name == "flash_fwd_hdim64_bf16_sm80"
    build(*VARLEN)
    with pytest.raises(KernelNotBuiltError, match="flash_fwd_hdim64_bf16_sm90 is needed"):
        choose("fwd", 64, torch.bfloat16, (9, 0))
    build(*PLAIN)
    with pytest.raises(KernelNotBuiltError, match="flash_fwd_hdim64_bf16_sm80_varlen is needed .*--features varlen"):
        choose("fwd", 64, torch.bfloat16, (9, 0), None, frozenset({"varlen"}))


def test_schemas_and_fakes_of_the_varlen_ops():
    assert str(torch.ops.flashgen.varlen_fwd.default._schema) == (
        "flashgen::varlen_fwd(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, Tensor cu_seqlens_k, "
        "SymInt max_seqlen_q, SymInt max_seqlen_k, bool causal, float softmax_scale, str? arch, bool deterministic, "
        "SymInt window_left=-1, SymInt window_right=-1, float softcap=0.) -> (Tensor, Tensor)")
    assert str(torch.ops.flashgen.varlen_bwd.default._schema) == (
        "flashgen::varlen_bwd(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dout, Tensor cu_seqlens_q, "
        "Tensor cu_seqlens_k, SymInt max_seqlen_q, SymInt max_seqlen_k, bool causal, float softmax_scale, str? arch, "
        "bool deterministic, SymInt window_left=-1, SymInt window_right=-1, float softcap=0.) "
        "-> (Tensor, Tensor, Tensor)")
    with FakeTensorMode():
        q = torch.empty(30, 8, 128, dtype=torch.bfloat16, device="cuda")
        k = v = torch.empty(41, 2, 128, dtype=torch.bfloat16, device="cuda")
        cu_q = torch.empty(5, dtype=torch.int32, device="cuda")
        out, lse = torch.ops.flashgen.varlen_fwd(q, k, v, cu_q, cu_q, 12, 20, True, 0.1, None, False)
        dq, dk, dv = torch.ops.flashgen.varlen_bwd(q, k, v, out, lse, out, cu_q, cu_q, 12, 20, True, 0.1, None, False,
                                                   3, -1, 30.0)
    assert (out.shape, out.dtype, lse.shape, lse.dtype) == ((30, 8, 128), torch.bfloat16, (8, 30), torch.float32)
    assert (dq.shape, dk.shape, dv.shape) == (q.shape, k.shape, v.shape)


def test_varlen_autograd_formula_calls_the_backward_op_on_meta_tensors():
    q = torch.empty(30, 8, 64, dtype=torch.float16, device="meta", requires_grad=True)
    k, v = (torch.empty(41, 2, 64, dtype=torch.float16, device="meta", requires_grad=True) for _ in range(2))
    cu_q = torch.empty(5, dtype=torch.int32, device="meta")
    out, lse = torch.ops.flashgen.varlen_fwd(q, k, v, cu_q, cu_q, 12, 20, False, 0.1, None, True, 4, 7, 30.0)
    assert out.requires_grad and not lse.requires_grad
    out.sum().backward()
    assert [t.grad.shape for t in (q, k, v)] == [q.shape, k.shape, v.shape]


SM90_VARLEN_FWD = "flash_fwd_hdim64_bf16_sm90_varlen"
SM90_VARLEN_BWD = "flash_bwd_hdim64_bf16_sm90_varlen"


def test_on_a_hopper_without_the_sm90_varlen_backward_a_varlen_call_runs_the_sm80_backward(varlen_kernels,
                                                                                            monkeypatch):
    # A catalog with the sm90 varlen forward but not its backward: each direction takes its own
    # best kernel, the sm80 backward reading the sm90 forward's lse.
    ext, chosen, build = varlen_kernels
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: CATALOG + [SM90_VARLEN_FWD])
    build(*CATALOG, SM90_VARLEN_FWD)
    choose = dispatch.choose_kernel
    assert choose("fwd", 64, torch.bfloat16, (9, 0), None, frozenset({"varlen"})).name == SM90_VARLEN_FWD
    assert choose("bwd", 64, torch.bfloat16, (9, 0), None, frozenset({"varlen"})).name == VARLEN[1]
    assert choose("fwd", 64, torch.bfloat16, (8, 0), None, frozenset({"varlen"})).name == VARLEN[0]
    q, k, v = packed_inputs()
    cu_q, cu_k = cu(LENGTHS_Q), cu(LENGTHS_K)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no looping warning
        out = flash_attn_varlen_func(q, k, v, cu_q, cu_k, 100, 90, causal=True)
    out.sum().backward()
    assert [c[:2] for c in ext.calls] == [("fwd", SM90_VARLEN_FWD), ("bwd", VARLEN[1])]
    # Forcing sm90: its forward alone (no gradients) runs packed; with gradients the call loops,
    # as no sm90 varlen backward is built.
    ext.calls.clear()
    with torch.no_grad():
        flash_attn_varlen_func(q, k, v, cu_q, cu_k, 100, 90, arch="sm90")
    assert [c[:2] for c in ext.calls] == [("fwd", SM90_VARLEN_FWD)]
    with pytest.warns(UserWarning, match="loops over the sequences"):
        flash_attn_varlen_func(q, k, v, cu_q, cu_k, 100, 90, arch="sm90")


def test_on_a_hopper_a_varlen_call_runs_the_sm90_forward_and_backward(varlen_kernels, monkeypatch):
    # The sm90 warp-specialized backwards implement varlen (gen/families.py): built, they take
    # a Hopper's varlen backward, forced to sm90 or not, in one packed call.
    ext, chosen, build = varlen_kernels
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: CATALOG + [SM90_VARLEN_FWD, SM90_VARLEN_BWD])
    build(*CATALOG, SM90_VARLEN_FWD, SM90_VARLEN_BWD)
    choose = dispatch.choose_kernel
    assert choose("bwd", 64, torch.bfloat16, (9, 0), None, frozenset({"varlen"})).name == SM90_VARLEN_BWD
    assert choose("bwd", 64, torch.bfloat16, (8, 0), None, frozenset({"varlen"})).name == VARLEN[1]
    assert choose("bwd", 64, torch.bfloat16, (9, 0)).name == "flash_bwd_hdim64_bf16_sm90"  # fixed lengths: the plain one
    q, k, v = packed_inputs()
    cu_q, cu_k = cu(LENGTHS_Q), cu(LENGTHS_K)
    for arch in (None, "sm90"):
        ext.calls.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no looping warning
            out = flash_attn_varlen_func(q, k, v, cu_q, cu_k, 100, 90, causal=True, arch=arch)
            out.sum().backward()
        assert [c[:2] for c in ext.calls] == [("fwd", SM90_VARLEN_FWD), ("bwd", SM90_VARLEN_BWD)], arch
        assert ext.calls[1][2] is cu_q and ext.calls[1][3] is cu_k and ext.calls[1][4:6] == (100, 90)
