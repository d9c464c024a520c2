"""flash_attn_func as a drop-in for FlashAttention's, without a GPU: the signature's order, the
checks of FlashAttention's extra arguments (dropout_p, softcap, alibi_slopes, window_size), the
mask a (causal, window_size) pair runs (mask_args), the reference's windows and softcap against
brute force, what return_attn_probs returns, and torch.compile(fullgraph=True) over the new
arguments. Tensors are fake CUDA tensors (shapes only), or CPU tensors where only the checks
run or a CPU stand-in kernel computes."""
import inspect
import math

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import flashgen
from flashgen import inputs
from flashgen.inputs import check_flash_attn_options, mask_args, window_feature
from flashgen.reference import attention_reference, attention_reference_grads, visible_keys
from tests.cpu.test_library_ops import cpu_stand_in  # noqa: F401 - a fixture

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
    for softcap in (30.0, 50, 1e-3, 1e6):   # softcapping runs (on kernels built with it)
        check_flash_attn_options(**{**OPTIONS, "softcap": softcap})


def test_return_lse_and_return_attn_probs_together_is_an_error():
    with pytest.raises(ValueError, match="pass one"):
        check_flash_attn_options(**{**OPTIONS, "return_attn_probs": True}, return_lse=True)


@pytest.mark.parametrize("window_size", [(1,), (1, 2, 3), (1.0, 2), (True, 0), None, "ab", (None, None), 64])
def test_window_size_not_a_pair_of_ints(window_size):
    with pytest.raises(ValueError, match=r"window_size must be a pair of ints \(left, right\)"):
        mask_args(False, window_size, 8, 8)


@pytest.mark.parametrize("window_size", [(-2, -1), (-1, -7), (-3, 0)])
def test_window_size_below_minus_one(window_size):
    with pytest.raises(ValueError, match=r"window_size entries must be -1 \(unbounded\) or >= 0"):
        mask_args(False, window_size, 8, 8)


@pytest.mark.parametrize("causal,window_size,seqlen_q,seqlen_k,runs", [
    (False, (-1, -1), 8, 8, (False, -1, -1)),
    (True, (-1, -1), 8, 8, (True, -1, -1)),
    (False, (-1, 0), 8, 8, (True, -1, -1)),         # FlashAttention's rule: causal is the window (-1, 0)
    (True, (-1, 0), 8, 8, (True, -1, -1)),
    (True, [-1, 0], 8, 8, (True, -1, -1)),          # a list, as a config file may give
    (True, (-1, 3), 8, 8, (True, -1, -1)),          # causal sets the right side to 0, as in FlashAttention
    (False, (8, 8), 8, 8, (False, -1, -1)),         # reaches past every key on both sides
    (False, (7, 7), 8, 8, (False, -1, -1)),         # just reaches every key
    (False, (6, 7), 8, 8, (False, 6, -1)),          # the last query misses key 0
    (False, (7, 6), 8, 8, (False, -1, 6)),          # the first query misses the last key
    (True, (7, -1), 8, 8, (True, -1, -1)),
    (False, (99, 0), 4, 100, (True, -1, -1)),
    (True, (-1, -1), 1, 1, (True, -1, -1)),         # one query: causal stays causal (the same mask as full)
    (False, (0, 0), 8, 8, (True, 0, -1)),           # the diagonal alone: causal with a left bound of 0
    (False, (0, 0), 1, 1, (True, -1, -1)),
    (False, (128, 64), 4096, 4096, (False, 128, 64)),
    (True, (128, 64), 4096, 4096, (True, 128, -1)),  # the kernel's causal flag is the right bound 0
    (False, (4096, 0), 4096, 4096, (True, -1, -1)),  # reaches every key to the left: causal
    (True, (4096, 0), 4096, 4096, (True, -1, -1)),
    (False, (4096, 0), 4096, 8192, (True, 4096, -1)),
    (False, (10**9, 10**9), 4096, 4096, (False, -1, -1)),
    (True, (10**9, 10**9), 4096, 4096, (True, -1, -1)),
    # FlashAttention 2 drops a right side >= seqlen_k; with more queries than keys it still masks
    # the first queries' keys by the rule (as FlashAttention 3 does), so it stays.
    (False, (-1, 10), 100, 10, (False, -1, 10)),
    (False, (-1, 99), 100, 10, (False, -1, -1)),
    (False, (5, -1), 3, 6, (False, -1, -1)),        # left >= seqlen_k - 1 with fewer queries than keys
    (False, (4, -1), 3, 6, (False, 4, -1)),
])
def test_mask_args_normalize_the_window(causal, window_size, seqlen_q, seqlen_k, runs):
    assert mask_args(causal, window_size, seqlen_q, seqlen_k) == runs
    assert window_feature(*runs[1:]) is (runs[1] >= 0 or runs[2] >= 0)


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


def test_every_small_window_runs_its_own_mask_and_needs_the_window_feature_only_if_it_masks_more():
    full_or_causal = {}
    for seqlen_q in range(1, 6):
        for seqlen_k in range(1, 6):
            for left in range(-1, 7):
                for right in range(-1, 7):
                    for causal in (False, True):
                        case = (causal, (left, right), seqlen_q, seqlen_k)
                        runs_causal, window_left, window_right = mask_args(*case)
                        mask = window_mask(*case)
                        # Exact: the kernels' mask (causal flag: right 0) is the asked-for one.
                        assert torch.equal(visible_keys(seqlen_q, seqlen_k, runs_causal, "cpu",
                                                        (window_left, window_right)), mask), case
                        assert window_right == -1 or not runs_causal, case
                        if not window_feature(window_left, window_right):
                            assert torch.equal(mask, visible_keys(seqlen_q, seqlen_k, runs_causal, "cpu")), case
                        # A side that reaches every key is never passed as a bound.
                        if window_left >= 0:
                            assert not torch.equal(mask, window_mask(causal, (-1, right), seqlen_q, seqlen_k)), case
                        if window_right >= 0:
                            assert not torch.equal(mask, window_mask(False, (left, -1), seqlen_q, seqlen_k)), case
                        full_or_causal[case] = not window_feature(window_left, window_right)
    assert 0 < sum(full_or_causal.values()) < len(full_or_causal)


class NoComparing(int):
    """A length that fails any comparison or arithmetic: as a dynamic shape, it would add a guard."""

    def _refuse(self, *args):
        raise AssertionError("mask_args compared a length")

    __ge__ = __gt__ = __le__ = __lt__ = __eq__ = __sub__ = __rsub__ = _refuse
    __hash__ = int.__hash__


@pytest.mark.parametrize("causal,window_size", [(False, (-1, -1)), (True, (-1, -1)), (False, (-1, 0)),
                                                (True, (-1, 5))])
def test_full_and_causal_attention_compare_no_length(causal, window_size):
    assert mask_args(causal, window_size, NoComparing(100), NoComparing(100)) == (causal or window_size[1] == 0,
                                                                                  -1, -1)


# The reference's windows and softcap against attention written out row by row, in float64.
def brute_force_attention(q, k, v, causal, window_size, softcap, scale):
    """out (b, sq, h, d) and lse (b, h, sq): each row's visible keys by FlashAttention's rule,
    scores scale * q.k capped at softcap * tanh(score / softcap), softmax over the visible keys;
    a row with no visible key gives 0 and lse +inf. Differentiable (torch ops on float64)."""
    b, sq, h, d = q.shape
    sk, hk = k.shape[1], k.shape[2]
    left, right = window_size
    right = 0 if causal else right
    outs, lses = [], []
    for bi in range(b):
        for hi in range(h):
            kh = hi // (h // hk)
            for i in range(sq):
                diagonal = i + sk - sq
                keys = [j for j in range(sk)
                        if (left < 0 or j >= diagonal - left) and (right < 0 or j <= diagonal + right)]
                if not keys:
                    outs.append(torch.zeros(d, dtype=torch.float64))
                    lses.append(torch.tensor(math.inf, dtype=torch.float64))
                    continue
                s = torch.stack([q[bi, i, hi].double() @ k[bi, j, kh].double() for j in keys]) * scale
                if softcap:
                    s = softcap * torch.tanh(s / softcap)
                p = torch.softmax(s, dim=0)
                outs.append(sum(p[n] * v[bi, j, kh].double() for n, j in enumerate(keys)))
                lses.append(torch.logsumexp(s, dim=0))
    out = torch.stack(outs).view(b, h, sq, d).transpose(1, 2)
    return out, torch.stack(lses).view(b, h, sq)


REFERENCE_CASES = [
    # (sq, sk, nheads, nheads_kv, causal, window_size, softcap)
    (7, 7, 2, 2, False, (1, 1), 0.0),
    (5, 9, 4, 2, False, (2, 0), 0.0),
    (9, 5, 2, 1, False, (0, 0), 0.0),      # more queries than keys: the first 4 rows see no key
    (9, 5, 2, 2, True, (1, -1), 0.0),
    (6, 11, 2, 2, True, (3, 7), 0.0),      # causal ignores the right side
    (5, 9, 4, 2, False, (-1, -1), 0.7),    # softcap: logits far beyond it (scale 3)
    (9, 5, 2, 2, True, (2, -1), 1.5),      # both, and rows with no key
    (8, 8, 2, 2, False, (-1, 2), 30.0),
]


@pytest.mark.parametrize("sq,sk,nheads,nheads_kv,causal,window_size,softcap", REFERENCE_CASES)
def test_reference_window_and_softcap_match_brute_force(sq, sk, nheads, nheads_kv, causal, window_size, softcap):
    gen = torch.Generator().manual_seed(sq * 100 + sk)
    q = torch.randn(2, sq, nheads, 16, generator=gen, requires_grad=True)
    k, v = (torch.randn(2, sk, nheads_kv, 16, generator=gen, requires_grad=True) for _ in range(2))
    scale = 3.0 if softcap else 0.25
    out, lse = attention_reference(q, k, v, causal, scale, window_size=window_size, softcap=softcap)
    want_out, want_lse = brute_force_attention(q, k, v, causal, window_size, softcap, scale)
    torch.testing.assert_close(out.double(), want_out, rtol=1e-5, atol=1e-5)
    assert torch.equal(lse == math.inf, want_lse == math.inf) and lse.dtype == torch.float32
    torch.testing.assert_close(lse.double(), want_lse, rtol=1e-5, atol=1e-5)
    no_key = ~visible_keys(sq, sk, causal, "cpu", window_size).any(dim=1)
    assert torch.equal(no_key, want_lse[0, 0] == math.inf)
    if (sq, sk, window_size) in ((9, 5, (0, 0)), (9, 5, (2, -1))):   # the first 4 rows see no key
        assert no_key[:4].all() and not no_key[4:].any()
    assert (out[:, no_key] == 0).all() and (lse[:, :, no_key] == math.inf).all()
    # The gradients: attention_reference_grads (float32) against autograd through the loops.
    dout = torch.randn(out.shape, generator=gen)
    grads = attention_reference_grads(q, k, v, dout, causal, scale, window_size=window_size, softcap=softcap)
    want_grads = torch.autograd.grad(want_out, (q, k, v), dout.double())
    for got, want in zip(grads, want_grads):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), want.double(), rtol=1e-4, atol=1e-5)


def test_softcap_caps_the_scores_the_softmax_sees():
    # One query, two keys: the capped scores are softcap * tanh(s / softcap), as in the formula.
    q = torch.tensor([[[[1.0, 0.0]]]])
    k = torch.tensor([[[[80.0, 0.0]], [[-40.0, 0.0]]]])
    v = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    out, lse = attention_reference(q, k, v, softmax_scale=1.0, softcap=30.0)
    capped = 30.0 * torch.tanh(torch.tensor([80.0, -40.0]) / 30.0)
    p = torch.softmax(capped, dim=0)
    torch.testing.assert_close(out[0, 0, 0], p)
    torch.testing.assert_close(lse[0, 0, 0], torch.logsumexp(capped, dim=0))
    assert lse.item() < 30.0 + math.log(2)   # capped: never above softcap + log(keys)


def fake_qkv(batch=2, seqlen_q=128, seqlen_k=96, nheads=8, nheads_kv=2, head_dim=64):
    """Fake CUDA tensors: flash_attn_func runs its checks and the ops' fake implementations."""
    q = torch.empty(batch, seqlen_q, nheads, head_dim, dtype=torch.bfloat16, device="cuda")
    k, v = (torch.empty(batch, seqlen_k, nheads_kv, head_dim, dtype=torch.bfloat16, device="cuda") for _ in range(2))
    return q, k, v


@pytest.mark.parametrize("argument,value", [("dropout_p", 0.1), ("alibi_slopes", "tensor")])
def test_unsupported_arguments_raise_from_both_public_functions(argument, value):
    with FakeTensorMode():
        q, k, v = fake_qkv(seqlen_q=1024, seqlen_k=1024)
        value = torch.empty(q.shape[2], device="cuda") if value == "tensor" else value
        with pytest.raises(NotImplementedError, match=f"{argument}=.* is not supported yet"):
            flashgen.flash_attn_func(q, k, v, **{argument: value})
        cu = torch.zeros(3, dtype=torch.int32, device="cuda")
        with pytest.raises(NotImplementedError, match=f"{argument}=.* is not supported yet"):
            flashgen.flash_attn_varlen_func(q[0], k[0], v[0], cu, cu, 1024, 1024, **{argument: value})


@pytest.mark.parametrize("kwargs", [{"window_size": (256, 0)}, {"window_size": (128, 64), "causal": True},
                                    {"softcap": 50.0}, {"softcap": 30, "window_size": (-1, 7)}])
def test_sliding_windows_and_softcap_run(kwargs):
    with FakeTensorMode():
        q, k, v = fake_qkv(seqlen_q=1024, seqlen_k=1024)
        out, lse = flashgen.flash_attn_func(q, k, v, return_lse=True, **kwargs)
    assert out.shape == q.shape and lse.shape == (2, 8, 1024)


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


def mask_args_in_the_compiled_graph(**kwargs):
    """torch.compile(fullgraph=True) flash_attn_func with kwargs on fake CUDA tensors; returns the
    (causal, window_left, window_right, softcap) arguments of each flashgen::fwd call in the graph
    (a graph break would raise), trailing defaults filled in."""
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
    schema = torch.ops.flashgen.fwd.default._schema.arguments
    filled = [[*n.args, *(a.default_value for a in schema[len(n.args):])] for n in calls]
    return [(args[3], *args[7:]) for args in filled], result


@pytest.mark.parametrize("kwargs,mask", [
    ({}, (False, -1, -1, 0.0)),
    ({"causal": True}, (True, -1, -1, 0.0)),
    ({"window_size": (-1, 0)}, (True, -1, -1, 0.0)),
    ({"window_size": (96, 128)}, (False, -1, -1, 0.0)),   # reaches every key of 128 queries x 96 keys
    ({"window_size": (32, 16)}, (False, 32, 16, 0.0)),
    ({"window_size": (32, 16), "causal": True, "softcap": 30.0}, (True, 32, -1, 30.0)),
    ({"softcap": 50}, (False, -1, -1, 50.0)),
    ({"dropout_p": 0.0, "softcap": 0.0, "alibi_slopes": None, "deterministic": True, "causal": True},
     (True, -1, -1, 0.0)),
])
def test_compiled_graph_runs_the_mask_the_window_asks_for(kwargs, mask):
    masks, _ = mask_args_in_the_compiled_graph(**kwargs)
    assert masks == [mask]


def test_return_attn_probs_compiles_in_one_graph():
    masks, (out, lse, probs) = mask_args_in_the_compiled_graph(return_attn_probs=True, window_size=(-1, 0))
    assert masks == [(True, -1, -1, 0.0)] and probs is None and lse.shape == (2, 8, 128)


def test_a_compiled_call_follows_windows_and_softcaps_that_change(cpu_stand_in, monkeypatch):  # noqa: F811
    # CPU tensors through flash_attn_func over the CPU stand-in kernel. A window side that changes
    # between calls becomes a dynamic int (SymInt) on recompiling: mask_args guards on it, and the
    # op takes it as it is.
    monkeypatch.setattr(inputs, "_check_dtypes_devices_strides", lambda q, k, v: None)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 16, 2, 32, generator=gen, requires_grad=True)
    k, v = (torch.randn(1, 24, 2, 32, generator=gen, requires_grad=True) for _ in range(2))

    def attention(q, k, v, left, softcap):
        return flashgen.flash_attn_func(q, k, v, window_size=(left, 1), softcap=softcap)

    torch._dynamo.reset()
    compiled = torch.compile(attention, backend="aot_eager", fullgraph=True)
    for left, softcap in ((2, 0.0), (5, 1.5), (-1, 2.0), (30, 0.0), (0, 0.0)):
        out = compiled(q, k, v, left, softcap)
        want = attention_reference(q, k, v, window_size=(left, 1), softcap=softcap)[0]
        torch.testing.assert_close(out, want)
        grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
        want_grads = attention_reference_grads(q, k, v, torch.ones_like(out), window_size=(left, 1), softcap=softcap)
        for got, w in zip(grads, want_grads):
            torch.testing.assert_close(got, w)
