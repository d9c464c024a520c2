"""flashgen: FlashAttention kernels generated from a catalog (kernels.yaml).

    import flashgen
    out = flashgen.flash_attn_func(q, k, v, causal=True)
    out = flashgen.flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    flashgen.available_kernels()

`from flashgen import flash_attn_func, flash_attn_varlen_func` stands in for FlashAttention's.

Attributes load lazily, so `flashgen.naming` (used by the generator) needs no torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "flash_attn_func": "flashgen.ops",
    "flash_attn_varlen_func": "flashgen.varlen",
    "available_kernels": "flashgen.dispatch",
    "catalog_kernels": "flashgen.dispatch",
    "KernelNotBuiltError": "flashgen.errors",
    "ExtensionNotBuiltError": "flashgen.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        # Kept as a module attribute, so `flashgen.flash_attn_func(...)` in a loop skips this
        # lookup (an import_module call, a few us) after the first.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flashgen' has no attribute {name!r}")
