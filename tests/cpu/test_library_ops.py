"""flashgen::fwd and flashgen::bwd as torch.library ops, without a GPU: their schemas, fake
implementations (shapes, dtypes, strides of the outputs on fake CUDA tensors), the autograd
formula, opcheck over a CPU stand-in kernel, and torch.compile(fullgraph=True) tracing
flash_attn_func with no dispatch work in the graph. tests/gpu/test_library_ops.py runs the real
kernels through the same checks."""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from flashgen import dispatch, ops
from flashgen.errors import KernelNotBuiltError
from flashgen.reference import attention_reference, attention_reference_grads, visible_keys

FWD_SCHEMA = ("flashgen::fwd(Tensor q, Tensor k, Tensor v, bool causal, float softmax_scale, str? arch, "
              "bool deterministic) -> (Tensor, Tensor)")
BWD_SCHEMA = ("flashgen::bwd(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dout, bool causal, "
              "float softmax_scale, str? arch, bool deterministic) -> (Tensor, Tensor, Tensor)")

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
    batch, seqlen_q, nheads, _ = q_shape
    assert (out.shape, out.dtype, out.device.type, out.is_contiguous()) == (q_shape, torch.bfloat16, "cuda", True)
    assert (lse.shape, lse.dtype, lse.is_contiguous()) == ((batch, nheads, seqlen_q), torch.float32, True)
    for grad, shape in ((dq, q_shape), (dk, kv_shape), (dv, kv_shape)):
        assert (grad.shape, grad.dtype, grad.is_contiguous()) == (shape, torch.bfloat16, True)


def test_autograd_formula_calls_the_backward_op_on_meta_tensors():
    q, k, v = (torch.empty(s, dtype=torch.float16, device="meta", requires_grad=True)
               for s in ((2, 16, 8, 64), (2, 24, 2, 64), (2, 24, 2, 64)))
    out, lse = torch.ops.flashgen.fwd(q, k, v, False, 0.125, None, True)
    assert out.requires_grad and not lse.requires_grad  # lse is not differentiable, as before
    out.sum().backward()
    assert [t.grad.shape for t in (q, k, v)] == [q.shape, k.shape, v.shape]
    assert all(t.grad.dtype == torch.float16 for t in (q, k, v))


# A CPU stand-in for the kernels: the fp32 reference, with the kernels' output layout. It lets
# opcheck and the compiler run the ops' real path (schema, fake, autograd) without a GPU.
def _fwd_reference(q, k, v, causal, softmax_scale, arch, deterministic):
    out, lse = attention_reference(q, k, v, causal, softmax_scale)
    return out.contiguous(), lse.contiguous()


def _bwd_reference(q, k, v, out, lse, dout, causal, softmax_scale, arch, deterministic):
    # By formula in fp32: an op's kernel runs below autograd, so it cannot call backward().
    groups = q.shape[2] // k.shape[2]
    q32, k32, v32, dout32 = (t.float() for t in (q, k, v, dout))
    k32, v32 = (t.repeat_interleave(groups, dim=2) for t in (k32, v32))
    scores = torch.einsum("bqhd,bkhd->bhqk", q32, k32) * softmax_scale
    visible = visible_keys(q.shape[1], k.shape[1], causal, q.device)
    probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)
    dv = torch.einsum("bhqk,bqhd->bkhd", probs, dout32)
    dprobs = torch.einsum("bqhd,bkhd->bhqk", dout32, v32)
    dscores = probs * (dprobs - (probs * dprobs).sum(-1, keepdim=True)) * softmax_scale
    dq = torch.einsum("bhqk,bkhd->bqhd", dscores, k32)
    dk = torch.einsum("bhqk,bqhd->bkhd", dscores, q32)
    dk, dv = (t.unflatten(2, (k.shape[2], groups)).sum(3) for t in (dk, dv))
    return tuple(g.to(q.dtype).contiguous() for g in (dq, dk, dv))


def test_cpu_stand_in_backward_matches_autograd():
    q, k, v = cpu_inputs(*SHAPES[1], requires_grad=False)
    dout = torch.randn(q.shape).to(q.dtype)
    want = attention_reference_grads(q, k, v, dout, True, 0.125)
    got = _bwd_reference(q, k, v, None, None, dout, True, 0.125, None, False)
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


@pytest.mark.parametrize("q_shape,kv_shape,causal", [(*SHAPES[0], False), (*SHAPES[1], True), (*SHAPES[2], True)])
def test_opcheck_over_the_cpu_stand_in(cpu_stand_in, q_shape, kv_shape, causal):
    q, k, v = cpu_inputs(q_shape, kv_shape)
    torch.library.opcheck(torch.ops.flashgen.fwd.default, (q, k, v, causal, 0.125, None, False))
    with torch.no_grad():
        out, lse = torch.ops.flashgen.fwd(q, k, v, causal, 0.125, None, False)
    dout = torch.randn_like(out)
    # The backward has no derivative of its own (no double backward): its inputs need no grad.
    args = [t.detach() for t in (q, k, v, out, lse, dout)]
    torch.library.opcheck(torch.ops.flashgen.bwd.default, (*args, causal, 0.125, None, True))


def test_compiled_forward_and_backward_trace_both_ops(cpu_stand_in):
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []
    def keep(gm, example_inputs):
        graphs.append(gm.code)
        return make_boxed_func(gm)

    def attention(q, k, v):
        return torch.ops.flashgen.fwd(q, k, v, True, 0.125, None, False)[0]

    compiled = torch.compile(attention, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep), fullgraph=True)
    q, k, v = cpu_inputs(*SHAPES[1])
    out = compiled(q, k, v)
    out.backward(torch.ones_like(out))
    grads = [t.grad for t in (q, k, v)]
    forward_graph, backward_graph = graphs
    assert "torch.ops.flashgen.fwd.default" in forward_graph and "flashgen.bwd" not in forward_graph
    assert "torch.ops.flashgen.bwd.default" in backward_graph
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
