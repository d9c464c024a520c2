"""The implementations a benchmark row can time. Each takes (b, s, h, d) tensors, flashgen's
layout; `make` returns a zero-argument callable for one direction, or raises Unavailable.
flashgen's callable also names the kernel it runs (`.kernel`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gen.axes import ARCHS


class Unavailable(RuntimeError):
    pass


def _with_grad_inputs(q, k, v, direction):
    if direction == "bwd":
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    return q, k, v


def direction_call(forward, inputs, direction):
    """A zero-argument callable for one direction: `forward` itself, or the backward of one
    forward call (gradients of `inputs` for a fixed random dout)."""
    if direction == "fwd":
        return forward
    out = forward()
    grad = torch.randn_like(out)
    return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)


def _flashgen(arch=None):
    """flashgen as dispatch picks it, or (arch) one kernel family forced, so a build holding
    several families times each of them in one run."""
    def make(q, k, v, causal, direction):
        import flashgen
        from flashgen.dispatch import choose_kernel
        q, k, v = _with_grad_inputs(q, k, v, direction)
        try:
            forward = lambda: flashgen.flash_attn_func(q, k, v, causal=causal, arch=arch)  # noqa: E731
            fn = direction_call(forward, (q, k, v), direction)
            fn()
        except (flashgen.KernelNotBuiltError, flashgen.ExtensionNotBuiltError, ValueError) as exc:
            raise Unavailable(str(exc).split(". ")[0]) from None
        # Which kernel the row times: results say what they measured.
        fn.kernel = choose_kernel(direction, q.shape[-1], q.dtype, torch.cuda.get_device_capability(q.device),
                                  arch).name
        return fn
    return make


def _sdpa(backend_name):
    def make(q, k, v, causal, direction):
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backend = getattr(SDPBackend, backend_name)
        q, k, v = _with_grad_inputs(q, k, v, direction)
        qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))   # SDPA wants (b, h, s, d)

        def forward():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal,
                                                      enable_gqa=qt.shape[1] != kt.shape[1])
        try:
            fn = direction_call(forward, (q, k, v), direction)
            with sdpa_kernel(backend):
                fn()
        except RuntimeError as exc:
            raise Unavailable(f"SDPA {backend_name}: {str(exc).splitlines()[0]}") from None

        def run():
            with sdpa_kernel(backend):
                return fn()
        return run
    return make


def fa4_impl(q, k, v, causal, direction):
    try:
        from flash_attn.cute import flash_attn_func
    except Exception as exc:  # noqa: BLE001 - any import failure means "not installed here"
        raise Unavailable(f"flash-attn-4 not importable ({type(exc).__name__})") from None
    q, k, v = _with_grad_inputs(q, k, v, direction)

    def forward():
        out = flash_attn_func(q, k, v, causal=causal)
        return out[0] if isinstance(out, tuple) else out
    fn = direction_call(forward, (q, k, v), direction)
    fn()
    return fn


IMPLS = {
    "flashgen": _flashgen(),
    **{f"flashgen@{arch}": _flashgen(arch) for arch in ARCHS},   # flashgen@sm80, flashgen@sm90
    "sdpa_flash": _sdpa("FLASH_ATTENTION"),
    "sdpa_cudnn": _sdpa("CUDNN_ATTENTION"),
    "sdpa_efficient": _sdpa("EFFICIENT_ATTENTION"),
    "fa4": fa4_impl,
}
