"""flashgen: FlashAttention kernels generated from a catalog (kernels.yaml).

    import flashgen
    out = flashgen.flash_attn_func(q, k, v, causal=True)
    flashgen.available_kernels()

Attributes load lazily, so `flashgen.naming` (used by the generator) needs no torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "flash_attn_func": "flashgen.ops",
    "available_kernels": "flashgen.dispatch",
    "catalog_kernels": "flashgen.dispatch",
    "KernelNotBuiltError": "flashgen.errors",
    "ExtensionNotBuiltError": "flashgen.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'flashgen' has no attribute {name!r}")
