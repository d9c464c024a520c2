"""Errors flashgen raises beyond ValueError/TypeError for bad input."""
from __future__ import annotations


class ExtensionNotBuiltError(ImportError):
    """The compiled extension is missing: nothing has been built yet."""


class KernelNotBuiltError(RuntimeError):
    """The inputs need a kernel this build does not hold; the message says what to build."""


class KernelBuildError(RuntimeError):
    """Compiling a kernel on first use (flashgen.jit) failed; the message holds the compiler's output."""
