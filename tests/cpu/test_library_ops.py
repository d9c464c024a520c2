"""flashgen::fwd and flashgen::bwd as torch.library ops, without a GPU: their schemas, fake
implementations (shapes, dtypes, strides of the outputs on fake CUDA tensors), the autograd
formula, opcheck over a CPU stand-in kernel, torch.compile(fullgraph=True) tracing
flash_attn_func with no dispatch work in the graph, and the window bounds and softcap reaching
kernel choice (the features) and the extension's calls, forward and backward.
tests/gpu/test_library_ops.py runs the real kernels through the same checks."""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from flashgen import dispatch, inputs, ops
from flashgen.errors import KernelNotBuiltError
from flashgen.reference import attention_reference, attention_reference_grads, capped_scores, visible_keys

# The window bounds and softcap come last with defaults that switch them off (int arguments are
# SymInt in an inferred schema).
MASK_SCHEMA = "SymInt window_left=-1, SymInt window_right=-1, float softcap=0."
FWD_SCHEMA = ("flashgen::fwd(Tensor q, Tensor k, Tensor v, bool causal, float softmax_scale, str? arch, "
              f"bool deterministic, {MASK_SCHEMA}) -> (Tensor, Tensor)")
BWD_SCHEMA = ("flashgen::bwd(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dout, bool causal, "
              f"float softmax_scale, str? arch, bool deterministic, {MASK_SCHEMA}) -> (Tensor, Tensor, Tensor)")

# (q shape, kv shape): equal heads, GQA, and a head dim outside the catalog (72 runs padded to 96).
SHAPES = [((2, 16, 4, 64), (2, 16, 4, 64)), ((1, 7, 8, 128), (1, 33, 2, 128)), ((2, 5, 3, 72), (2, 9, 1, 72))]


def test_schemas():
    assert str(torch.ops.flashgen.fwd.default._schema) == FWD_SCHEMA
    assert str(torch.ops.flashgen.bwd.default._schema) == BWD_SCHEMA


@pytest.mark.parametrize("q_shape,kv_shape", SHAPES)
def test_fake_outputs_on_fake_cuda_tensors(q_shape, kv_shape):
    with FakeTensorMode():
        # A non-contiguous q (heads-major storage): outputs are contiguous all the same.
        q = torch.empty(q_shape[0], q_shape[2], q_shape[1], q_shape[3], dtype=torch.bfloat16,
                        device="cuda").transpose(1, 2)
        k, v = (torch.empty(kv_shape, dtype=torch.bfloat16, device="cuda") for _ in range(2))
        out, lse = torch.ops.flashgen.fwd(q, k, v, True, 0.125, None, False)
        dq, dk, dv = torch.ops.flashgen.bwd(q, k, v, out, lse, out, True, 0.125, None, False)
        # The same with a window and a softcap: the outputs do not depend on them.
        windowed = torch.ops.flashgen.fwd(q, k, v, False, 0.125, None, False, 3, 2, 30.0)
        windowed_grads = torch.ops.flashgen.bwd(q, k, v, out, lse, out, False, 0.125, None, False, 3, 2, 30.0)
    for got, want in zip((*windowed, *windowed_grads), (out, lse, dq, dk, dv)):
        assert (got.shape, got.dtype, got.stride()) == (want.shape, want.dtype, want.stride())
    batch, seqlen_q, nheads, _ = q_shape
    assert (out.shape, out.dtype, out.device.type, out.is_contiguous()) == (q_shape, torch.bfloat16, "cuda", True)
    assert (lse.shape, lse.dtype, lse.is_contiguous()) == ((batch, nheads, seqlen_q), torch.float32, True)
    for grad, shape in ((dq, q_shape), (dk, kv_shape), (dv, kv_shape)):
        assert (grad.shape, grad.dtype, grad.is_contiguous()) == (shape, torch.bfloat16, True)


def test_autograd_formula_calls_the_backward_op_on_meta_tensors():
    q, k, v = (torch.empty(s, dtype=torch.float16, device="meta", requires_grad=True)
               for s in ((2, 16, 8, 64), (2, 24, 2, 64), (2, 24, 2, 64)))
    for mask in ((), (5, -1, 0.0), (4, 7, 30.0)):   # without the trailing arguments, and with them
        q.grad = k.grad = v.grad = None
        out, lse = torch.ops.flashgen.fwd(q, k, v, False, 0.125, None, True, *mask)
        assert out.requires_grad and not lse.requires_grad  # lse is not differentiable, as before
        out.sum().backward()
        assert [t.grad.shape for t in (q, k, v)] == [q.shape, k.shape, v.shape]
        assert all(t.grad.dtype == torch.float16 for t in (q, k, v))


# A CPU stand-in for the kernels: the fp32 reference, with the kernels' output layout. It lets
# opcheck and the compiler run the ops' real path (schema, fake, autograd) without a GPU.
def _fwd_reference(q, k, v, causal, softmax_scale, arch, deterministic, window_left=-1, window_right=-1,
                   softcap=0.0):
    out, lse = attention_reference(q, k, v, causal, softmax_scale, window_size=(window_left, window_right),
                                   softcap=softcap)
    return out.contiguous(), lse.contiguous()


def _bwd_reference(q, k, v, out, lse, dout, causal, softmax_scale, arch, deterministic, window_left=-1,
                   window_right=-1, softcap=0.0):
    # By formula in fp32: an op's kernel runs below autograd, so it cannot call backward().
    groups = q.shape[2] // k.shape[2]
    q32, k32, v32, dout32 = (t.float() for t in (q, k, v, dout))
    k32, v32 = (t.repeat_interleave(groups, dim=2) for t in (k32, v32))
    scores = capped_scores(torch.einsum("bqhd,bkhd->bhqk", q32, k32) * softmax_scale, softcap)
    visible = visible_keys(q.shape[1], k.shape[1], causal, q.device, (window_left, window_right))
    probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)
    dv = torch.einsum("bhqk,bqhd->bkhd", probs, dout32)
    dprobs = torch.einsum("bqhd,bkhd->bhqk", dout32, v32)
    dscores = probs * (dprobs - (probs * dprobs).sum(-1, keepdim=True)) * softmax_scale
    if softcap:   # through the cap: d(softcap * tanh(x / softcap))/dx = 1 - tanh^2
        dscores = dscores * (1 - (scores / softcap) ** 2)
    dq = torch.einsum("bhqk,bkhd->bqhd", dscores, k32)
    dk = torch.einsum("bhqk,bqhd->bkhd", dscores, q32)
    dk, dv = (t.unflatten(2, (k.shape[2], groups)).sum(3) for t in (dk, dv))
    return tuple(g.to(q.dtype).contiguous() for g in (dq, dk, dv))


# (causal, window_left, window_right, softcap) as the ops take them: no mask, causal, windows
# (rows of 7 queries x 33 keys that see no key among them), softcap with and without a window.
MASKS = [(False, -1, -1, 0.0), (True, -1, -1, 0.0), (False, 4, 2, 0.0), (True, 3, -1, 0.0), (False, -1, 0, 0.0),
         (False, -1, -1, 2.0), (True, 5, -1, 1.5), (False, 0, 0, 0.5)]


@pytest.mark.parametrize("causal,window_left,window_right,softcap", MASKS)
def test_cpu_stand_in_backward_matches_autograd(causal, window_left, window_right, softcap):
    q, k, v = cpu_inputs(*SHAPES[1], requires_grad=False)
    dout = torch.randn(q.shape).to(q.dtype)
    want = attention_reference_grads(q, k, v, dout, causal, 0.125, window_size=(window_left, window_right),
                                     softcap=softcap)
    got = _bwd_reference(q, k, v, None, None, dout, causal, 0.125, None, False, window_left, window_right, softcap)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w.to(g.dtype))


@pytest.fixture
def cpu_stand_in():
    with torch.library._scoped_library("flashgen", "FRAGMENT") as lib:
        torch.library.register_kernel("flashgen::fwd", "cpu", _fwd_reference, lib=lib)
        torch.library.register_kernel("flashgen::bwd", "cpu", _bwd_reference, lib=lib)
        yield


def test_kernel_path_errors_keep_their_type_through_the_op():
    def not_built(*args):
        raise KernelNotBuiltError("flash_fwd_hdim64_bf16_sm80 is needed")

    with torch.library._scoped_library("flashgen", "FRAGMENT") as lib:
        torch.library.register_kernel("flashgen::fwd", "cpu", not_built, lib=lib)
        q = torch.zeros(1, 4, 1, 64, dtype=torch.bfloat16, requires_grad=True)
        with pytest.raises(KernelNotBuiltError, match="is needed"):
            torch.ops.flashgen.fwd(q, q, q, False, 0.125, None, False)


def cpu_inputs(q_shape, kv_shape, requires_grad=True):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen).to(torch.bfloat16).requires_grad_(requires_grad)
            for s in (q_shape, kv_shape, kv_shape)]


@pytest.mark.parametrize("q_shape,kv_shape,mask", [(*SHAPES[0], ()), (*SHAPES[1], ()), (*SHAPES[2], ()),
                                                     (*SHAPES[0], (6, 3, 0.0)), (*SHAPES[1], (-1, -1, 1.5)),
                                                     (*SHAPES[2], (2, 0, 2.0))])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_opcheck_over_the_cpu_stand_in(cpu_stand_in, q_shape, kv_shape, causal, mask):
    # mask: the trailing (window_left, window_right, softcap), or none (their defaults).
    q, k, v = cpu_inputs(q_shape, kv_shape)
    torch.library.opcheck(torch.ops.flashgen.fwd.default, (q, k, v, causal, 0.125, None, False, *mask))
    with torch.no_grad():
        out, lse = torch.ops.flashgen.fwd(q, k, v, causal, 0.125, None, False, *mask)
    dout = torch.randn_like(out)
    # The backward has no derivative of its own (no double backward): its inputs need no grad.
    args = [t.detach() for t in (q, k, v, out, lse, dout)]
    torch.library.opcheck(torch.ops.flashgen.bwd.default, (*args, causal, 0.125, None, True, *mask))


@pytest.mark.parametrize("mask", [(), (3, -1, 0.0), (4, 2, 1.5)], ids=["no-window", "window", "window-softcap"])
def test_compiled_forward_and_backward_trace_both_ops(cpu_stand_in, mask):
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []
    def keep(gm, example_inputs):
        graphs.append(gm)
        return make_boxed_func(gm)

    def attention(q, k, v):
        return torch.ops.flashgen.fwd(q, k, v, True, 0.125, None, False, *mask)[0]

    torch._dynamo.reset()   # else a recompile for other mask values makes them graph inputs (SymInt)
    compiled = torch.compile(attention, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep), fullgraph=True)
    q, k, v = cpu_inputs(*SHAPES[1])
    out = compiled(q, k, v)
    out.backward(torch.ones_like(out))
    grads = [t.grad for t in (q, k, v)]
    forward_graph, backward_graph = (gm.code for gm in graphs)
    assert "torch.ops.flashgen.fwd.default" in forward_graph and "flashgen.bwd" not in forward_graph
    assert "torch.ops.flashgen.bwd.default" in backward_graph
    # The backward op gets the forward's window and softcap (the autograd formula passes them).
    # The graph leaves out trailing arguments equal to their defaults: fill them in to compare.
    (bwd_call,) = [n for n in graphs[1].graph.nodes if n.target is torch.ops.flashgen.bwd.default]
    schema = torch.ops.flashgen.bwd.default._schema.arguments
    args = [*bwd_call.args, *(a.default_value for a in schema[len(bwd_call.args):])]
    assert args[6:] == [True, 0.125, None, False, *(mask or (-1, -1, 0.0))]
    q2, k2, v2 = cpu_inputs(*SHAPES[1])
    eager = attention(q2, k2, v2)
    eager.backward(torch.ones_like(eager))
    torch.testing.assert_close(out, eager, rtol=0, atol=0)
    for got, want in zip(grads, (q2.grad, k2.grad, v2.grad)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_flash_attn_func_traces_to_one_op_with_no_dispatch_in_the_graph(monkeypatch):
    def no_dispatch_while_tracing(*args):
        raise AssertionError("choose_kernel ran while tracing")

    monkeypatch.setattr(dispatch, "_choose", no_dispatch_while_tracing)
    graphs = []
    def keep(gm, example_inputs):
        graphs.append(gm)
        return gm

    def attention(q, k, v):
        return ops.flash_attn_func(q, k, v, causal=True, return_lse=True)

    torch._dynamo.reset()
    with FakeTensorMode():
        q = torch.empty(2, 128, 8, 128, dtype=torch.bfloat16, device="cuda")
        k, v = (torch.empty(2, 128, 2, 128, dtype=torch.bfloat16, device="cuda") for _ in range(2))
        out, lse = torch.compile(attention, backend=keep, fullgraph=True)(q, k, v)
    assert out.shape == q.shape and lse.shape == (2, 8, 128)
    (graph,) = graphs
    calls = [n.target for n in graph.graph.nodes if n.op == "call_function"]
    assert torch.ops.flashgen.fwd.default in calls or torch.ops.flashgen.fwd in calls, calls


# The window bounds and softcap from flash_attn_func to the kernels, without a GPU: the ops run
# their real implementation (_forward, _backward) on CPU tensors over a stand-in extension that
# computes the reference and records each call, and the real choose_kernel picks among stubbed
# sm90 kernel lists.
VARIANTS = ["", "_softcap", "_window", "_softcap_window"]


class RecordingExtension:
    """extension()'s fwd and bwd as the binding takes them, computed by the CPU stand-in."""

    def __init__(self):
        self.calls = []

    def fwd(self, name, q, k, v, out, lse, softmax_scale, causal, window_left, window_right, softcap):
        self.calls.append(("fwd", name, causal, window_left, window_right, softcap))
        o, l = _fwd_reference(q, k, v, causal, softmax_scale, None, False, window_left, window_right, softcap)
        out.copy_(o)
        lse.copy_(l)

    def bwd(self, name, q, k, v, out, dout, lse, dq, dk, dv, softmax_scale, causal, deterministic, window_left,
            window_right, softcap):
        self.calls.append(("bwd", name, causal, window_left, window_right, softcap))
        assert dk.shape == k.shape, "the stand-in takes no GQA (dk, dv would be per query head)"
        grads = _bwd_reference(q, k, v, out, lse, dout, causal, softmax_scale, None, deterministic, window_left,
                               window_right, softcap)
        for buffer, grad in zip((dq, dk, dv), grads):
            buffer.copy_(grad)


@pytest.fixture
def kernels_on_cpu(monkeypatch):
    """Returns (extension, chosen, build): the stand-in extension, the (direction, features) each
    choose_kernel call got, and build(*suffixes) to set which sm90 hdim64 bf16 variants are built."""
    ext, chosen, built = RecordingExtension(), [], []
    catalog = [f"flash_{d}_hdim64_bf16_sm90{s}" for d in ("fwd", "bwd") for s in VARIANTS]

    def recording_choose_kernel(direction, head_dim, dtype, capability, arch=None, features=frozenset()):
        chosen.append((direction, features))
        return dispatch.choose_kernel(direction, head_dim, dtype, capability, arch, features)

    def build(*suffixes):
        built[:] = [name for name in catalog if any(name.endswith(f"sm90{s}") for s in suffixes)]
        dispatch._kernel_sets.cache_clear()
        dispatch._choose.cache_clear()

    monkeypatch.delenv("FLASHGEN_ARCH", raising=False)
    monkeypatch.setenv("FLASHGEN_JIT", "0")
    monkeypatch.setattr(dispatch, "available_kernels", lambda: list(built))
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: list(catalog))
    monkeypatch.setattr(ops, "choose_kernel", recording_choose_kernel)
    monkeypatch.setattr(ops, "extension", lambda: ext)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(inputs, "_check_dtypes_devices_strides", lambda q, k, v: None)  # CPU tensors pass
    build(*VARIANTS)
    with torch.library._scoped_library("flashgen", "FRAGMENT") as lib:
        # The ops' own implementations (cuda only) for CPU tensors.
        torch.library.register_kernel("flashgen::fwd", "cpu", ops._fwd_op_impl, lib=lib)
        torch.library.register_kernel("flashgen::bwd", "cpu", ops._bwd_op_impl, lib=lib)
        yield ext, chosen, build
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()


# flash_attn_func's (causal, window_size, softcap) at 16 queries x 24 keys -> the features the
# call needs and the (causal, window_left, window_right, softcap) the kernels get.
CALLS = [
    ((False, (-1, -1), 0.0), (), (False, -1, -1, 0.0)),
    ((True, (-1, -1), 0.0), (), (True, -1, -1, 0.0)),
    ((False, (-1, 0), 0.0), (), (True, -1, -1, 0.0)),
    ((False, (23, 15), 0.0), (), (False, -1, -1, 0.0)),        # reaches every key: no window
    ((False, (3, 2), 0.0), ("window",), (False, 3, 2, 0.0)),
    ((True, (3, 5), 0.0), ("window",), (True, 3, -1, 0.0)),    # causal: right 0, the kernel's causal flag
    ((False, (-1, 4), 0.0), ("window",), (False, -1, 4, 0.0)),
    ((False, (-1, -1), 30.0), ("softcap",), (False, -1, -1, 30.0)),
    ((False, (-1, -1), 30), ("softcap",), (False, -1, -1, 30.0)),   # an int softcap goes as a float
    ((True, (0, 0), 2.5), ("softcap", "window"), (True, 0, -1, 2.5)),
    ((False, (6, 1), 1.5), ("softcap", "window"), (False, 6, 1, 1.5)),
]


@pytest.mark.parametrize("call,features,kernel_args", CALLS, ids=[str(c[0]) for c in CALLS])
def test_window_and_softcap_reach_kernel_choice_and_both_kernels(kernels_on_cpu, call, features, kernel_args):
    ext, chosen, _ = kernels_on_cpu
    causal, window_size, softcap = call
    q, k, v = cpu_inputs((2, 16, 3, 64), (2, 24, 3, 64))
    out = ops.flash_attn_func(q, k, v, causal=causal, window_size=window_size, softcap=softcap)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    out.backward(dout)
    # The cheapest built kernel that covers the call: exactly its features, all variants being built.
    suffix = "".join(f"_{f}" for f in features)
    assert chosen == [("fwd", frozenset(features)), ("bwd", frozenset(features))]
    assert ext.calls == [("fwd", f"flash_fwd_hdim64_bf16_sm90{suffix}", *kernel_args),
                         ("bwd", f"flash_bwd_hdim64_bf16_sm90{suffix}", *kernel_args)]
    assert isinstance(ext.calls[0][-1], float)
    # The values the stand-in computed are the reference's for the call as the user wrote it.
    ref = attention_reference(q, k, v, causal, window_size=window_size, softcap=softcap)[0]
    torch.testing.assert_close(out, ref.to(out.dtype))
    ref_grads = attention_reference_grads(q, k, v, dout, causal, window_size=window_size, softcap=softcap)
    for got, want in zip((q.grad, k.grad, v.grad), ref_grads):
        torch.testing.assert_close(got, want.to(got.dtype))


def test_a_kernel_with_more_features_runs_a_call_that_needs_fewer(kernels_on_cpu):
    ext, chosen, build = kernels_on_cpu
    build("_softcap_window")   # only the variant with both
    q, k, v = cpu_inputs((1, 8, 2, 64), (1, 8, 2, 64))
    ops.flash_attn_func(q, k, v, window_size=(2, 2)).sum().backward()
    ops.flash_attn_func(q, k, v, causal=True).sum().backward()
    assert [name for _, name, *_ in ext.calls] == [f"flash_{d}_hdim64_bf16_sm90_softcap_window"
                                                   for d in ("fwd", "bwd")] * 2
    assert [args for _, _, *args in ext.calls] == [[False, 2, 2, 0.0]] * 2 + [[True, -1, -1, 0.0]] * 2
    build("")                  # only plain kernels: a window asks for its kernel by name
    with pytest.raises(KernelNotBuiltError, match=r"flash_fwd_hdim64_bf16_sm90_window is needed .*"
                                                   r"--features window"):
        ops.flash_attn_func(q, k, v, window_size=(2, 2))
    with pytest.raises(KernelNotBuiltError, match=r"flash_fwd_hdim64_bf16_sm90_softcap is needed"):
        ops.flash_attn_func(q, k, v, softcap=20.0)
