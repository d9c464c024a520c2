"""Writing generated files: only when their content changed (timestamps are kept, so ninja
rebuilds nothing), and removing files of configs that left the catalog."""
from __future__ import annotations

from pathlib import Path

from gen import paths
from gen.render import environment, render_dispatch_table, render_kernel
from gen.spec import Catalog

GENERATED_GLOB = "flash_*.cu"
DISPATCH_FILE = "dispatch_table.cpp"


def write_if_changed(path: Path, content: str) -> bool:
    """Write `content` to `path` unless it already holds exactly that. Returns True if written."""
    if path.exists() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    tmp.replace(path)
    return True


def expected_files(catalog: Catalog) -> dict[str, str]:
    """File name -> content of everything `python -m gen` puts in generated/."""
    env = environment()
    files = {f"{spec.name}.cu": render_kernel(spec, env) for spec in catalog.kernels}
    files[DISPATCH_FILE] = render_dispatch_table(list(catalog.kernels), list(catalog.kernels), env)
    return files


def _owned(out_dir: Path) -> set[str]:
    return {p.name for p in out_dir.glob(GENERATED_GLOB)} | (
        {DISPATCH_FILE} if (out_dir / DISPATCH_FILE).exists() else set())


def sync(catalog: Catalog, out_dir: Path = paths.GENERATED) -> tuple[list[str], list[str]]:
    """Bring out_dir in line with the catalog. Returns (written, removed) file names."""
    files = expected_files(catalog)
    written = [name for name, text in files.items() if write_if_changed(out_dir / name, text)]
    removed = sorted(_owned(out_dir) - set(files))
    for name in removed:
        (out_dir / name).unlink()
    return sorted(written), removed


def check(catalog: Catalog, out_dir: Path = paths.GENERATED) -> list[str]:
    """Descriptions of every way out_dir differs from the catalog (empty when up to date)."""
    files = expected_files(catalog)
    problems = []
    for name, text in sorted(files.items()):
        path = out_dir / name
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_text() != text:
            problems.append(f"differs: {path}")
    for name in sorted(_owned(out_dir) - set(files)):
        problems.append(f"stale (not in the catalog): {out_dir / name}")
    return problems
