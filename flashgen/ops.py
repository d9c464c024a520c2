"""flash_attn_func: the user-facing op, and the kernels behind it as torch.library ops."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad
from torch.utils._device import DeviceContext

from flashgen._ext import extension
from flashgen.dispatch import choose_kernel, device_capability
from flashgen.inputs import check_attention_inputs, check_flash_attn_options, mask_args, window_feature

_ALIGN_ELEMENTS = 8  # kernels load 16 bytes per access: pointers and strides must allow it


def _kernel_ready(t: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Zero-pad the head dim to the kernel's, and copy unless the last dim is contiguous and
    16-byte loads are aligned (autograd may hand in gradients with stride 0, e.g. from sum())."""
    if t.shape[-1] != head_dim:
        t = F.pad(t, (0, head_dim - t.shape[-1]))
    strides = t.stride()
    # Every leading stride is a multiple of 8 iff their gcd is (one C call, not a Python loop).
    aligned = strides[-1] == 1 and t.data_ptr() % 16 == 0 and math.gcd(*strides[:-1]) % _ALIGN_ELEMENTS == 0
    return t if aligned else t.contiguous()


def _output_buffer(shape, dtype, device, nan_outputs: bool) -> torch.Tensor:
    """A buffer the kernel must fill completely: NaN-filled in tests, so a gap shows."""
    if nan_outputs:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def required_features(window_left: int, window_right: int, softcap: float, varlen: bool = False) -> frozenset[str]:
    """The kernel features (gen.axes FEATURES) a call needs: window when a bound is >= 0
    (normalized by flashgen.inputs.mask_args), softcap when softcap > 0, varlen for packed
    sequences (flashgen/varlen.py). A kernel built with more features runs the call with the
    others off (but varlen: a layout, flashgen.dispatch.LAYOUT_FEATURE)."""
    return _feature_set(bool(varlen), window_feature(window_left, window_right), softcap > 0.0)


@lru_cache(maxsize=None)
def _feature_set(varlen: bool, window: bool, softcap: bool) -> frozenset[str]:
    # One of eight sets, built once: the same object each call, whose hash choose_kernel's
    # caches then find stored, instead of a new set built and hashed on every call.
    return frozenset(name for name, needed in (("varlen", varlen), ("window", window), ("softcap", softcap)) if needed)


def _forward(q, k, v, causal, softmax_scale, arch, nan_outputs=False, *, window_left=-1, window_right=-1,
             softcap=0.0):
    """Run the forward kernel. nan_outputs (tests only) fills out and lse with NaN first, so an
    element the kernel fails to write shows up as NaN instead of stale memory. window_left,
    window_right: the sliding window's bounds (-1 unbounded; causal forces right to 0);
    softcap > 0 caps the scores (0 off). lse is the log-sum-exp of the capped scores."""
    head_dim = q.shape[-1]
    key = choose_kernel("fwd", head_dim, q.dtype, device_capability(q.device), arch,
                        required_features(window_left, window_right, softcap))
    q_k, k_k, v_k = (_kernel_ready(t, key.hdim) for t in (q, k, v))
    batch, seqlen_q, nheads, _ = q.shape
    out = _output_buffer(q_k.shape, q.dtype, q.device, nan_outputs)
    lse = _output_buffer((batch, nheads, seqlen_q), torch.float32, q.device, nan_outputs)
    extension().fwd(key.name, q_k, k_k, v_k, out, lse, softmax_scale, causal, window_left, window_right, softcap)
    if key.hdim != head_dim:
        out = out[..., :head_dim]
    return out, lse


def _backward(q, k, v, out, lse, dout, causal, softmax_scale, arch, deterministic=False, nan_outputs=False, *,
              window_left=-1, window_right=-1, softcap=0.0):
    """dq, dk, dv of attention. The kernels write dq (accumulated in fp32 by atomics, then scaled
    and converted), and dk, dv: in the input dtype without GQA, else in fp32 per query head,
    which this sums over the query heads that share a kv head (GQA/MQA) and converts.
    deterministic: the key blocks run a GPU-full at a time, each adding into its own fp32 dQ
    split in launch order, and the splits are summed in a fixed order, so dQ is bit-identical
    across runs; costs floor(multiprocessors / (batch * nheads)) fp32 copies of dQ (at least one,
    at most one per key block) and time (README: Performance).
    nan_outputs (tests only): the buffers the kernels must fill start as NaN. window_left,
    window_right, softcap: the forward's (lse is of the capped scores)."""
    head_dim = q.shape[-1]
    key = choose_kernel("bwd", head_dim, q.dtype, device_capability(q.device), arch,
                        required_features(window_left, window_right, softcap))
    q_k, k_k, v_k, out_k, dout_k = (_kernel_ready(t, key.hdim) for t in (q, k, v, out, dout))
    batch, seqlen_q, nheads, _ = q.shape
    _, seqlen_k, nheads_kv, _ = k.shape
    groups = nheads // nheads_kv
    dq = _output_buffer(q_k.shape, q.dtype, q.device, nan_outputs)
    dkv_shape, dkv_dtype = ((batch, seqlen_k, nheads, key.hdim), torch.float32) if groups > 1 else (k_k.shape, q.dtype)
    dk, dv = (_output_buffer(dkv_shape, dkv_dtype, q.device, nan_outputs) for _ in range(2))
    extension().bwd(key.name, q_k, k_k, v_k, out_k, dout_k, lse, dq, dk, dv, softmax_scale, causal, deterministic,
                    window_left, window_right, softcap)
    if groups > 1:
        dk, dv = (t.view(batch, seqlen_k, nheads_kv, groups, key.hdim).sum(3).to(q.dtype) for t in (dk, dv))
    if key.hdim != head_dim:  # sliced only when padded: three view ops a call otherwise
        dq, dk, dv = (t[..., :head_dim] for t in (dq, dk, dv))
    return dq, dk, dv


# The kernels as torch.library ops, so torch.compile(fullgraph=True) records one opaque call per
# direction: kernel choice (choose_kernel: lru_cache, FLASHGEN_ARCH) runs inside the op at run
# time, never in a traced graph. Outputs are contiguous, as the fake implementations promise (a
# padded head dim's slice is copied). The forward takes `deterministic` only to hand it to the
# backward through the autograd formula. The window bounds and softcap come last, with defaults
# that switch them off, so calls written before them keep working.

def _fwd_op_impl(q, k, v, causal, softmax_scale, arch, deterministic, window_left=-1, window_right=-1, softcap=0.0):
    out, lse = _forward(q, k, v, causal, softmax_scale, arch, window_left=window_left, window_right=window_right,
                        softcap=softcap)
    return out.contiguous(), lse


def _bwd_op_impl(q, k, v, out, lse, dout, causal, softmax_scale, arch, deterministic, window_left=-1,
                 window_right=-1, softcap=0.0):
    dq, dk, dv = _backward(q, k, v, out, lse, dout, causal, softmax_scale, arch, deterministic,
                           window_left=window_left, window_right=window_right, softcap=softcap)
    return dq.contiguous(), dk.contiguous(), dv.contiguous()


@torch.library.custom_op("flashgen::fwd", mutates_args=(), device_types="cuda")
def _fwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, softmax_scale: float,
            arch: Optional[str], deterministic: bool, window_left: int = -1, window_right: int = -1,
            softcap: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    return _fwd_op_impl(q, k, v, causal, softmax_scale, arch, deterministic, window_left, window_right, softcap)


@_fwd_op.register_fake
def _fwd_fake(q, k, v, causal, softmax_scale, arch, deterministic, window_left=-1, window_right=-1, softcap=0.0):
    batch, seqlen_q, nheads, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((batch, nheads, seqlen_q), dtype=torch.float32)


@torch.library.custom_op("flashgen::bwd", mutates_args=(), device_types="cuda")
def _bwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
            dout: torch.Tensor, causal: bool, softmax_scale: float, arch: Optional[str],
            deterministic: bool, window_left: int = -1, window_right: int = -1,
            softcap: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _bwd_op_impl(q, k, v, out, lse, dout, causal, softmax_scale, arch, deterministic, window_left,
                        window_right, softcap)


@_bwd_op.register_fake
def _bwd_fake(q, k, v, out, lse, dout, causal, softmax_scale, arch, deterministic, window_left=-1, window_right=-1,
              softcap=0.0):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    # The op's other arguments, as given (the trailing ones may be left to their defaults), go
    # to the backward op: causal, softmax_scale, arch, deterministic, window_left, window_right, softcap.
    q, k, v, *ctx.options = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.mark_non_differentiable(lse)


def _fwd_op_backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse = ctx.saved_tensors
    dq, dk, dv = _bwd_op(q, k, v, out, lse, grad_out, *ctx.options)
    return dq, dk, dv, *(None,) * len(ctx.options)


_fwd_op.register_autograd(_fwd_op_backward, setup_context=_setup_context)


# Variable-length (packed) attention on kernels built with the varlen feature: one launch for
# the whole batch. q, out: (total_q, nheads, head_dim); k, v: (total_k, nheads_kv, head_dim);
# cu_seqlens_q/k: int32 (batch + 1,) offsets on q's device; max_seqlen_q/k at least the longest
# sequences; lse (nheads, total_q), FlashAttention-2's varlen layout. Separate ops from
# flashgen::fwd/bwd (whose schemas stay as they are); flashgen/varlen.py calls them.

def _varlen_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal, softmax_scale, arch,
                    nan_outputs=False, *, window_left=-1, window_right=-1, softcap=0.0):
    head_dim = q.shape[-1]
    key = choose_kernel("fwd", head_dim, q.dtype, device_capability(q.device), arch,
                        required_features(window_left, window_right, softcap, varlen=True))
    q_k, k_k, v_k = (_kernel_ready(t, key.hdim) for t in (q, k, v))
    total_q, nheads, _ = q.shape
    out = _output_buffer(q_k.shape, q.dtype, q.device, nan_outputs)
    lse = _output_buffer((nheads, total_q), torch.float32, q.device, nan_outputs)
    extension().fwd(key.name, q_k, k_k, v_k, out, lse, softmax_scale, causal, window_left, window_right, softcap,
                    cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    if key.hdim != head_dim:
        out = out[..., :head_dim]
    return out, lse


def _varlen_backward(q, k, v, out, lse, dout, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                     softmax_scale, arch, deterministic=False, nan_outputs=False, *, window_left=-1, window_right=-1,
                     softcap=0.0):
    """As _backward, packed: with GQA the kernels write dk, dv as fp32 (total_k, nheads, head_dim)."""
    head_dim = q.shape[-1]
    key = choose_kernel("bwd", head_dim, q.dtype, device_capability(q.device), arch,
                        required_features(window_left, window_right, softcap, varlen=True))
    q_k, k_k, v_k, out_k, dout_k = (_kernel_ready(t, key.hdim) for t in (q, k, v, out, dout))
    total_k, nheads_kv, _ = k.shape
    groups = q.shape[1] // nheads_kv
    dq = _output_buffer(q_k.shape, q.dtype, q.device, nan_outputs)
    dkv_shape, dkv_dtype = ((total_k, q.shape[1], key.hdim), torch.float32) if groups > 1 else (k_k.shape, q.dtype)
    dk, dv = (_output_buffer(dkv_shape, dkv_dtype, q.device, nan_outputs) for _ in range(2))
    extension().bwd(key.name, q_k, k_k, v_k, out_k, dout_k, lse, dq, dk, dv, softmax_scale, causal, deterministic,
                    window_left, window_right, softcap, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    if groups > 1:
        dk, dv = (t.view(total_k, nheads_kv, groups, key.hdim).sum(2).to(q.dtype) for t in (dk, dv))
    if key.hdim != head_dim:  # sliced only when padded: three view ops a call otherwise
        dq, dk, dv = (t[..., :head_dim] for t in (dq, dk, dv))
    return dq, dk, dv


@torch.library.custom_op("flashgen::varlen_fwd", mutates_args=(), device_types="cuda")
def _varlen_fwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens_q: torch.Tensor,
                   cu_seqlens_k: torch.Tensor, max_seqlen_q: int, max_seqlen_k: int, causal: bool,
                   softmax_scale: float, arch: Optional[str], deterministic: bool, window_left: int = -1,
                   window_right: int = -1, softcap: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    return _varlen_fwd_op_impl(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                               softmax_scale, arch, deterministic, window_left, window_right, softcap)


def _varlen_fwd_op_impl(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal, softmax_scale, arch,
                        deterministic, window_left=-1, window_right=-1, softcap=0.0):
    out, lse = _varlen_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                               softmax_scale, arch, window_left=window_left, window_right=window_right,
                               softcap=softcap)
    return out.contiguous(), lse


@_varlen_fwd_op.register_fake
def _varlen_fwd_fake(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal, softmax_scale, arch,
                     deterministic, window_left=-1, window_right=-1, softcap=0.0):
    total_q, nheads, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((nheads, total_q), dtype=torch.float32)


@torch.library.custom_op("flashgen::varlen_bwd", mutates_args=(), device_types="cuda")
def _varlen_bwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
                   dout: torch.Tensor, cu_seqlens_q: torch.Tensor, cu_seqlens_k: torch.Tensor, max_seqlen_q: int,
                   max_seqlen_k: int, causal: bool, softmax_scale: float, arch: Optional[str], deterministic: bool,
                   window_left: int = -1, window_right: int = -1,
                   softcap: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _varlen_bwd_op_impl(q, k, v, out, lse, dout, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                               causal, softmax_scale, arch, deterministic, window_left, window_right, softcap)


def _varlen_bwd_op_impl(q, k, v, out, lse, dout, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                        softmax_scale, arch, deterministic, window_left=-1, window_right=-1, softcap=0.0):
    dq, dk, dv = _varlen_backward(q, k, v, out, lse, dout, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                  causal, softmax_scale, arch, deterministic, window_left=window_left,
                                  window_right=window_right, softcap=softcap)
    return dq.contiguous(), dk.contiguous(), dv.contiguous()


@_varlen_bwd_op.register_fake
def _varlen_bwd_fake(q, k, v, out, lse, dout, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                     softmax_scale, arch, deterministic, window_left=-1, window_right=-1, softcap=0.0):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _varlen_setup_context(ctx, inputs, output):
    # q, k, v, the offsets (saved: tensors) and the rest as given, to the backward op.
    q, k, v, cu_seqlens_q, cu_seqlens_k, *ctx.options = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k)
    ctx.mark_non_differentiable(lse)


def _varlen_fwd_op_backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k = ctx.saved_tensors
    dq, dk, dv = _varlen_bwd_op(q, k, v, out, lse, grad_out, cu_seqlens_q, cu_seqlens_k, *ctx.options)
    return dq, dk, dv, None, None, *(None,) * len(ctx.options)


_varlen_fwd_op.register_autograd(_varlen_fwd_op_backward, setup_context=_varlen_setup_context)


# In plain eager mode the ops' implementations run without the ops: torch.library's dispatch costs
# about 9 us an op, and register_autograd's wrapper 19 us more a forward with grad (measured with
# scripts/host_probe.py), on calls whose kernels may take less. fwd (what flash_attn_func calls)
# and varlen_fwd give what torch.ops.flashgen.fwd / varlen_fwd give (the same implementations, and
# autograd through an autograd.Function with the ops' own formula: the same saved tensors and
# options), and call the ops whenever something must see them as ops: torch.compile, export and
# other tracers, functorch transforms, forward AD, Python dispatch and function modes
# (FakeTensorMode, selective checkpointing), tensor subclasses. tests/cpu/test_eager_path.py
# holds the two paths to each other. A direct torch.ops.flashgen call still goes through the op.

# The device whose implementation (the ops' device_types) runs directly; tensors elsewhere dispatch
# to the kernels registered for their device. Tests and scripts/host_probe.py set "cpu".
_DIRECT_DEVICE = "cuda"


def _plain_eager(*tensors) -> bool:
    """Whether a call on these tensors may skip the op: eager mode with nothing watching the ops.
    is_compiling() comes first: Dynamo folds it to True while tracing, so it traces nothing else."""
    if torch.compiler.is_compiling() or torch._C._get_tracing_state():
        # (torch.jit.trace is no dispatch or function mode: without this its graph recorded the
        # output buffer's allocation but not the kernel, which it cannot see.)
        return False
    for t in tensors:
        if type(t) is not torch.Tensor:   # FakeTensor, FunctionalTensor, DTensor, other subclasses
            return False
    return (tensors[0].device.type == _DIRECT_DEVICE
            and not torch._C._len_torch_dispatch_stack()   # fake, proxy, functional and Python modes
            and torch._C._functorch.peek_interpreter_stack() is None   # vmap, grad, functionalize
            and forward_ad._current_level < 0
            and not _function_modes_on())


def _function_modes_on() -> bool:
    """Whether a torch function mode would see the call, other than torch.device's (also
    set_default_device's): that one only picks the device of factory calls that name none, and
    the implementations name theirs."""
    if not torch._C._is_torch_function_mode_enabled():
        return False
    return not (torch._C._len_torch_function_stack() == 1
                and isinstance(torch._C._get_function_stack_at(0), DeviceContext))


def _grad_needed(q, k, v) -> bool:
    return torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)


def _profiled(label, impl, *args):
    # Under torch.profiler the direct call shows as a range named as the op it stands for.
    if torch.autograd._profiler_enabled():
        with torch.autograd.profiler.record_function(label):
            return impl(*args)
    return impl(*args)


def _materialized(grad_out, out):
    # The Functions leave undefined gradients undefined (lse's is never read: no zeros built for
    # it each backward). out's is undefined only when no gradient reached it (a later node gave
    # None): zeros then, as autograd builds for the ops.
    return torch.zeros_like(out) if grad_out is None else grad_out


class _FlashAttention(torch.autograd.Function):
    """flashgen::fwd's autograd formula (_setup_context, _fwd_op_backward) over its implementation.
    The backward calls the bwd op where the op's formula would matter: with create_graph (the op
    has no derivative of its own, and says so on a double backward) or when not plain eager."""

    @staticmethod
    def forward(ctx, *inputs):
        output = _profiled("flashgen::fwd", _fwd_op_impl, *inputs)
        _setup_context(ctx, inputs, output)
        ctx.set_materialize_grads(False)   # _materialized says why
        return output

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, out, lse = ctx.saved_tensors
        grad_out = _materialized(grad_out, out)
        if torch.is_grad_enabled() or not _plain_eager(grad_out, q, k, v, out, lse):
            return _fwd_op_backward(ctx, grad_out, grad_lse)
        dq, dk, dv = _profiled("flashgen::bwd", _bwd_op_impl, q, k, v, out, lse, grad_out, *ctx.options)
        return dq, dk, dv, *(None,) * len(ctx.options)


class _FlashVarlenAttention(torch.autograd.Function):
    """As _FlashAttention, for flashgen::varlen_fwd (_varlen_setup_context, _varlen_fwd_op_backward)."""

    @staticmethod
    def forward(ctx, *inputs):
        output = _profiled("flashgen::varlen_fwd", _varlen_fwd_op_impl, *inputs)
        _varlen_setup_context(ctx, inputs, output)
        ctx.set_materialize_grads(False)   # _materialized says why
        return output

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k = ctx.saved_tensors
        grad_out = _materialized(grad_out, out)
        if torch.is_grad_enabled() or not _plain_eager(grad_out, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k):
            return _varlen_fwd_op_backward(ctx, grad_out, grad_lse)
        dq, dk, dv = _profiled("flashgen::varlen_bwd", _varlen_bwd_op_impl, q, k, v, out, lse, grad_out,
                               cu_seqlens_q, cu_seqlens_k, *ctx.options)
        return dq, dk, dv, None, None, *(None,) * len(ctx.options)


def fwd(q, k, v, causal, softmax_scale, arch, deterministic, window_left=-1, window_right=-1, softcap=0.0):
    """torch.ops.flashgen.fwd with the same arguments: out, lse, differentiable in q, k, v; in
    plain eager mode without the op. Every argument goes on, defaults included, as the op's
    autograd formula gets them."""
    options = (causal, softmax_scale, arch, deterministic, window_left, window_right, softcap)
    if not _plain_eager(q, k, v):
        return torch.ops.flashgen.fwd(q, k, v, *options)
    if _grad_needed(q, k, v):
        return _FlashAttention.apply(q, k, v, *options)
    return _profiled("flashgen::fwd", _fwd_op_impl, q, k, v, *options)


def varlen_fwd(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal, softmax_scale, arch,
               deterministic, window_left=-1, window_right=-1, softcap=0.0):
    """torch.ops.flashgen.varlen_fwd with the same arguments, as fwd is flashgen::fwd."""
    tensors = (q, k, v, cu_seqlens_q, cu_seqlens_k)
    options = (max_seqlen_q, max_seqlen_k, causal, softmax_scale, arch, deterministic, window_left, window_right,
               softcap)
    if not _plain_eager(*tensors):
        return torch.ops.flashgen.varlen_fwd(*tensors, *options)
    if _grad_needed(q, k, v):
        return _FlashVarlenAttention.apply(*tensors, *options)
    return _profiled("flashgen::varlen_fwd", _varlen_fwd_op_impl, *tensors, *options)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                    softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False, *,
                    arch=None, return_lse=False):
    """Attention softmax(q kᵀ · scale) v, FlashAttention style; a drop-in for FlashAttention 2/3's
    `flash_attn_func` (the same arguments in the same order).

    q: (batch, seqlen_q, nheads, head_dim); k, v: (batch, seqlen_k, nheads_kv, head_dim), with
    nheads a multiple of nheads_kv (GQA/MQA). float16 or bfloat16 CUDA tensors whose last dim
    is contiguous. causal masks key j for query i unless j <= i + seqlen_k - seqlen_q (aligned
    to the bottom-right corner); a query that sees no key gets a zero output row (lse +inf).
    softmax_scale defaults to 1/sqrt(head_dim).

    window_size=(left, right): sliding-window (local) attention, FlashAttention's rule: query i
    sees key j iff i + seqlen_k - seqlen_q - left <= j <= i + seqlen_k - seqlen_q + right, -1
    unbounded on that side; causal=True sets right to 0, so (-1, 0) is causal. softcap > 0 caps
    the scores s = softmax_scale * q.k at softcap * tanh(s / softcap) before the softmax (Gemma 2);
    the lse is of the capped scores. A bounded window or a softcap runs on kernels built with the
    window / softcap feature (python build.py --features window, ...); a window that reaches
    every key runs as no window (flashgen.inputs.mask_args). Not supported yet, raising
    NotImplementedError: dropout_p > 0, alibi_slopes.

    deterministic=True makes dq bit-identical across runs (dQ is summed over key blocks in a
    fixed order, in floor(multiprocessors / (batch * nheads)) fp32 partial copies of dQ); dk
    and dv are always deterministic. Differentiable in q, k and v.

    Returns out (like q), or with return_attn_probs=True (out, softmax_lse, None) as
    FlashAttention does: softmax_lse is the float32 (batch, nheads, seqlen_q) log-sum-exp of each
    row, and no attention probabilities are returned. Keyword-only, flashgen's own: return_lse=True
    returns (out, softmax_lse); arch ("sm80", "sm90") forces a kernel family (also
    FLASHGEN_ARCH), by default the best compiled family for the GPU runs.
    """
    check_flash_attn_options(dropout_p, softcap, alibi_slopes, deterministic, return_attn_probs, return_lse)
    check_attention_inputs(q, k, v, causal, softmax_scale)
    causal, window_left, window_right = mask_args(causal, window_size, seqlen_q=q.shape[1], seqlen_k=k.shape[1])
    scale = default_scale(softmax_scale, q.shape[-1])
    out, lse = fwd(q, k, v, causal, scale, arch, deterministic, window_left, window_right, float(softcap))
    if return_attn_probs:
        return out, lse, None
    return (out, lse) if return_lse else out


def default_scale(softmax_scale, head_dim: int) -> float:
    """softmax_scale as the kernels take it: 1/sqrt(head_dim) when None."""
    return float(softmax_scale) if softmax_scale is not None else 1.0 / math.sqrt(head_dim)
