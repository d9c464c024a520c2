"""Loads the compiled extension that `python build.py` links into the build folder."""
from __future__ import annotations

import importlib.util
import os
import sysconfig
from functools import lru_cache
from pathlib import Path

from flashgen.errors import ExtensionNotBuiltError

REPO_ROOT = Path(__file__).resolve().parent.parent


def build_dir() -> Path:
    return Path(os.environ.get("FLASHGEN_BUILD_DIR", REPO_ROOT / "build"))


@lru_cache(maxsize=None)
def extension():
    import torch  # noqa: F401 - loads libtorch before the extension that links it

    path = build_dir() / f"_C{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
    if not path.exists():
        raise ExtensionNotBuiltError(
            f"flashgen's kernels are not built (no {path}). Build them with `python build.py` "
            "(see README), or set FLASHGEN_BUILD_DIR to the folder of an existing build.")
    spec = importlib.util.spec_from_file_location("flashgen._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
