"""Every path the generator and the build use, in one place.

The build inputs (kernels.yaml, templates/, csrc/) come from flashgen.locations.SOURCE_ROOT: the
repository root in a checkout, flashgen/_data/ in an installed package.
"""
from __future__ import annotations

from flashgen import locations

REPO_ROOT = locations.SOURCE_ROOT
CATALOG = REPO_ROOT / "kernels.yaml"
TEMPLATES = REPO_ROOT / "templates"
GENERATED = REPO_ROOT / "generated"   # committed in a checkout; not shipped in the package
CSRC = REPO_ROOT / "csrc"
BINDING_SOURCE = CSRC / "binding.cpp"


def generated_dir(catalog, build_dir):
    """Where a build renders its .cu files: the committed generated/ for the checkout's own
    catalog, else (another catalog, or an installed package) a folder of the build's own."""
    if locations.IN_CHECKOUT and catalog.resolve() == CATALOG:
        return GENERATED
    return build_dir / "generated"
