"""Run-time kernel choice: the best compiled kernel for the inputs and the GPU.

Among the arch families the GPU can run (or the one forced by `arch=` / FLASHGEN_ARCH), the
kernel with the smallest catalog head dim at least the input's wins, the newest family on a tie:
a head dim not in the catalog rounds up (the caller zero-pads), and kernels.yaml lists a head dim
for a family only where that family's kernel is the faster one (sm90's backward: 256 only).
When no candidate is built, the best one is compiled on first use (flashgen.jit), or, with
FLASHGEN_JIT=0, the error names it, lists what was built and gives the build command.
"""
from __future__ import annotations

import os
from functools import lru_cache

import torch

from flashgen import jit
from flashgen._ext import extension
from flashgen.errors import KernelNotBuiltError
from flashgen.locations import BUILD_COMMAND
from flashgen.naming import KernelKey
from gen.axes import ARCH_PREFERENCE, ARCHS, DTYPES, OLDEST_CAPABILITY

TORCH_DTYPES = {name: getattr(torch, dtype.torch_name) for name, dtype in DTYPES.items()}
TORCH_DTYPE_NAMES = {torch_dtype: name for name, torch_dtype in TORCH_DTYPES.items()}


def arch_runs_on(arch: str, capability: tuple[int, int]) -> bool:
    return ARCHS[arch].runs_on(capability)


def available_kernels() -> list[str]:
    """Names of the kernels this process can run: the build's, then those compiled on first use
    (flashgen.jit) and loaded so far."""
    ext = extension()
    built = list(ext.built_kernels())
    loaded = ext.loaded_kernels() if hasattr(ext, "loaded_kernels") else []  # an extension older than JIT
    return built + [name for name in loaded if name not in built]


def catalog_kernels() -> list[str]:
    """Names of every kernel kernels.yaml defines (built or not), as of this build."""
    return list(extension().catalog_kernels())


@lru_cache(maxsize=None)
def _kernel_sets() -> tuple[frozenset, frozenset]:
    """(built, catalog) as parsed keys; cleared when a kernel is compiled on first use."""
    return (frozenset(KernelKey.parse(n) for n in available_kernels()),
            frozenset(KernelKey.parse(n) for n in catalog_kernels()))


def _candidate_archs(capability, forced):
    if forced is None:
        archs = [a for a in ARCH_PREFERENCE if arch_runs_on(a, capability)]
        if not archs:
            raise RuntimeError(f"flashgen needs a GPU of compute capability {_version(OLDEST_CAPABILITY)} or newer; "
                               f"this one is {_version(capability)}")
        return archs
    if forced not in ARCHS:
        raise ValueError(f"arch={forced!r} is not an arch family (allowed: {', '.join(ARCHS)})")
    if not arch_runs_on(forced, capability):
        raise ValueError(f"arch={forced!r} kernels cannot run on this GPU "
                         f"(compute capability {_version(capability)})")
    return [forced]


def _version(capability) -> str:
    return ".".join(map(str, capability))


def choose_kernel(direction: str, head_dim: int, dtype: torch.dtype, capability: tuple[int, int],
                  arch: str | None = None) -> KernelKey:
    """The kernel to run (see the module doc). Cached: called on every attention call."""
    return _choose(direction, head_dim, dtype, tuple(capability), arch or os.environ.get("FLASHGEN_ARCH") or None)


@lru_cache(maxsize=None)
def _choose(direction: str, head_dim: int, dtype: torch.dtype, capability: tuple[int, int],
                  arch: str | None = None) -> KernelKey:
    dtype_name = TORCH_DTYPE_NAMES[dtype]
    built, catalog = _kernel_sets()
    families = _candidate_archs(capability, arch)
    # Least padding first (a padded head dim is wasted work), then the newest family: the catalog
    # lists a family's head dim only where it is that family's best kernel for it.
    candidates = sorted((k for k in catalog if (k.direction, k.dtype) == (direction, dtype_name)
                         and k.arch in families and k.hdim >= head_dim),
                        key=lambda k: (k.hdim, families.index(k.arch)))
    for key in candidates:
        if key in built:
            return key
    wanted = candidates[0] if candidates else None  # the best catalog kernel; none is built
    built_list = ", ".join(sorted(k.name for k in built)) or "none"
    if wanted is None:
        raise KernelNotBuiltError(
            f"no {direction} kernel in flashgen's catalog covers head_dim={head_dim}, {dtype_name}, on this GPU "
            f"(compute capability {_version(capability)}). Add a config to kernels.yaml. Built: {built_list}")
    if jit.enabled():
        # Only when no candidate is built: a built kernel is never passed over for a compile.
        jit.load_kernel(extension(), wanted, capability)
        _kernel_sets.cache_clear()  # the new kernel joins the built ones for every later choice
        _choose.cache_clear()
        return wanted
    raise KernelNotBuiltError(
        f"{wanted.name} is needed (head_dim={head_dim}, {dtype_name}, {direction}) but this build does not hold it. "
        f"Built: {built_list}. Add it with: {BUILD_COMMAND} --add {wanted.name} "
        "(compiling on first use is off: FLASHGEN_JIT=0)")
