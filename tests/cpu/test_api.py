"""flash_attn_func as a drop-in for FlashAttention's, without a GPU: the signature's order, the
checks of FlashAttention's extra arguments (dropout_p, softcap, alibi_slopes, window_size), what
return_attn_probs returns, and torch.compile(fullgraph=True) over the new arguments. Tensors
are fake CUDA tensors (shapes only) or CPU tensors where only the checks run."""
import inspect
import math

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import flashgen
from flashgen.inputs import causal_from_window, check_flash_attn_options
from flashgen.reference import visible_keys

# FlashAttention 2's flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
# window_size=(-1, -1), softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False).
FA_ARGUMENTS = [("q", inspect.Parameter.empty), ("k", inspect.Parameter.empty), ("v", inspect.Parameter.empty),
                ("dropout_p", 0.0), ("softmax_scale", None), ("causal", False), ("window_size", (-1, -1)),
                ("softcap", 0.0), ("alibi_slopes", None), ("deterministic", False), ("return_attn_probs", False)]


def positional_and_keyword_only(fn):
    params = inspect.signature(fn).parameters.values()
    positional = [(p.name, p.default) for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    keyword_only = {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}
    assert all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
    return positional, keyword_only


def test_flash_attn_func_takes_flash_attentions_arguments_in_its_order():
    positional, keyword_only = positional_and_keyword_only(flashgen.flash_attn_func)
    assert positional == FA_ARGUMENTS
    assert keyword_only == {"arch": None, "return_lse": False}


def test_flash_attn_varlen_func_takes_flash_attentions_arguments_in_its_order():
    positional, keyword_only = positional_and_keyword_only(flashgen.flash_attn_varlen_func)
    offsets = [(name, inspect.Parameter.empty) for name in
               ("cu_seqlens_q", "cu_seqlens_k", "max_seqlen_q", "max_seqlen_k")]
    assert positional == FA_ARGUMENTS[:3] + offsets + FA_ARGUMENTS[3:]
    assert keyword_only == {"arch": None}


def test_both_import_from_flashgen_as_from_flash_attn():
    from flashgen import flash_attn_func, flash_attn_varlen_func
    assert {"flash_attn_func", "flash_attn_varlen_func"} <= set(flashgen.__all__)
    assert callable(flash_attn_func) and callable(flash_attn_varlen_func)


OPTIONS = dict(dropout_p=0.0, softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False)


@pytest.mark.parametrize("changed,error,message", [
    ({"dropout_p": 0.1}, NotImplementedError, "dropout_p=0.1 is not supported yet: flashgen's kernels have no "
                                              "attention dropout; supported: dropout_p=0.0"),
    ({"dropout_p": 1.0}, ValueError, "dropout_p must be in [0, 1)"),
    ({"dropout_p": -0.5}, ValueError, "dropout_p must be in [0, 1)"),
    ({"dropout_p": math.nan}, ValueError, "dropout_p must be in [0, 1)"),
    ({"dropout_p": "0.1"}, TypeError, "dropout_p must be a float, got str"),
    # flashgen's old order had causal 4th: an old positional call lands a bool in dropout_p.
    ({"dropout_p": True}, TypeError, "causal is the 6th positional argument"),
    ({"softcap": 30.0}, NotImplementedError, "softcap=30.0 is not supported yet: flashgen's kernels are not built "
                                             "with softcapping; supported: softcap=0.0"),
    ({"softcap": -1.0}, ValueError, "softcap must be a finite number >= 0 (0.0 means no capping), got -1.0"),
    ({"softcap": math.inf}, ValueError, "softcap must be a finite number >= 0"),
    ({"softcap": None}, TypeError, "softcap must be a float, got NoneType"),
    ({"alibi_slopes": torch.zeros(4, dtype=torch.float32)}, NotImplementedError,
     "alibi_slopes=<tensor of shape (4,), torch.float32> is not supported yet: flashgen's kernels add no ALiBi "
     "bias; supported: alibi_slopes=None"),
    ({"deterministic": 1}, TypeError, "deterministic must be a bool, got int"),
    ({"return_attn_probs": None}, TypeError, "return_attn_probs must be a bool, got NoneType"),
])
def test_flash_attention_options_name_the_argument_the_value_and_what_runs(changed, error, message):
    with pytest.raises(error) as info:
        check_flash_attn_options(**{**OPTIONS, **changed})
    assert message in str(info.value)


def test_supported_options_pass():
    check_flash_attn_options(**OPTIONS)
    check_flash_attn_options(**{**OPTIONS, "dropout_p": 0, "softcap": 0, "deterministic": True,
                                "return_attn_probs": True})


def test_return_lse_and_return_attn_probs_together_is_an_error():
    with pytest.raises(ValueError, match="pass one"):
        check_flash_attn_options(**{**OPTIONS, "return_attn_probs": True}, return_lse=True)


@pytest.mark.parametrize("window_size", [(1,), (1, 2, 3), (1.0, 2), (True, 0), None, "ab", (None, None), 64])
def test_window_size_not_a_pair_of_ints(window_size):
    with pytest.raises(ValueError, match=r"window_size must be a pair of ints \(left, right\)"):
        causal_from_window(False, window_size, 8, 8)


@pytest.mark.parametrize("window_size", [(-2, -1), (-1, -7), (-3, 0)])
def test_window_size_below_minus_one(window_size):
    with pytest.raises(ValueError, match=r"window_size entries must be -1 \(unbounded\) or >= 0"):
        causal_from_window(False, window_size, 8, 8)


@pytest.mark.parametrize("causal,window_size,seqlen_q,seqlen_k,runs_causal", [
    (False, (-1, -1), 8, 8, False),
    (True, (-1, -1), 8, 8, True),
    (False, (-1, 0), 8, 8, True),         # FlashAttention's rule: causal is the window (-1, 0)
    (True, (-1, 0), 8, 8, True),
    (True, [-1, 0], 8, 8, True),          # a list, as a config file may give
    (True, (-1, 3), 8, 8, True),          # causal sets the right side to 0, as in FlashAttention
    (False, (8, 8), 8, 8, False),         # reaches past every key on both sides
    (False, (7, 7), 8, 8, False),         # just reaches every key
    (True, (7, -1), 8, 8, True),
    (False, (99, 0), 4, 100, True),
    (True, (-1, -1), 1, 1, True),         # one query: causal stays causal (the same mask as full)
])
def test_windows_that_are_full_or_causal_attention_run(causal, window_size, seqlen_q, seqlen_k, runs_causal):
    assert causal_from_window(causal, window_size, seqlen_q, seqlen_k) is runs_causal


@pytest.mark.parametrize("causal,window_size,seqlen_q,seqlen_k", [
    (False, (6, -1), 8, 8),    # the last query misses key 0
    (True, (6, -1), 8, 8),
    (False, (-1, 6), 8, 8),    # the first query misses the last key
    (False, (-1, 1), 8, 8),
    (False, (128, 0), 4096, 4096),
    # FlashAttention 2 would drop a right side >= seqlen_k; with more queries than keys it still masks.
    (False, (-1, 10), 100, 10),
])
def test_sliding_windows_are_not_supported_yet(causal, window_size, seqlen_q, seqlen_k):
    with pytest.raises(NotImplementedError) as info:
        causal_from_window(causal, window_size, seqlen_q, seqlen_k)
    message = str(info.value)
    assert f"window_size={tuple(window_size)}" in message and "sliding window" in message
    assert "supported: window_size=(-1, -1) (full attention), (-1, 0) or causal=True" in message
    assert f"left >= seqlen_k - 1 = {seqlen_k - 1}" in message


def window_mask(causal, window_size, seqlen_q, seqlen_k):
    """FlashAttention's local mask written out: query i sees key j when
    i + seqlen_k - seqlen_q - left <= j <= i + seqlen_k - seqlen_q + right, -1 unbounded, and
    causal sets right to 0."""
    left, right = window_size
    right = 0 if causal else right
    diagonal = torch.arange(seqlen_q)[:, None] + seqlen_k - seqlen_q
    j = torch.arange(seqlen_k)[None, :]
    mask = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool)
    if left >= 0:
        mask &= j >= diagonal - left
    if right >= 0:
        mask &= j <= diagonal + right
    return mask


def test_every_small_window_runs_exactly_when_its_mask_is_full_or_causal():
    for seqlen_q in range(1, 6):
        for seqlen_k in range(1, 6):
            for left in range(-1, 7):
                for right in range(-1, 7):
                    for causal in (False, True):
                        mask = window_mask(causal, (left, right), seqlen_q, seqlen_k)
                        case = (causal, (left, right), seqlen_q, seqlen_k)
                        try:
                            runs_causal = causal_from_window(*case)
                        except NotImplementedError:
                            assert not any(torch.equal(mask, visible_keys(seqlen_q, seqlen_k, c, "cpu"))
                                           for c in (False, True)), case
                        else:
                            assert torch.equal(mask, visible_keys(seqlen_q, seqlen_k, runs_causal, "cpu")), case


def fake_qkv(batch=2, seqlen_q=128, seqlen_k=96, nheads=8, nheads_kv=2, head_dim=64):
    """Fake CUDA tensors: flash_attn_func runs its checks and the ops' fake implementations."""
    q = torch.empty(batch, seqlen_q, nheads, head_dim, dtype=torch.bfloat16, device="cuda")
    k, v = (torch.empty(batch, seqlen_k, nheads_kv, head_dim, dtype=torch.bfloat16, device="cuda") for _ in range(2))
    return q, k, v


@pytest.mark.parametrize("argument,value", [("dropout_p", 0.1), ("softcap", 50.0),
                                            ("alibi_slopes", "tensor"), ("window_size", (256, 0))])
def test_unsupported_arguments_raise_from_both_public_functions(argument, value):
    with FakeTensorMode():
        q, k, v = fake_qkv(seqlen_q=1024, seqlen_k=1024)
        value = torch.empty(q.shape[2], device="cuda") if value == "tensor" else value
        with pytest.raises(NotImplementedError, match=f"{argument}=.* is not supported yet"):
            flashgen.flash_attn_func(q, k, v, **{argument: value})
        if argument != "window_size":  # the varlen window check comes after reading cu_seqlens
            cu = torch.zeros(3, dtype=torch.int32, device="cuda")
            with pytest.raises(NotImplementedError, match=f"{argument}=.* is not supported yet"):
                flashgen.flash_attn_varlen_func(q[0], k[0], v[0], cu, cu, 1024, 1024, **{argument: value})


def test_return_attn_probs_returns_out_lse_and_none():
    with FakeTensorMode():
        q, k, v = fake_qkv()
        out, lse, probs = flashgen.flash_attn_func(q, k, v, 0.0, None, True, return_attn_probs=True)
        out_only = flashgen.flash_attn_func(q, k, v)
        out2, lse2 = flashgen.flash_attn_func(q, k, v, return_lse=True)
    assert probs is None
    assert out.shape == out_only.shape == out2.shape == q.shape and out.dtype == q.dtype
    assert lse.shape == lse2.shape == (2, 8, 128) and lse.dtype == torch.float32


def test_old_positional_causal_is_refused_not_taken_as_dropout():
    with FakeTensorMode():
        q, k, v = fake_qkv()
        with pytest.raises(TypeError, match="pass it as causal="):
            flashgen.flash_attn_func(q, k, v, True)


def causal_flags_in_the_compiled_graph(**kwargs):
    """torch.compile(fullgraph=True) flash_attn_func with kwargs on fake CUDA tensors; returns the
    causal argument of each flashgen::fwd call in the graph (a graph break would raise)."""
    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return gm

    def attention(q, k, v):
        return flashgen.flash_attn_func(q, k, v, **kwargs)

    torch._dynamo.reset()
    with FakeTensorMode():
        result = torch.compile(attention, backend=keep, fullgraph=True)(*fake_qkv())
    (graph,) = graphs
    calls = [n for n in graph.graph.nodes if n.op == "call_function" and "flashgen.fwd" in str(n.target)]
    return [n.args[3] for n in calls], result


@pytest.mark.parametrize("kwargs,causal", [
    ({}, False),
    ({"causal": True}, True),
    ({"window_size": (-1, 0)}, True),
    ({"window_size": (96, 128)}, False),   # reaches every key of 128 queries x 96 keys
    ({"dropout_p": 0.0, "softcap": 0.0, "alibi_slopes": None, "deterministic": True, "causal": True}, True),
])
def test_compiled_graph_runs_the_mask_the_window_asks_for(kwargs, causal):
    flags, _ = causal_flags_in_the_compiled_graph(**kwargs)
    assert flags == [causal]


def test_return_attn_probs_compiles_in_one_graph():
    flags, (out, lse, probs) = causal_flags_in_the_compiled_graph(return_attn_probs=True, window_size=(-1, 0))
    assert flags == [True] and probs is None and lse.shape == (2, 8, 128)
