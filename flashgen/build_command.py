"""The build command that adds one kernel to the build: one answer for dispatch's and the JIT's
errors. Pure Python, no torch."""
from __future__ import annotations

from flashgen.locations import BUILD_COMMAND
from flashgen.naming import KernelKey
from gen.axes import AXIS


def add_command(key: KernelKey, catalog) -> str:
    """`build.py --add` with the kernel's plain name, pinned by --features to its variant when the
    catalog (KernelKeys) has variants of it: --add's names are globs, and a plain name is a prefix
    of every variant's name."""
    command = f"{BUILD_COMMAND} --add {key.plain().name}"
    if any(other.plain() == key.plain() and other.features for other in catalog):
        command += f" --features {AXIS['features'].text(key.features)}"
    return command
