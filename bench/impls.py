"""The implementations a benchmark row can time. Each takes (b, s, h, d) tensors, flashgen's
layout (with `seqlens`, packed (total, h, d) ones), as
`make(q, k, v, causal, direction, window=None, softcap=0.0, seqlens=None)`, and returns a
zero-argument callable for one direction, or raises Unavailable saying why in a few words.
window (left, right), -1 unbounded, and softcap > 0 are FlashAttention's; seqlens: the lengths
of the packed sequences (one varlen call). flashgen's callable also names the kernel it runs
(`.kernel`)."""
from __future__ import annotations

import contextlib
import inspect
import traceback

import torch
import torch.nn.functional as F

from bench.cases import window_bounded
from gen.axes import ARCHS


class Unavailable(RuntimeError):
    pass


def _has_window(window) -> bool:
    return window is not None and tuple(window) != (-1, -1)


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
    def make(q, k, v, causal, direction, window=None, softcap=0.0, seqlens=None):
        import flashgen
        from flashgen.dispatch import choose_kernel
        from flashgen.varlen import cu_seqlens_of
        q, k, v = _with_grad_inputs(q, k, v, direction)
        options = {"causal": causal, "arch": arch}
        if _has_window(window):     # only what a row uses: a plain row calls as it always has
            options["window_size"] = tuple(window)
        if softcap:
            options["softcap"] = softcap
        if seqlens:
            cu_seqlens, longest = cu_seqlens_of(seqlens, q.device), max(seqlens)
            forward = lambda: flashgen.flash_attn_varlen_func(q, k, v, cu_seqlens, cu_seqlens,  # noqa: E731
                                                              longest, longest, **options)
        else:
            forward = lambda: flashgen.flash_attn_func(q, k, v, **options)  # noqa: E731
        try:
            fn = direction_call(forward, (q, k, v), direction)
            fn()
        except (flashgen.KernelNotBuiltError, flashgen.ExtensionNotBuiltError, ValueError,
                NotImplementedError) as exc:
            raise Unavailable(str(exc).split(". ")[0]) from None
        # Which kernel the row times: results say what they measured.
        seqlen = max(seqlens) if seqlens else q.shape[1]
        features = frozenset(name for name, needed in (("window", window_bounded(causal, window, seqlen, seqlen)),
                                                       ("softcap", softcap > 0)) if needed)
        try:
            fn.kernel = choose_kernel(direction, q.shape[-1], q.dtype, torch.cuda.get_device_capability(q.device),
                                      arch, features).name
        except (flashgen.KernelNotBuiltError, ValueError, TypeError):   # the call ran: only the label is lost
            fn.kernel = None
        return fn
    return make


@contextlib.contextmanager
def _through_the_ops():
    """Every flashgen call inside goes through its torch.library ops (as under torch.compile)
    instead of the eager autograd.Function (flashgen/ops.py _plain_eager: the direct path serves
    tensors on ops._DIRECT_DEVICE only)."""
    from flashgen import ops
    saved, ops._DIRECT_DEVICE = ops._DIRECT_DEVICE, "no device: through the ops"
    try:
        yield
    finally:
        ops._DIRECT_DEVICE = saved


def _flashgen_through_the_ops(make_flashgen):
    """flashgen timed through its torch.library ops: a forward row times the op's forward, a
    backward row autograd.grad through the op's backward (its graph built, untimed, by a forward
    through the op). Beside `flashgen`: the host time the eager path saves."""
    def make(*args, **kwargs):
        with _through_the_ops():
            fn = make_flashgen(*args, **kwargs)

        def call():
            with _through_the_ops():
                return fn()
        call.kernel = fn.kernel
        return call
    return make


def _sdpa(backend_name):
    def make(q, k, v, causal, direction, window=None, softcap=0.0, seqlens=None):
        # SDPA's fused kernels take is_causal or a dense mask: a window or a softcap would need a
        # (seqlen x seqlen) mask or a score function, which is not what these rows compare.
        if _has_window(window):
            raise Unavailable("SDPA: no sliding window (only a dense mask)")
        if softcap:
            raise Unavailable("SDPA: no softcap")
        if seqlens:
            raise Unavailable("SDPA: no packed varlen input")
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


def _parameters(func) -> set[str]:
    try:
        return set(inspect.signature(func).parameters)
    except (TypeError, ValueError):   # no signature to read: assume the bare minimum
        return set()


def _fa4_options(func, window, softcap) -> dict:
    """The window and softcap keywords of FA4's `func`, as far as its signature takes them
    (FA4's signatures change between releases: read it at run time)."""
    params, name = _parameters(func), getattr(func, "__name__", "its function")
    options = {}
    if _has_window(window):
        if "window_size" not in params:
            raise Unavailable(f"FA4: {name} takes no window_size")
        options["window_size"] = tuple(None if w < 0 else w for w in window)   # FA4: None is unbounded
    if softcap:
        if "softcap" not in params:
            raise Unavailable(f"FA4: {name} takes no softcap")
        options["softcap"] = softcap
    return options


def fa4_impl(q, k, v, causal, direction, window=None, softcap=0.0, seqlens=None):
    try:
        import flash_attn.cute as fa4
    except Exception as exc:  # noqa: BLE001 - any import failure means "not installed here"
        raise Unavailable(f"flash-attn-4 not importable ({type(exc).__name__})") from None
    name = "flash_attn_varlen_func" if seqlens else "flash_attn_func"
    func = getattr(fa4, name, None)
    if func is None:
        raise Unavailable(f"FA4: no flash_attn.cute.{name}")
    options = {"causal": causal, **_fa4_options(func, window, softcap)}
    q, k, v = _with_grad_inputs(q, k, v, direction)
    if seqlens:
        from flashgen.varlen import cu_seqlens_of
        cu_seqlens = cu_seqlens_of(seqlens, q.device)
        options |= {"cu_seqlens_q": cu_seqlens, "cu_seqlens_k": cu_seqlens}
        if "max_seqlen_q" in _parameters(func):     # newer releases take the longest sequence
            options |= {"max_seqlen_q": max(seqlens), "max_seqlen_k": max(seqlens)}

    def forward():
        out = func(q, k, v, **options)
        return out[0] if isinstance(out, tuple) else out
    try:
        fn = direction_call(forward, (q, k, v), direction)
        fn()
    except (AssertionError, NotImplementedError) as exc:
        # FA4 refuses what it does not implement (its backward asserts softcap == 0) with an
        # assert, often without a message: the failing line says what.
        frames = traceback.extract_tb(exc.__traceback__)
        why = str(exc).splitlines()[0] if str(exc) else (frames[-1].line if frames else "")
        raise Unavailable(f"FA4 {direction}: {type(exc).__name__} {why}".strip()[:160]) from None
    return fn


IMPLS = {
    "flashgen": _flashgen(),
    "flashgen_ops": _flashgen_through_the_ops(_flashgen()),
    **{f"flashgen@{arch}": _flashgen(arch) for arch in ARCHS},   # flashgen@sm80, flashgen@sm90
    "sdpa_flash": _sdpa("FLASH_ATTENTION"),
    "sdpa_cudnn": _sdpa("CUDNN_ATTENTION"),
    "sdpa_efficient": _sdpa("EFFICIENT_ATTENTION"),
    "fa4": fa4_impl,
}
# Timed only when --impl names them: variants of flashgen, not peers.
OPT_IN_IMPLS = frozenset(name for name in IMPLS if "@" in name or name == "flashgen_ops")
