"""flash_attn_func's eager path (flashgen.ops.fwd / varlen_fwd: the ops' implementations called
without the torch.library ops, through an autograd.Function with the ops' autograd formula) against
the ops themselves, without a GPU. Both paths run on CPU tensors over a stand-in extension that
records what each kernel call gets and fills the outputs from its inputs; ops._DIRECT_DEVICE
picks the path ("cpu": the eager path takes CPU tensors as it takes CUDA ones; "cuda": CPU tensors
dispatch to the ops, whose CPU registrations here record that they ran). The paths must pass the
kernels the same calls and give the same outputs, gradients, saved tensors and errors; whatever
must see the ops as ops (compiler, tracers, modes, functorch, forward AD, subclasses) gets them."""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.autograd import forward_ad
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from flashgen import dispatch, inputs, ops
from flashgen.errors import KernelNotBuiltError
from flashgen.naming import KernelKey

FEATURE_SETS = [(), ("window",), ("softcap",), ("softcap", "window")]
CATALOG = [KernelKey(d, hdim, "bf16", "sm90", (*features, *layout)).name
           for d in ("fwd", "bwd") for hdim in (64, 96, 128) for features in FEATURE_SETS
           for layout in ((), ("varlen",))]


def snapshot(arg, values=True):
    """A kernel argument as compared: a tensor's layout and (for inputs) values, or the value."""
    if isinstance(arg, torch.Tensor):
        return ("tensor", tuple(arg.shape), arg.stride(), arg.dtype, arg.clone() if values else None)
    return (type(arg).__name__, arg)


def fill(buffers, inputs):
    """Outputs that depend on every input value, so a difference in what a kernel got shows."""
    seed = sum(t.double().sum().item() for t in inputs) % 7
    for i, buffer in enumerate(buffers):
        buffer.copy_(torch.arange(buffer.numel(), dtype=torch.float64).view(buffer.shape) * 1e-3 + seed + i)


class RecordingExtension:
    """extension()'s fwd and bwd: each call's arguments, in order (output buffers by layout only)."""

    def __init__(self):
        self.calls = []

    def fwd(self, name, q, k, v, out, lse, *scalars):
        self.calls.append(("fwd", name, *(snapshot(t) for t in (q, k, v)),
                           *(snapshot(t, values=False) for t in (out, lse)), *map(snapshot, scalars)))
        fill((out, lse), (q, k, v))

    def bwd(self, name, q, k, v, out, dout, lse, dq, dk, dv, *scalars):
        self.calls.append(("bwd", name, *(snapshot(t) for t in (q, k, v, out, dout, lse)),
                           *(snapshot(t, values=False) for t in (dq, dk, dv)), *map(snapshot, scalars)))
        fill((dq, dk, dv), (q, k, v, out, dout, lse))


def assert_same_calls(got, want):
    assert len(got) == len(want)
    for got_call, want_call in zip(got, want):
        assert len(got_call) == len(want_call)
        for g, w in zip(got_call, want_call):
            if isinstance(g, tuple) and g[0] == "tensor":
                assert g[:4] == w[:4]
                assert (g[4] is None) == (w[4] is None) and (g[4] is None or torch.equal(g[4], w[4]))
            else:
                assert g == w


@pytest.fixture
def kernels(monkeypatch):
    """(ext, dispatched): the stand-in extension, and the ops that ran through torch.library."""
    ext, dispatched = RecordingExtension(), []
    monkeypatch.delenv("FLASHGEN_ARCH", raising=False)
    monkeypatch.setenv("FLASHGEN_JIT", "0")
    monkeypatch.setattr(dispatch, "available_kernels", lambda: list(CATALOG))
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: list(CATALOG))
    monkeypatch.setattr(ops, "extension", lambda: ext)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(inputs, "_check_dtypes_devices_strides", lambda q, k, v: None)  # CPU tensors pass
    monkeypatch.setattr(ops, "_DIRECT_DEVICE", "cpu")
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()

    def dispatched_to(op, impl):
        def run(*args):
            dispatched.append(op)
            return impl(*args)
        return run

    with torch.library._scoped_library("flashgen", "FRAGMENT") as lib:
        for op, impl in (("fwd", ops._fwd_op_impl), ("bwd", ops._bwd_op_impl),
                         ("varlen_fwd", ops._varlen_fwd_op_impl), ("varlen_bwd", ops._varlen_bwd_op_impl)):
            torch.library.register_kernel(f"flashgen::{op}", "cpu", dispatched_to(op, impl), lib=lib)
        yield ext, dispatched
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()


def use_path(monkeypatch, path):
    monkeypatch.setattr(ops, "_DIRECT_DEVICE", {"eager": "cpu", "ops": "cuda"}[path])


def qkv(q_shape=(2, 9, 4, 64), kv_shape=(2, 13, 4, 64), requires_grad=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen).to(torch.bfloat16).requires_grad_(requires_grad)
            for s in (q_shape, kv_shape, kv_shape)]


# (q shape, kv shape): equal heads, GQA (dk, dv summed over the query heads), a padded head dim
# (72 runs the 96 kernels), and a non-contiguous q (heads-major storage).
SHAPES = {"mha": ((2, 9, 4, 64), (2, 13, 4, 64)), "gqa": ((1, 7, 8, 128), (1, 11, 2, 128)),
          "padded": ((2, 5, 3, 72), (2, 9, 1, 72)), "strided": ((2, 9, 4, 64), (2, 13, 4, 64), "transposed")}
OPTIONS = {"plain": {}, "causal": {"causal": True},
           "window-softcap": {"window_size": (3, 2), "softcap": 1.5, "softmax_scale": 0.3},
           "causal-window-deterministic": {"causal": True, "window_size": (4, -1), "deterministic": True}}


def run(path, monkeypatch, kernels, shape, options, grad=True):
    """flash_attn_func (and its backward) on one path: what came out and what the kernels got."""
    ext, dispatched = kernels
    ext.calls.clear()
    dispatched.clear()
    use_path(monkeypatch, path)
    q, k, v = qkv(*SHAPES[shape][:2], requires_grad=grad)
    if SHAPES[shape][2:]:
        q = q.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(grad)
    out, lse = ops.flash_attn_func(q, k, v, return_lse=True, **options)
    result = {"out": out, "lse": lse, "requires_grad": (out.requires_grad, lse.requires_grad)}
    if grad:
        node = out.grad_fn
        saved = node.saved_tensors
        result["saved"] = [snapshot(t) for t in saved]
        # Inputs and outputs are saved as themselves (storage shared), not as copies.
        result["saved_storage"] = [t.data_ptr() == s.data_ptr() for t, s in zip((q, k, v, out, lse), saved)]
        result["options"] = list(node.options)
        dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
        result["grads"] = torch.autograd.grad(out, (q, k, v), dout)
    result["calls"], result["dispatched"] = list(ext.calls), list(dispatched)
    return result


@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no-grad"])
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_both_paths_give_the_kernels_the_same_calls_and_give_the_same_results(monkeypatch, kernels, shape, options,
                                                                              grad):
    via_ops = run("ops", monkeypatch, kernels, shape, OPTIONS[options], grad)
    eager = run("eager", monkeypatch, kernels, shape, OPTIONS[options], grad)
    directions = ["fwd", "bwd"] if grad else ["fwd"]
    assert via_ops["dispatched"] == directions and eager["dispatched"] == []
    assert [c[0] for c in eager["calls"]] == directions
    assert_same_calls(eager["calls"], via_ops["calls"])
    for name in ("out", "lse"):
        assert (eager[name].shape, eager[name].stride(), eager[name].dtype) == \
               (via_ops[name].shape, via_ops[name].stride(), via_ops[name].dtype)
        assert torch.equal(eager[name], via_ops[name])
    assert eager["requires_grad"] == via_ops["requires_grad"] == (grad, False)
    if grad:
        assert eager["options"] == via_ops["options"]
        assert_same_calls([eager["saved"]], [via_ops["saved"]])
        assert eager["saved_storage"] == via_ops["saved_storage"] == [True] * 5
        for got, want in zip(eager["grads"], via_ops["grads"]):
            assert (got.shape, got.stride(), got.dtype) == (want.shape, want.stride(), want.dtype)
            assert torch.equal(got, want)


def test_inference_mode_takes_the_eager_path(monkeypatch, kernels):
    ext, dispatched = kernels
    q, k, v = qkv()
    with torch.inference_mode():
        out = ops.flash_attn_func(q, k, v)
    assert out.is_inference() and not out.requires_grad
    assert dispatched == [] and [c[0] for c in ext.calls] == ["fwd"]


def test_double_backward_fails_as_through_the_ops(monkeypatch, kernels):
    # The ops' backward has no derivative: with create_graph both paths run the bwd op, whose
    # gradients then refuse a second backward with the op's own message.
    outcomes = {}
    for path in ("ops", "eager"):
        use_path(monkeypatch, path)
        q, k, v = qkv()
        out = ops.flash_attn_func(q, k, v, causal=True)
        dq, dk, dv = torch.autograd.grad(out, (q, k, v), torch.ones_like(out), create_graph=True)
        assert dq.requires_grad
        with pytest.raises(RuntimeError) as error:
            dq.float().sum().backward()
        outcomes[path] = (dq, dk, dv, str(error.value))
    assert "flashgen.bwd" in outcomes["eager"][3] and outcomes["eager"][3] == outcomes["ops"][3]
    for got, want in zip(outcomes["eager"][:3], outcomes["ops"][:3]):
        assert torch.equal(got, want)
    assert kernels[1].count("bwd") == 2   # once per path: create_graph takes the bwd op


@pytest.mark.parametrize("missing,grad", [("fwd", True), ("fwd", False), ("bwd", True)])
def test_errors_are_the_same_on_both_paths(monkeypatch, kernels, missing, grad):
    # A kernel that is not built: the forward's, raised by the call, or the backward's, raised by
    # backward(); the same type and message on both paths.
    built = [n for n in CATALOG if not n.startswith(f"flash_{missing}")]
    monkeypatch.setattr(dispatch, "available_kernels", lambda: built)
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()
    messages = {}
    for path in ("ops", "eager"):
        use_path(monkeypatch, path)
        q, k, v = qkv(requires_grad=grad)
        with pytest.raises(KernelNotBuiltError) as error:
            ops.flash_attn_func(q, k, v, window_size=(2, 2)).float().sum().backward()
        messages[path] = str(error.value)
    assert messages["eager"] == messages["ops"] and f"flash_{missing}_hdim64_bf16_sm90_window is needed" in \
        messages["eager"]


def test_bad_arguments_raise_the_same_before_either_path(monkeypatch, kernels):
    q, k, v = qkv()
    for path in ("ops", "eager"):
        use_path(monkeypatch, path)
        with pytest.raises(ValueError, match="window_size"):
            ops.flash_attn_func(q, k, v, window_size=(-2, 0))
    assert kernels[0].calls == [] and kernels[1] == []


# --- what takes the ops ---------------------------------------------------------------------------

class SeenOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


class SeenFunctions(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("mode", [SeenOps, SeenFunctions])
def test_python_modes_see_the_ops(kernels, mode):
    ext, dispatched = kernels
    q, k, v = qkv()
    with mode() as watching:
        out = ops.flash_attn_func(q, k, v)
        out.float().sum().backward()
    assert dispatched == ["fwd", "bwd"]
    # (A function mode does not see the backward's calls, on either path.)
    assert any("flashgen.fwd" in str(f) for f in watching.seen)
    if mode is SeenOps:
        assert torch.ops.flashgen.bwd.default in watching.seen


def test_a_backward_under_a_mode_takes_the_bwd_op(kernels):
    # The forward ran eagerly; the backward, run while a dispatch mode watches, calls the op.
    _, dispatched = kernels
    q, k, v = qkv()
    out = ops.flash_attn_func(q, k, v)
    with SeenOps() as watching:
        out.float().sum().backward()
    assert dispatched == ["bwd"] and torch.ops.flashgen.bwd.default in watching.seen


def test_the_device_context_keeps_the_eager_path(kernels):
    # torch.device / set_default_device is a function mode that only places factory calls that
    # name no device: the implementations name theirs.
    _, dispatched = kernels
    q, k, v = qkv()
    with torch.device("cpu"):
        ops.flash_attn_func(q, k, v).float().sum().backward()
    assert dispatched == []


def test_selective_checkpointing_policies_see_the_op(kernels):
    from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

    seen = []

    def policy(ctx, func, *args, **kwargs):
        seen.append(func)
        saved = func is torch.ops.flashgen.fwd.default
        return CheckpointPolicy.MUST_SAVE if saved else CheckpointPolicy.PREFER_RECOMPUTE

    q, k, v = qkv()
    out = checkpoint(lambda q, k, v: ops.flash_attn_func(q, k, v, causal=True), q, k, v, use_reentrant=False,
                     context_fn=lambda: create_selective_checkpoint_contexts(policy))
    out.float().sum().backward()
    assert torch.ops.flashgen.fwd.default in seen
    assert kernels[1] == ["fwd", "bwd"]   # saved by the policy: not run again


def test_functorch_transforms_take_the_op(kernels):
    _, dispatched = kernels
    q, k, v = qkv(requires_grad=False)
    batched = torch.stack([q, q])
    out = torch.vmap(lambda q: ops.flash_attn_func(q, k, v))(batched)   # the op's batching fallback
    assert out.shape == batched.shape and set(dispatched) == {"fwd"}


def test_forward_ad_takes_the_op(kernels):
    _, dispatched = kernels
    q, k, v = qkv(requires_grad=False)
    with forward_ad.dual_level():
        ops.flash_attn_func(forward_ad.make_dual(q, torch.ones_like(q)), k, v)
    assert dispatched == ["fwd"]


def test_tensor_subclasses_take_the_op(kernels):
    _, dispatched = kernels
    q, k, v = (torch.nn.Parameter(t.detach()) for t in qkv())
    ops.flash_attn_func(q, k, v).float().sum().backward()
    assert dispatched == ["fwd", "bwd"]
    dispatched.clear()
    kernels[0].calls.clear()
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake = [torch.empty(t.shape, dtype=t.dtype) for t in qkv()]
    out = ops.flash_attn_func(*fake)
    assert isinstance(out, FakeTensor) and kernels[0].calls == [] and dispatched == []   # the fake implementation


def test_make_fx_records_the_op(kernels):
    from torch.fx.experimental.proxy_tensor import make_fx

    q, k, v = qkv(requires_grad=False)
    graph = make_fx(lambda q, k, v: ops.flash_attn_func(q, k, v, causal=True))(q, k, v)
    assert torch.ops.flashgen.fwd.default in [n.target for n in graph.graph.nodes]


@pytest.mark.parametrize("window_size,softcap", [((-1, -1), 0.0), ((3, 2), 1.5)])
def test_torch_compile_traces_the_ops_where_eager_skips_them(kernels, window_size, softcap):
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return make_boxed_func(gm)

    def attention(q, k, v):
        return ops.flash_attn_func(q, k, v, causal=True, window_size=window_size, softcap=softcap)

    torch._dynamo.reset()
    compiled = torch.compile(attention, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep), fullgraph=True)
    q, k, v = qkv()
    out = compiled(q, k, v)
    grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
    forward_graph, backward_graph = (gm.code for gm in graphs)
    assert "torch.ops.flashgen.fwd.default" in forward_graph and "torch.ops.flashgen.bwd.default" in backward_graph
    assert kernels[1] == ["fwd", "bwd"]
    kernels[1].clear()
    eager = attention(q, k, v)
    eager_grads = torch.autograd.grad(eager, (q, k, v), torch.ones_like(eager))
    assert kernels[1] == []
    for got, want in zip((out, *grads), (eager, *eager_grads)):
        assert torch.equal(got, want)


def test_the_profiler_sees_the_eager_calls_under_the_ops_names(kernels):
    q, k, v = qkv()
    with torch.profiler.profile() as profile:
        ops.flash_attn_func(q, k, v).float().sum().backward()
    names = {event.name for event in profile.events()}
    assert {"flashgen::fwd", "flashgen::bwd"} <= names and kernels[1] == []


# --- varlen -------------------------------------------------------------------------------------

def packed(grad=True, nheads=4, nheads_kv=2, head_dim=72):
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(12, nheads, head_dim, generator=gen).to(torch.bfloat16).requires_grad_(grad)
    k, v = (torch.randn(20, nheads_kv, head_dim, generator=gen).to(torch.bfloat16).requires_grad_(grad)
            for _ in range(2))
    cu_q, cu_k = torch.tensor([0, 5, 12], dtype=torch.int32), torch.tensor([0, 9, 20], dtype=torch.int32)
    return q, k, v, cu_q, cu_k


@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no-grad"])
@pytest.mark.parametrize("options", [(True, 0.125, None, False), (False, 0.2, None, True, 3, 1, 1.5)],
                         ids=["causal", "window-softcap-deterministic"])
def test_varlen_fwd_matches_the_varlen_ops(monkeypatch, kernels, options, grad):
    ext, dispatched = kernels
    results = {}
    for path, call in (("ops", torch.ops.flashgen.varlen_fwd), ("eager", ops.varlen_fwd)):
        ext.calls.clear()
        dispatched.clear()
        q, k, v, cu_q, cu_k = packed(grad)
        out, lse = call(q, k, v, cu_q, cu_k, 7, 11, *options)
        grads, saved = (), None
        if grad:   # the backward's arguments: trailing defaults filled in on both paths
            saved = out.grad_fn.options, [t.data_ptr() for t in out.grad_fn.saved_tensors]
            assert saved == ([7, 11, *options, *(-1, -1, 0.0)[len(options) - 4:]],
                             [t.data_ptr() for t in (q, k, v, out, lse, cu_q, cu_k)])
            grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
        results[path] = (out, lse, *grads), list(ext.calls), list(dispatched)
    directions = ["varlen_fwd", "varlen_bwd"] if grad else ["varlen_fwd"]
    assert results["ops"][2] == directions and results["eager"][2] == []
    assert_same_calls(results["eager"][1], results["ops"][1])
    assert len(results["eager"][1]) == len(directions)
    for got, want in zip(results["eager"][0], results["ops"][0]):
        assert got.requires_grad == want.requires_grad and torch.equal(got, want)


class _NoGradient(torch.autograd.Function):
    """Passes its input on, and no gradient back: autograd then hands the node before it None."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return None


def test_an_undefined_output_gradient_gives_what_the_ops_give(monkeypatch, kernels):
    grads = {}
    for path in ("ops", "eager"):
        use_path(monkeypatch, path)
        q, k, v = qkv()
        out = ops.flash_attn_func(q, k, v)
        (_NoGradient.apply(out).float().sum() + out.float().sum() * 0).backward()
        grads[path] = [t.grad for t in (q, k, v)]
        q, k, v = qkv()
        _NoGradient.apply(ops.flash_attn_func(q, k, v)).float().sum().backward()
        grads[path] += [t.grad for t in (q, k, v)]
    assert grads['ops'][3] is not None   # zeros: the backward ran on a zero gradient
    for got, want in zip(grads["eager"], grads["ops"]):
        assert (got is None) == (want is None) and (got is None or torch.equal(got, want))


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
def test_export_records_the_op(kernels, strict):
    class Attention(torch.nn.Module):
        def forward(self, q, k, v):
            return ops.flash_attn_func(q, k, v, causal=True)

    exported = torch.export.export(Attention(), tuple(qkv(requires_grad=False)), strict=strict)
    assert torch.ops.flashgen.fwd.default in [n.target for n in exported.graph.nodes]


@pytest.mark.parametrize("requires_grad", [False, True], ids=["no-grad", "grad"])
def test_jit_trace_records_the_op_not_the_eager_path(kernels, monkeypatch, requires_grad):
    # torch.jit.trace is neither a dispatch nor a function mode: the eager path would leave the
    # kernel out of the traced graph (its launch is invisible to the tracer), or record a Python
    # op no saved or exported module can hold.
    import warnings
    use_path(monkeypatch, "eager")
    q, k, v = qkv(requires_grad=requires_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(lambda q, k, v: ops.flash_attn_func(q, k, v, causal=True), (q, k, v),
                                 check_trace=False)
    assert "flashgen::fwd" in str(traced.graph)
