"""flashgen::fwd and flashgen::bwd on the GPU: torch.library.opcheck over the real kernels,
torch.compile(fullgraph=True) forward and backward against eager and the fp32 reference, and
CUDA-graph capture of forward and backward, also with a sliding window and a softcap (cases that
skip when the build lacks those kernels). The same checks without a GPU, over a CPU stand-in
kernel: tests/cpu/test_library_ops.py."""
import math

import pytest
import torch

import flashgen
from flashgen import dispatch, ops
from flashgen.inputs import mask_args
from flashgen.reference import attention_reference, attention_reference_grads, check_against_reference
from tests.gpu.test_forward import random_qkv

pytestmark = pytest.mark.gpu

# (batch, seqlen_q, seqlen_k, nheads, nheads_kv, head_dim, causal): equal heads, GQA with unequal
# seqlens, and a head dim outside the catalog (72 runs the 96 kernel, zero-padded).
CASES = [(2, 256, 256, 4, 4, 128, False), (2, 200, 333, 8, 2, 64, True), (1, 97, 97, 2, 2, 72, True)]
IDS = ["d128", "d64-gqa-causal", "d72-padded-causal"]
DTYPE = torch.bfloat16
# (window_size, softcap) per case: none, and a sliding window with a softcap (on the window and
# softcap kernels; skipped where the build lacks them).
MASKS = {"plain": ((-1, -1), 0.0), "window-softcap": ((64, 32), 30.0)}


def inputs_or_skip(batch, seqlen_q, seqlen_k, nheads, nheads_kv, head_dim, causal, mask="plain"):
    """q, k, v leaves that require grad; skips when this build lacks the kernels."""
    capability = torch.cuda.get_device_capability()
    window_size, softcap = MASKS[mask]
    _, left, right = mask_args(causal, window_size, seqlen_q, seqlen_k)
    for direction in ("fwd", "bwd"):
        try:
            dispatch.choose_kernel(direction, head_dim, DTYPE, capability,
                                   features=ops.required_features(left, right, softcap))
        except flashgen.KernelNotBuiltError as exc:
            pytest.skip(str(exc).split(". ")[0])
    q, k, v = random_qkv(batch, seqlen_q, seqlen_k, nheads, nheads_kv, head_dim, DTYPE)
    return [t.requires_grad_() for t in (q, k, v)]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_opcheck(case, mask):
    q, k, v = inputs_or_skip(*case, mask)
    causal, scale = case[-1], 1.0 / math.sqrt(case[5])
    window_size, softcap = MASKS[mask]
    causal, left, right = mask_args(causal, window_size, case[1], case[2])
    options = (left, right, softcap)
    # deterministic: opcheck compares eager and compiled gradients, and fp32 dQ atomics would
    # make their last bits differ between runs.
    torch.library.opcheck(torch.ops.flashgen.fwd.default, (q, k, v, causal, scale, None, True, *options))
    with torch.no_grad():
        out, lse = torch.ops.flashgen.fwd(q, k, v, causal, scale, None, True, *options)
    dout = torch.randn_like(out)
    args = [t.detach() for t in (q, k, v, out, lse, dout)]  # no double backward: no grads here
    torch.library.opcheck(torch.ops.flashgen.bwd.default, (*args, causal, scale, None, True, *options))


def check_with_reference(out, grads, q, k, v, dout, causal, mask="plain"):
    q, k, v = (t.detach() for t in (q, k, v))
    window_size, softcap = MASKS[mask]
    kwargs = dict(window_size=window_size, softcap=softcap)
    ref_out, _ = attention_reference(q, k, v, causal, **kwargs)
    same_out, _ = attention_reference(q, k, v, causal, upcast=False, **kwargs)
    check_against_reference("out", out, ref_out, same_out)
    ref = attention_reference_grads(q, k, v, dout, causal, upcast=True, **kwargs)
    same = attention_reference_grads(q, k, v, dout, causal, upcast=False, **kwargs)
    for name, got, r, s in zip(("dq", "dk", "dv"), grads, ref, same):
        check_against_reference(name, got, r, s)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_compiled_forward_and_backward_match_eager(case, mask):
    q, k, v = inputs_or_skip(*case, mask)
    causal = case[-1]
    window_size, softcap = MASKS[mask]

    def attention(q, k, v):
        return flashgen.flash_attn_func(q, k, v, causal=causal, window_size=window_size, softcap=softcap,
                                        return_lse=True, deterministic=True)

    torch._dynamo.reset()
    compiled = torch.compile(attention, fullgraph=True)  # a graph break would raise
    dout = torch.randn(q.shape, device="cuda", dtype=DTYPE)
    out, lse = compiled(q, k, v)
    grads = torch.autograd.grad(out, (q, k, v), dout)
    eager_out, eager_lse = attention(q, k, v)
    eager_grads = torch.autograd.grad(eager_out, (q, k, v), dout)
    # The same kernels on the same inputs, dQ deterministic: bit for bit.
    for got, want in zip((out, lse, *grads), (eager_out, eager_lse, *eager_grads)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    check_with_reference(out, grads, q, k, v, dout, causal, mask)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cuda_graph_captures_forward_and_backward(case, mask):
    q, k, v = inputs_or_skip(*case, mask)
    causal = case[-1]
    window_size, softcap = MASKS[mask]
    dout = torch.randn(q.shape, device="cuda", dtype=DTYPE)

    def step():
        out = flashgen.flash_attn_func(q, k, v, causal=causal, window_size=window_size, softcap=softcap,
                                       deterministic=True)
        out.backward(dout)
        return out

    # Warm up on a side stream, then capture with the grads unset (CUDA graphs' documented recipe).
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            q.grad = k.grad = v.grad = None
            step()
    torch.cuda.current_stream().wait_stream(side)
    q.grad = k.grad = v.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = step()
    static_grads = (q.grad, k.grad, v.grad)

    # New values into the captured buffers; the replay must match an eager run on them.
    fresh = random_qkv(*case[:6], DTYPE)
    with torch.no_grad():
        for static, new in zip((q, k, v), fresh):
            static.copy_(new)
        dout.copy_(torch.randn_like(dout))
    graph.replay()
    torch.cuda.synchronize()
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    eager_out = flashgen.flash_attn_func(*leaves, causal=causal, window_size=window_size, softcap=softcap,
                                         deterministic=True)
    eager_out.backward(dout)
    for got, want in zip((static_out, *static_grads), (eager_out, *(t.grad for t in leaves))):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    check_with_reference(static_out, static_grads, *fresh, dout, causal, mask)
