"""Every path the generator and the build use, in one place."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOG = REPO_ROOT / "kernels.yaml"
TEMPLATES = REPO_ROOT / "templates"
GENERATED = REPO_ROOT / "generated"
CSRC = REPO_ROOT / "csrc"
BINDING_SOURCE = CSRC / "binding.cpp"
DEFAULT_BUILD_DIR = REPO_ROOT / "build"
