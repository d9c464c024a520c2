"""Building one kernel, or the torch binding, on first use (flashgen/jit.py decides when).

Each product goes to its own folder under the JIT cache, named by a fingerprint of everything
its build reads: the rendered sources, the ninja file (compilers, flags, targets) and every file
under csrc/. Changed sources get a new folder, so a library a running process has loaded is
never rebuilt under it. A build runs once, under a file lock beside its folder: concurrent
processes wait for the first and then find its product; a later process finds it at once.
The rendering, rules and flags are the ahead-of-time build's (gen/render.py, gen/ninja.py,
gen/toolchain.py).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

from flashgen.errors import KernelBuildError
from flashgen.locations import BUILD_COMMAND
from gen import emit, paths
from gen.build import extension_path
from gen.filelock import file_lock
from gen.ninja import BuildPlan, KernelLibraryPlan, kernel_library_ninja_text, ninja_text
from gen.render import render_dispatch_table, render_jit_entry, render_kernel
from gen.spec import Catalog, KernelSpec
from gen.toolchain import Toolchain, ninja_command
from gen.axes import ARCHS

BUILD_LOG = "build.log"
_PLACEHOLDER = Path("/@folder@")  # stands for the folder while its name is being computed


def targets(arch: str, capability: tuple[int, int] | None) -> tuple[str, ...]:
    """The arch's nvcc targets for a first call on `capability` (gen.axes.Arch.gencode_for): its
    own GPU's only; without a capability, all of them."""
    return ARCHS[arch].gencode_for([capability] if capability is not None else [])


def fingerprint(*texts: str) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode() + b"\0")
    for path in sorted(p for p in paths.CSRC.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(paths.CSRC)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def kernel_library(spec: KernelSpec, root: Path, capability: tuple[int, int] | None = None,
                   toolchain: Toolchain | None = None, stream=None) -> Path:
    """The shared library of one catalog kernel, built unless the cache has it."""
    toolchain = toolchain or Toolchain()
    gencode = targets(spec.key.arch, capability)
    kernel, entry = render_kernel(spec), render_jit_entry(spec)
    key = fingerprint(kernel, entry, kernel_library_ninja_text(KernelLibraryPlan(spec, _PLACEHOLDER, gencode), toolchain))
    lib = KernelLibraryPlan(spec, root / f"{spec.name}-{key}", gencode)

    def build():
        emit.write_if_changed(lib.source, kernel)
        emit.write_if_changed(lib.entry_source, entry)
        emit.write_if_changed(lib.folder / "build.ninja", kernel_library_ninja_text(lib, toolchain))
        run_ninja(lib.folder, spec.name)

    return build_once(lib.library, spec.name, build, stream)


def binding(catalog: Catalog, root: Path, toolchain: Toolchain | None = None, stream=None) -> Path:
    """The torch binding with an empty kernel table (every kernel then comes on first use), for
    when no ahead-of-time build exists; built unless the cache has it."""
    toolchain = toolchain or Toolchain()
    table = render_dispatch_table([], list(catalog.kernels))
    probe = BuildPlan(kernels=(), build_dir=_PLACEHOLDER, generated_dir=_PLACEHOLDER,
                      extension=extension_path(_PLACEHOLDER))
    folder = root / f"binding-{fingerprint(table, ninja_text(probe, toolchain))}"
    plan = BuildPlan(kernels=(), build_dir=folder, generated_dir=folder, extension=extension_path(folder))

    def build():
        emit.write_if_changed(plan.dispatch_source, table)
        emit.write_if_changed(folder / "build.ninja", ninja_text(plan, toolchain))
        run_ninja(folder, "the torch binding")

    return build_once(plan.extension, "flashgen's torch binding (no kernels: each compiles on first use)",
                      build, stream)


def build_once(product: Path, what: str, build, stream=None) -> Path:
    """`product`, made by build() unless it exists. Products appear by rename (the link rule),
    so one that exists is whole. Messages go to `stream`, by default stderr."""
    if product.exists():
        return product
    folder = product.parent

    def say(text):
        print(f"flashgen: {text}", file=stream or sys.stderr, flush=True)

    with file_lock(folder.with_name(folder.name + ".lock"),
                   on_wait=lambda: say(f"waiting for another process compiling {what}")):
        if product.exists():  # the process this one waited for built it
            return product
        say(f"compiling {what} on first use, once (cached in {folder}); this takes a minute or two")
        start = time.monotonic()
        build()
        say(f"compiled {what} in {time.monotonic() - start:.1f} s")
    return product


def run_ninja(folder: Path, what: str) -> None:
    """Run the folder's ninja file; its output goes to build.log, and into the error on failure."""
    result = subprocess.run(ninja_command() + ["-C", str(folder)], capture_output=True, text=True)
    (folder / BUILD_LOG).write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise KernelBuildError(
            f"compiling {what} failed (log: {folder / BUILD_LOG}):\n{output[-6000:]}\n"
            f"Build ahead of time instead with `{BUILD_COMMAND}` (README: Building a selection), "
            "or set FLASHGEN_JIT=0 to get an error rather than a compile on first use.")
