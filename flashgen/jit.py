"""Compiling on first use (JIT). A call whose kernel is in kernels.yaml but not built compiles it
once into the per-user cache (flashgen.locations.jit_dir), loads it into the torch binding and
runs; a later process loads it from the cache. With no ahead-of-time build at all, the binding
itself is built there first, with an empty kernel table. FLASHGEN_JIT=0 turns this off: the call
raises KernelNotBuiltError with the build command instead.

Dispatch calls this at run time, inside the flashgen::fwd/bwd ops; their fake implementations,
which torch.compile traces, choose no kernel, so tracing never compiles. The building itself is
gen/jit.py's.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from flashgen import locations
from flashgen.build_command import add_command
from flashgen.errors import ExtensionNotBuiltError, KernelNotBuiltError
from flashgen.naming import KernelKey

_OFF = ("0", "false", "no", "off")


def enabled() -> bool:
    """FLASHGEN_JIT: on unless 0/false/no/off. Read on each use, so tests and callers can flip it."""
    return os.environ.get("FLASHGEN_JIT", "1").strip().lower() not in _OFF


@lru_cache(maxsize=None)
def _catalog():
    from gen.spec import load_catalog
    return load_catalog()


def load_kernel(extension, key: KernelKey, capability: tuple[int, int] | None) -> None:
    """Make `key` runnable by `extension`: compile it unless the cache has it, then register it."""
    from gen import jit as build
    from gen.toolchain import ToolchainError

    build_command = add_command(key, (spec.key for spec in _catalog().kernels))
    if not hasattr(extension, "load_kernel"):
        raise KernelNotBuiltError(
            f"{key.name} is needed but not built, and the extension in {locations.build_dir()} predates "
            f"compiling on first use: rebuild it with `{locations.BUILD_COMMAND}`, or add the kernel with "
            f"`{build_command}`")
    spec = _catalog().by_name().get(key.name)
    if spec is None:  # the extension came from another catalog (a tuning build)
        raise KernelNotBuiltError(f"{key.name} is needed but not built, and kernels.yaml does not define it, "
                                  f"so it cannot be compiled on first use: build it ahead of time")
    try:
        library = build.kernel_library(spec, locations.jit_dir(), capability)
    except ToolchainError as exc:
        raise KernelNotBuiltError(
            f"{key.name} is needed but not built, and compiling it on first use failed: {exc}. "
            f"Or build it ahead of time: `{build_command}`") from exc
    extension.load_kernel(str(library))


def binding_path() -> Path:
    """The torch binding with no kernels, from the cache (built there on first use)."""
    from gen import jit as build
    from gen.toolchain import ToolchainError

    try:
        return build.binding(_catalog(), locations.jit_dir())
    except ToolchainError as exc:
        raise ExtensionNotBuiltError(
            f"flashgen's kernels are not built, and building its torch binding on first use failed: {exc}. "
            f"Or build ahead of time with `{locations.BUILD_COMMAND}` (see README)") from exc
