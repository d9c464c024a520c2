"""Where flashgen's build inputs are and where its extension is built: one answer for the
generator (build.py) and the runtime (flashgen._ext). Pure Python, no torch.

From a checkout (or an editable install of one), kernels.yaml, templates/ and csrc/ sit in the
repository root and the build goes to build/. A pip-installed flashgen carries them in
flashgen/_data/ and builds into a per-user cache, one folder per flashgen, torch and Python
version, since an extension links against one torch and one Python ABI.
FLASHGEN_BUILD_DIR overrides the build folder in both cases. Kernels compiled on first use
(flashgen.jit) always go to the per-user cache (jit_dir).
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_ROOT = PACKAGE_DIR.parent

# A checkout has the catalog and the generator beside the package; site-packages has neither.
IN_CHECKOUT = (_CHECKOUT_ROOT / "kernels.yaml").is_file() and (_CHECKOUT_ROOT / "gen").is_dir()
SOURCE_ROOT = _CHECKOUT_ROOT if IN_CHECKOUT else PACKAGE_DIR / "_data"
# What a user types to build kernels: the checkout's script, or the installed console script.
BUILD_COMMAND = "python build.py" if IN_CHECKOUT else "flashgen-build"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def cache_root() -> Path:
    """$FLASHGEN_CACHE_DIR, else $XDG_CACHE_HOME/flashgen, else ~/.cache/flashgen."""
    if os.environ.get("FLASHGEN_CACHE_DIR"):
        return Path(os.environ["FLASHGEN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flashgen"


@lru_cache(maxsize=None)
def _versions_folder() -> Path:
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return Path(_version("flashgen")) / f"torch{_version('torch')}-{python}"


def _cache_build_dir() -> Path:
    return cache_root() / _versions_folder()


def jit_dir() -> Path:
    """Where kernels compiled on first use (flashgen.jit) are cached, a folder each: the per-user
    cache, from a checkout too (FLASHGEN_CACHE_DIR moves it; FLASHGEN_BUILD_DIR does not)."""
    return _cache_build_dir() / "jit"


def build_dir() -> Path:
    """The build folder build.py writes and flashgen loads its extension from."""
    if os.environ.get("FLASHGEN_BUILD_DIR"):
        return Path(os.environ["FLASHGEN_BUILD_DIR"])
    return _CHECKOUT_ROOT / "build" if IN_CHECKOUT else _cache_build_dir()
