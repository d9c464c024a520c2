"""flash_attn_varlen_func without a GPU: every input check, the per-sequence slicing, and the
looped implementation over a CPU stand-in kernel (tests/cpu/test_library_ops.py) against an
independent reference that attends over the packed rows at once with a block-diagonal mask.
The real kernels: tests/gpu/test_varlen.py."""
import math

import pytest
import torch

from flashgen import inputs, varlen
from flashgen.inputs import check_offsets, check_varlen_inputs
from flashgen.varlen import SequenceRows, attention_per_sequence, flash_attn_varlen_func, sequence_rows
from tests.cpu.test_library_ops import _fwd_reference, cpu_stand_in  # noqa: F401 - a fixture

# Query and key lengths per sequence: empty query sequences, queries with no key, more queries
# than keys (causal rows that see no key), and GQA below.
LENGTHS_Q = [3, 0, 5, 7, 1, 0, 4]
LENGTHS_K = [6, 2, 0, 2, 1, 0, 4]


def offsets(lengths):
    return [0] + torch.tensor(lengths).cumsum(0).tolist()


def cu(lengths, device="cpu"):
    return torch.tensor(offsets(lengths), dtype=torch.int32, device=device)


@pytest.mark.parametrize("values,total,max_seqlen,message", [
    ([0], 0, 8, "cu_seqlens_q must hold batch + 1 >= 2 offsets, got [0]"),
    ([1, 4, 9], 9, 8, "cu_seqlens_q must start at 0, got cu_seqlens_q[0] = 1"),
    ([0, 4, 3, 9], 9, 8, "cu_seqlens_q must be non-decreasing (sequence i is rows cu_seqlens_q[i]:cu_seqlens_q[i+1]), "
                         "but cu_seqlens_q[2] = 3 < cu_seqlens_q[1] = 4"),
    ([0, 4, 9], 10, 8, "cu_seqlens_q ends at 9 but q has 10 rows: its last entry must be the total length q.shape[0]"),
    ([0, 4, 9, 9], 9, 4, "max_seqlen_q = 4 is smaller than sequence 1's length 5 (cu_seqlens_q[1:3] = [4, 9]): "
                         "pass at least the longest length"),
])
def test_bad_offsets_name_the_problem(values, total, max_seqlen, message):
    with pytest.raises(ValueError) as info:
        check_offsets("cu_seqlens_q", values, "q", total, "max_seqlen_q", max_seqlen)
    assert str(info.value) == message


@pytest.mark.parametrize("values,total,max_seqlen", [
    ([0, 0], 0, 0), ([0, 0, 3, 3, 3], 3, 3), ([0, 5], 5, 4096), (offsets(LENGTHS_Q), sum(LENGTHS_Q), 7)])
def test_offsets_with_empty_sequences_and_a_loose_max_pass(values, total, max_seqlen):
    check_offsets("cu_seqlens_q", values, "q", total, "max_seqlen_q", max_seqlen)


def varlen_args(lengths_q=LENGTHS_Q, lengths_k=LENGTHS_K, nheads=4, nheads_kv=2, head_dim=64,
                dtype=torch.bfloat16, device="cpu", **changes):
    """Keyword arguments of check_varlen_inputs, valid but for the device; `changes` replaces some."""
    args = dict(q=torch.zeros(sum(lengths_q), nheads, head_dim, dtype=dtype, device=device),
                k=torch.zeros(sum(lengths_k), nheads_kv, head_dim, dtype=dtype, device=device),
                v=torch.zeros(sum(lengths_k), nheads_kv, head_dim, dtype=dtype, device=device),
                cu_seqlens_q=cu(lengths_q, device), cu_seqlens_k=cu(lengths_k, device),
                max_seqlen_q=max(lengths_q), max_seqlen_k=max(lengths_k), causal=False, softmax_scale=None)
    return {**args, **changes}


def test_valid_inputs_get_as_far_as_the_device_check():
    # CPU tensors: every check before "is it on a GPU" passes, empty sequences included.
    with pytest.raises(ValueError, match="q is on cpu; flashgen runs on CUDA GPUs"):
        check_varlen_inputs(**varlen_args())


@pytest.mark.parametrize("changes,error,message", [
    (dict(q=torch.zeros(2, 20, 4, 64)), ValueError, "q must be 3-D (total_q, nheads, head_dim), got shape (2, 20, 4, 64)"),
    (dict(k=torch.zeros(15, 64), v=torch.zeros(15, 64)), ValueError,
     "k must be 3-D (total_k, nheads_kv, head_dim), got shape (15, 64)"),
    (dict(v=torch.zeros(15, 2, 32, dtype=torch.bfloat16)), ValueError, "k and v must have the same shape"),
    (dict(k=torch.zeros(15, 3, 64, dtype=torch.bfloat16), v=torch.zeros(15, 3, 64, dtype=torch.bfloat16)),
     ValueError, "nheads (4) must be a multiple of nheads_kv (3) for GQA/MQA"),
    (dict(cu_seqlens_q=[0, 3, 3]), TypeError, "cu_seqlens_q must be a torch.Tensor, got list"),
    (dict(cu_seqlens_k=cu(LENGTHS_K).long()), TypeError,
     "cu_seqlens_k has dtype torch.int64; it must be torch.int32 (FlashAttention's cumulative sequence lengths): "
     "convert with cu_seqlens_k.to(torch.int32)"),
    (dict(cu_seqlens_q=cu(LENGTHS_Q)[None]), ValueError, "cu_seqlens_q must be 1-D (batch + 1,), got shape (1, 8)"),
    (dict(cu_seqlens_k=cu(LENGTHS_K[:-1])), ValueError,
     "cu_seqlens_q has 8 entries (batch 7) but cu_seqlens_k has 7 (batch 6): both must describe the same sequences"),
    (dict(cu_seqlens_q=cu(LENGTHS_Q) + 1), ValueError, "cu_seqlens_q must start at 0, got cu_seqlens_q[0] = 1"),
    (dict(cu_seqlens_k=cu(LENGTHS_K).flip(0).contiguous()), ValueError, "cu_seqlens_k must start at 0"),
    (dict(cu_seqlens_k=cu([6, 2, 0, 2, 1, 0, 3])), ValueError,
     "cu_seqlens_k ends at 14 but k has 15 rows: its last entry must be the total length k.shape[0]"),
    (dict(max_seqlen_q=6), ValueError, "max_seqlen_q = 6 is smaller than sequence 3's length 7"),
    (dict(max_seqlen_k=5), ValueError, "max_seqlen_k = 5 is smaller than sequence 0's length 6"),
    (dict(max_seqlen_k=6.0), TypeError, "max_seqlen_k must be an int, got float"),
    (dict(causal=1), TypeError, "causal must be a bool, got int"),
    (dict(softmax_scale=math.inf), ValueError, "softmax_scale must be finite"),
])
def test_bad_varlen_inputs_name_the_problem(changes, error, message):
    with pytest.raises(error) as info:
        check_varlen_inputs(**varlen_args(**changes))
    assert message in str(info.value)


def test_decreasing_offsets_name_the_entry():
    cu_k = torch.tensor([0, 6, 8, 7, 10, 11, 11, 15], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"cu_seqlens_k\[3\] = 7 < cu_seqlens_k\[2\] = 8"):
        check_varlen_inputs(**varlen_args(cu_seqlens_k=cu_k))


def test_offsets_on_another_device_than_q():
    with pytest.raises(ValueError, match=r"cu_seqlens_q is on cpu but q is on meta: move it with cu_seqlens_q.to\(q.device\)"):
        check_varlen_inputs(**varlen_args(device="meta", cu_seqlens_q=cu(LENGTHS_Q), cu_seqlens_k=cu(LENGTHS_K)))


def test_sequence_rows_are_the_slices_between_consecutive_offsets():
    assert sequence_rows([0, 1, 1, 4], [0, 2, 5, 5]) == [SequenceRows(slice(0, 1), slice(0, 2)),
                                                        SequenceRows(slice(1, 1), slice(2, 5)),
                                                        SequenceRows(slice(1, 4), slice(5, 5))]
    rows = sequence_rows(offsets(LENGTHS_Q), offsets(LENGTHS_K))
    assert [r.q.stop - r.q.start for r in rows] == LENGTHS_Q and [r.k.stop - r.k.start for r in rows] == LENGTHS_K


def packed_reference(q, k, v, lengths_q, lengths_k, causal, scale, window_size=(-1, -1), softcap=0.0):
    """out (total_q, nheads, head_dim) and lse (nheads, total_q) over the packed rows at once: query
    row r attends to key row c when both belong to the same sequence and, with d = r's position
    in its sequence + seqlen_k - seqlen_q (that sequence's), c's position is in
    [d - left, d + right] (a side -1 unbounded; causal: right 0). softcap caps the scaled scores
    at softcap * tanh(score / softcap). No slicing, so it checks the loop's."""
    batch = torch.arange(len(lengths_q))
    seq_q = batch.repeat_interleave(torch.tensor(lengths_q))   # the sequence of each query row
    seq_k = batch.repeat_interleave(torch.tensor(lengths_k))
    pos_q = torch.arange(len(seq_q)) - torch.tensor(offsets(lengths_q))[seq_q]
    pos_k = torch.arange(len(seq_k)) - torch.tensor(offsets(lengths_k))[seq_k]
    visible = seq_q[:, None] == seq_k[None, :]
    left, right = window_size
    right = 0 if causal else right
    diagonal = (pos_q + (torch.tensor(lengths_k) - torch.tensor(lengths_q))[seq_q])[:, None]
    if left >= 0:
        visible &= pos_k[None, :] >= diagonal - left
    if right >= 0:
        visible &= pos_k[None, :] <= diagonal + right
    groups = q.shape[1] // k.shape[1]
    k, v = (t.repeat_interleave(groups, dim=1) for t in (k, v))
    scores = torch.einsum("qhd,khd->hqk", q, k).mul(scale)
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    scores = scores.masked_fill(~visible, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1).nan_to_num(0.0), v)
    return out, lse.masked_fill(lse == float("-inf"), float("inf"))


# (window_left, window_right, softcap) as attention_per_sequence takes them.
MASKS = {"no-window": (-1, -1, 0.0), "window": (1, 2, 0.0), "left": (0, -1, 0.0), "softcap": (-1, -1, 0.3),
         "window-softcap": (2, 0, 0.5)}


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("nheads,nheads_kv", [(2, 2), (6, 2)], ids=["mha", "gqa"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_looped_varlen_matches_the_packed_reference(cpu_stand_in, causal, nheads, nheads_kv, mask):
    window_left, window_right, softcap = MASKS[mask]
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(sum(LENGTHS_Q), nheads, 32, generator=gen, requires_grad=True)
    k, v = (torch.randn(sum(LENGTHS_K), nheads_kv, 32, generator=gen, requires_grad=True) for _ in range(2))
    rows = sequence_rows(offsets(LENGTHS_Q), offsets(LENGTHS_K))
    scale = 2.0 if softcap else 0.2   # softcap: scores well beyond it
    out, lse = attention_per_sequence(q, k, v, rows, causal, scale, None, False, window_left, window_right, softcap)
    want_out, want_lse = packed_reference(q, k, v, LENGTHS_Q, LENGTHS_K, causal, scale, (window_left, window_right),
                                          softcap)
    assert out.shape == q.shape and lse.shape == (nheads, sum(LENGTHS_Q)) and lse.dtype == torch.float32
    torch.testing.assert_close(out, want_out, rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.isinf(lse), torch.isinf(want_lse))   # rows with no key: +inf in both
    torch.testing.assert_close(lse, want_lse, rtol=1e-5, atol=1e-5)
    dout = torch.randn(out.shape, generator=gen)
    grads = torch.autograd.grad(out, (q, k, v), dout)
    want_grads = torch.autograd.grad(want_out, (q, k, v), dout)
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_queries_with_no_key_stay_in_the_graph_with_zero_gradient(cpu_stand_in):
    q = torch.full((5, 2, 8), float("inf"), requires_grad=True)   # inf: a zero row must not come from q * 0
    k = v = torch.zeros(0, 2, 8, requires_grad=True)
    out, lse = attention_per_sequence(q, k, v, sequence_rows([0, 2, 5], [0, 0, 0]), False, 0.5, None, False)
    assert torch.equal(out, torch.zeros(5, 2, 8)) and (lse == float("inf")).all() and lse.shape == (2, 5)
    out.sum().backward()
    assert torch.equal(q.grad, torch.zeros_like(q))


@pytest.fixture
def on_cpu(monkeypatch, cpu_stand_in):  # noqa: F811 - the imported fixture, used by this one
    """flash_attn_varlen_func on CPU tensors: the device check (the last one) passes them, and no
    varlen kernel is built (the looped path; the kernel path: varlen_kernels below)."""
    monkeypatch.setattr(inputs, "_check_dtypes_devices_strides", lambda q, k, v: None)
    monkeypatch.setattr(varlen, "varlen_kernels_built", lambda *args: False)


def test_public_varlen_runs_window_minus_one_zero_as_causal_and_returns_lse(on_cpu):
    args = varlen_args(dtype=torch.float32)
    q, k, v = (torch.randn_like(args[name]) for name in "qkv")
    positional = (q, k, v, args["cu_seqlens_q"], args["cu_seqlens_k"], args["max_seqlen_q"], args["max_seqlen_k"])
    out, lse, probs = flash_attn_varlen_func(*positional, window_size=(-1, 0), return_attn_probs=True)
    rows = sequence_rows(offsets(LENGTHS_Q), offsets(LENGTHS_K))
    want_out, want_lse = attention_per_sequence(q, k, v, rows, True, 1 / math.sqrt(64), None, False)
    assert probs is None and torch.equal(out, want_out) and torch.equal(lse, want_lse)
    assert torch.equal(flash_attn_varlen_func(*positional, 0.0, None, True), want_out)
    assert not torch.equal(flash_attn_varlen_func(*positional), want_out)   # full attention differs


@pytest.fixture
def op_calls(on_cpu):
    """The (causal, window_left, window_right, softcap) of each flashgen::fwd call, run by the stand-in."""
    calls = []

    def recording_fwd(q, k, v, causal, softmax_scale, arch, deterministic, window_left=-1, window_right=-1,
                      softcap=0.0):
        calls.append((causal, window_left, window_right, softcap))
        return _fwd_reference(q, k, v, causal, softmax_scale, arch, deterministic, window_left, window_right,
                              softcap)

    with torch.library._scoped_library("flashgen", "FRAGMENT") as lib:
        torch.library.register_kernel("flashgen::fwd", "cpu", recording_fwd, lib=lib)
        yield calls


@pytest.mark.parametrize("causal,window_size,softcap,mask", [
    (False, (-1, -1), 0.0, (False, -1, -1, 0.0)),
    (False, (5, 6), 0.0, (False, -1, -1, 0.0)),    # longest: 7 queries, 6 keys: reaches every key
    (False, (4, 6), 0.0, (False, 4, -1, 0.0)),     # the left side misses key 0 of the 6-key sequence
    (False, (5, 5), 0.0, (False, -1, 5, 0.0)),     # the right side misses keys of the 7-query sequence
    (True, (2, 5), 0.0, (True, 2, -1, 0.0)),
    (False, (-1, 0), 30, (True, -1, -1, 30.0)),
    (False, (1, 1), 0.5, (False, 1, 1, 0.5)),
])
def test_public_varlen_normalizes_the_window_by_the_longest_sequences(op_calls, causal, window_size, softcap, mask):
    args = varlen_args(dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(args[name].shape, generator=gen) for name in "qkv")
    positional = [q, k, v, args["cu_seqlens_q"], args["cu_seqlens_k"], 100, 100]
    out = flash_attn_varlen_func(*positional, causal=causal, window_size=window_size, softcap=softcap)
    # One call per sequence with queries and keys (4 of 7), each with the normalized mask.
    assert op_calls == [mask] * 4
    want, _ = packed_reference(q, k, v, LENGTHS_Q, LENGTHS_K, causal, 1 / 8, window_size, softcap)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)


def test_public_varlen_refuses_dropout(on_cpu):
    args = varlen_args(dtype=torch.float32)
    positional = [args[name] for name in ("q", "k", "v", "cu_seqlens_q", "cu_seqlens_k")] + [100, 100]
    with pytest.raises(NotImplementedError, match=r"dropout_p=0.5 is not supported yet"):
        flash_attn_varlen_func(*positional, 0.5)


def test_offsets_are_copied_to_the_host_once_per_tensor_and_version():
    cu = torch.tensor([0, 5, 9], dtype=torch.int32)
    first = inputs.offsets_on_host(cu)
    assert first == [0, 5, 9]
    assert inputs.offsets_on_host(cu) is first            # the same tensor again: no second copy
    cu[2] = 11                                            # an in-place write bumps its version
    assert inputs.offsets_on_host(cu) == [0, 5, 11]
    other = torch.tensor([0, 5, 9], dtype=torch.int32)    # equal values, another tensor: its own copy
    assert inputs.offsets_on_host(other) == [0, 5, 9] and inputs.offsets_on_host(other) is not first
    key = id(other)
    del other                                             # a freed tensor's entry goes with it
    assert key not in inputs._HOST_OFFSETS
