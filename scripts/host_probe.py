"""Host (Python) time per call of flashgen.flash_attn_func / flash_attn_varlen_func, without a GPU.

The extension is a do-nothing stand-in (its kernels return at once; its kernel lists are the real
catalog's), tensors are small CPU tensors (so CPU allocation stays out of the figures), the ops'
CUDA implementations are registered for CPU too, and the device check accepts "cpu" in place of
"cuda" (a copy of the package's own check with that one word changed, so its cost is kept).
torch.cuda.get_device_capability is replaced by a stand-in doing the same Python work as the real
one (device-index lookup) minus the C++ property read. The eager path that calls the ops'
implementations without the ops (flashgen.ops.fwd) takes CPU tensors as it takes CUDA ones;
--via-ops sends every call through the torch.library ops instead, as before that path.

    FLASHGEN_JIT=0 python scripts/host_probe.py [--gqa] [--via-ops] [--profile MODE] [--calls N]
    (FLASHGEN_ROOT=/tmp/base: another checkout, e.g. `git archive HEAD flashgen gen kernels.yaml templates`)
"""
import argparse
import os
import cProfile
import functools
import inspect
import pstats
import statistics
import sys
import time

import torch

sys.path.insert(0, os.environ.get("FLASHGEN_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from flashgen import _ext, dispatch, inputs, jit, ops, varlen  # noqa: E402
import flashgen  # noqa: E402

CATALOG = [spec.key.name for spec in jit._catalog().kernels]
CATALOG += [n + "_varlen" for n in CATALOG if "hdim128_bf16" in n]


class DoNothingExtension:
    def fwd(self, *args):
        pass

    def bwd(self, *args):
        pass

    def built_kernels(self):
        return list(CATALOG)

    def catalog_kernels(self):
        return list(CATALOG)

    def loaded_kernels(self):
        return []


STUB = DoNothingExtension()
stub_extension = functools.lru_cache(maxsize=None)(lambda: STUB)   # as cheap as the real lru_cache'd one
for module in (_ext, dispatch, ops):
    module.extension = stub_extension

_CUDA0 = torch.device("cuda", 0)


def capability_stand_in(device=None):
    """The Python part of torch.cuda.get_device_capability: device index lookup."""
    torch.cuda.is_initialized()
    torch.cuda._utils._get_device_index(_CUDA0, optional=True)
    # device_count() is cached once CUDA is initialized (here, without a GPU, it asks NVML each time)
    return (9, 0)


torch.cuda.get_device_capability = capability_stand_in
# A package that remembers capabilities per CUDA device (dispatch.device_capability) would not
# store a CPU device's; seed its table so lookups hit, as they do on a GPU after the first call.
if hasattr(dispatch, "_CUDA_CAPABILITIES"):
    dispatch._CUDA_CAPABILITIES[torch.device("cpu")] = (9, 0)

# The device check, word for word but for the device type.
source = inspect.getsource(inputs._check_dtypes_devices_strides).replace('"cuda"', '"cpu"')
exec(compile(source, inputs.__file__, "exec"), inputs.__dict__)

lib = torch.library.Library("flashgen", "FRAGMENT")
for op, impl in (("fwd", ops._fwd_op_impl), ("bwd", ops._bwd_op_impl), ("varlen_fwd", ops._varlen_fwd_op_impl),
                 ("varlen_bwd", ops._varlen_bwd_op_impl)):
    torch.library.register_kernel(f"flashgen::{op}", "cpu", impl, lib=lib)
ops._DIRECT_DEVICE = "cpu"   # the eager path's device (--via-ops sets it back)


def make_inputs(batch=2, seqlen=16, nheads=4, nheads_kv=4, head_dim=128, grad=False):
    q = torch.randn(batch, seqlen, nheads, head_dim).to(torch.bfloat16)
    k, v = (torch.randn(batch, seqlen, nheads_kv, head_dim).to(torch.bfloat16) for _ in range(2))
    if grad:
        q, k, v = (t.requires_grad_() for t in (q, k, v))
    return q, k, v


def modes(gqa):
    nkv = 1 if gqa else 4
    q, k, v = make_inputs(nheads_kv=nkv)
    qg, kg, vg = make_inputs(nheads_kv=nkv, grad=True)
    out = flashgen.flash_attn_func(qg, kg, vg, causal=True)
    dout = torch.randn_like(out)

    def fwd():
        flashgen.flash_attn_func(q, k, v, causal=True)

    def bwd():   # as bench/impls.py times a backward
        torch.autograd.grad(out, (qg, kg, vg), dout, retain_graph=True)

    def fwd_bwd():
        o = flashgen.flash_attn_func(qg, kg, vg, causal=True)
        torch.autograd.grad(o, (qg, kg, vg), dout)

    # varlen: 2 sequences of 16 packed, varlen kernels "built"
    vq, vk, vv = (t.reshape(-1, *t.shape[2:]).detach().requires_grad_() for t in (qg, kg, vg))
    cu = torch.tensor([0, 16, 32], dtype=torch.int32)
    vout = flashgen.flash_attn_varlen_func(vq, vk, vv, cu, cu, 16, 16, causal=True)

    def varlen_fwd_bwd():
        o = flashgen.flash_attn_varlen_func(vq, vk, vv, cu, cu, 16, 16, causal=True)
        torch.autograd.grad(o, (vq, vk, vv), vout)

    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd_bwd, "varlen fwd+bwd": varlen_fwd_bwd}


def per_call_us(fn, calls, repeats=7):
    for _ in range(200):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profile", help="mode to profile (fwd, bwd, fwd+bwd, varlen fwd+bwd)")
    parser.add_argument("--gqa", action="store_true")
    parser.add_argument("--via-ops", action="store_true", help="every call through the torch.library ops")
    args = parser.parse_args()
    if args.via_ops:
        ops._DIRECT_DEVICE = "cuda"   # CPU tensors dispatch to the ops' CPU registrations
    torch.set_num_threads(1)
    table = modes(args.gqa)
    if args.profile:
        fn = table[args.profile]
        for _ in range(200):
            fn()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.calls):
            fn()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        return
    for name, fn in table.items():
        median, best = per_call_us(fn, args.calls)
        print(f"{name:16s} {median:7.1f} us/call (best {best:6.1f})")
    cap = per_call_us(lambda: capability_stand_in(_CUDA0), args.calls)[0]
    print(f"(get_device_capability stand-in alone: {cap:.2f} us/call)")


if __name__ == "__main__":
    main()
