"""Which GPUs run which kernel family: one answer for dispatch (which kernel to call) and the
build (which kernels this machine needs). Pure Python, no torch."""
from __future__ import annotations

from flashgen.naming import ARCHS

# Newest first. sm90 kernels use sm_90a instructions, which run on compute capability 9.0 only.
ARCH_PREFERENCE = ("sm90", "sm80")
assert set(ARCH_PREFERENCE) == set(ARCHS)


def arch_runs_on(arch: str, capability: tuple[int, int]) -> bool:
    if arch == "sm90":
        return tuple(capability) == (9, 0)
    return tuple(capability) >= (8, 0)
