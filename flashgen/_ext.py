"""Loads the compiled extension that `python build.py` links into the build folder
(flashgen.locations.build_dir: build/ in a checkout, a per-user cache when installed). Without
one, and with compiling on first use on (flashgen.jit), a binding with no kernels from the JIT
cache, built there on first use."""
from __future__ import annotations

import importlib.util
import sysconfig
from functools import lru_cache

from flashgen import jit
from flashgen.errors import ExtensionNotBuiltError
from flashgen.locations import BUILD_COMMAND, build_dir


@lru_cache(maxsize=None)
def extension():
    import torch  # noqa: F401 - loads libtorch before the extension that links it

    path = build_dir() / f"_C{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
    if not path.exists():
        if not jit.enabled():
            raise ExtensionNotBuiltError(
                f"flashgen's kernels are not built (no {path}). Build them with `{BUILD_COMMAND}` "
                "(see README), or set FLASHGEN_BUILD_DIR to the folder of an existing build "
                "(or unset FLASHGEN_JIT=0 to compile each kernel on first use).")
        path = jit.binding_path()
    spec = importlib.util.spec_from_file_location("flashgen._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
