"""Run-time kernel choice: the best compiled kernel for the inputs and the GPU.

Among the arch families the GPU can run (or the one forced by `arch=` / FLASHGEN_ARCH) and the
kernels built with every feature the call needs (`features=`; a variant also runs calls that need
fewer of its features, the others off; varlen, a layout, only on both sides), the kernel with the smallest catalog head dim at least
the input's wins, then the newest family, then the fewest features the call does not need: a
head dim not in the catalog rounds up (the caller zero-pads), and kernels.yaml lists a head dim
for a family only where that family's kernel is the faster one on its GPUs (on Hopper both
families list every head dim and the newest family, sm90, wins the tie).
When no candidate is built, the best one is compiled on first use (flashgen.jit), or, with
FLASHGEN_JIT=0, the error names it, lists what was built and gives the build command.
"""
from __future__ import annotations

import os
from functools import lru_cache

import torch

from flashgen import jit
from flashgen._ext import extension
from flashgen.build_command import add_command
from flashgen.errors import KernelNotBuiltError
from flashgen.naming import KernelKey
from gen.axes import ARCH_PREFERENCE, ARCHS, AXIS, DTYPES, OLDEST_CAPABILITY

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


# A feature that changes the tensors' layout, not only what a kernel computes: a varlen kernel
# takes packed sequences and cu_seqlens, so it runs varlen calls only and a varlen call runs on
# varlen kernels only.
LAYOUT_FEATURE = "varlen"


def choose_kernel(direction: str, head_dim: int, dtype: torch.dtype, capability: tuple[int, int],
                  arch: str | None = None, features: frozenset[str] = frozenset()) -> KernelKey:
    """The kernel to run (see the module doc); `features` are those the call needs (gen.axes
    FEATURES). Cached: called on every attention call."""
    # Unknown names: ValueError, allowed ones listed. A frozenset (what the ops pass) is checked
    # once, not on every call.
    features = _checked_features(features) if isinstance(features, frozenset) else _canonical_features(features)
    return _choose(direction, head_dim, dtype, tuple(capability), arch or os.environ.get("FLASHGEN_ARCH") or None,
                   features)


def _canonical_features(features) -> frozenset[str]:
    return frozenset(AXIS["features"].canonical(features))


# The check depends on the names alone; an unknown name raises, and errors are not cached.
_checked_features = lru_cache(maxsize=None)(_canonical_features)


# Device -> compute capability of the CUDA GPUs seen so far: a GPU's never changes, and asking
# torch costs a device-index lookup on every call. Other devices (CPU and meta stand-ins in
# tests, which patch torch.cuda.get_device_capability) are asked each time.
_CUDA_CAPABILITIES: dict[torch.device, tuple[int, int]] = {}


def device_capability(device: torch.device) -> tuple[int, int]:
    """torch.cuda.get_device_capability(device), remembered per CUDA device."""
    capability = _CUDA_CAPABILITIES.get(device)
    if capability is None:
        capability = torch.cuda.get_device_capability(device)
        if device.type == "cuda" and device.index is not None:
            _CUDA_CAPABILITIES[device] = capability
    return capability


@lru_cache(maxsize=None)
def _choose(direction: str, head_dim: int, dtype: torch.dtype, capability: tuple[int, int],
            arch: str | None, features: frozenset[str]) -> KernelKey:
    dtype_name = TORCH_DTYPE_NAMES[dtype]
    built, catalog = _kernel_sets()
    families = _candidate_archs(capability, arch)
    # Least padding first (a padded head dim is wasted work), then the newest family: the catalog
    # lists a family's head dim only where it is that family's best kernel for it. Then the fewest
    # features the call does not need: one turned off costs a branch per tile, far less than
    # padding or an older family. The features themselves break what ties are left.
    candidates = sorted((k for k in catalog if (k.direction, k.dtype) == (direction, dtype_name)
                         and k.arch in families and k.hdim >= head_dim and features <= set(k.features)
                         and (LAYOUT_FEATURE in features) == (LAYOUT_FEATURE in k.features)),
                        key=lambda k: (k.hdim, families.index(k.arch), len(k.features), k.features))
    for key in candidates:
        if key in built:
            return key
    wanted = candidates[0] if candidates else None  # the best catalog kernel; none is built
    built_list = ", ".join(sorted(k.name for k in built)) or "none"
    call = ", ".join([f"head_dim={head_dim}", dtype_name, *AXIS["features"].canonical(features)])
    if wanted is None:
        raise KernelNotBuiltError(
            f"no {direction} kernel in flashgen's catalog covers {call}, on this GPU "
            f"(compute capability {_version(capability)}). Add a config to kernels.yaml. Built: {built_list}")
    if jit.enabled():
        # Only when no candidate is built: a built kernel is never passed over for a compile.
        jit.load_kernel(extension(), wanted, capability)
        _kernel_sets.cache_clear()  # the new kernel joins the built ones for every later choice
        _choose.cache_clear()
        return wanted
    raise KernelNotBuiltError(
        f"{wanted.name} is needed ({call}, {direction}) but this build does not hold it. "
        f"Built: {built_list}. Add it with: {add_command(wanted, catalog)} "
        "(compiling on first use is off: FLASHGEN_JIT=0)")
