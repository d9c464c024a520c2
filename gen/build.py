"""One build: sync generated/, write the selection's dispatch table and ninja file, run ninja."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gen import emit, paths
from gen.ninja import BuildPlan, ninja_text
from gen.render import render_dispatch_table
from gen.spec import Catalog, KernelSpec
from gen.toolchain import Toolchain, ninja_command

NVCC_GB_PER_JOB = 10  # an hdim-256 instantiation has been seen taking 6-8 GB in nvcc


def default_jobs() -> int:
    """Parallel compiles that fit this machine's cores and memory."""
    cores = os.cpu_count() or 1
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemAvailable")).split()[1])
        by_memory = max(1, kb // (NVCC_GB_PER_JOB * 1024 * 1024))
    except (OSError, StopIteration, ValueError):
        by_memory = 1
    return max(1, min(cores, by_memory))


SELECTION_FILE = "selected_kernels.txt"


def previous_selection(build_dir: Path) -> tuple[str, ...]:
    """Kernel names the build dir was last prepared for (empty if none)."""
    path = Path(build_dir) / SELECTION_FILE
    return tuple(path.read_text().split()) if path.exists() else ()


def extension_path(build_dir: Path) -> Path:
    return build_dir / f"_C{Toolchain.extension_suffix()}"


@dataclass
class BuildResult:
    ok: bool
    compiled: int     # translation units compiled in this run
    seconds: float
    extension: Path


def prepare(catalog: Catalog, selected: list[KernelSpec], build_dir: Path, toolchain: Toolchain,
            generated_dir: Path = paths.GENERATED, capabilities: tuple[tuple[int, int], ...] = ()) -> BuildPlan:
    """Write everything ninja needs; unchanged files keep their timestamps. capabilities: the
    GPUs to compile machine code for (BuildPlan.capabilities; empty: every target)."""
    emit.sync(catalog, generated_dir)
    plan = BuildPlan(kernels=tuple(selected), build_dir=build_dir, generated_dir=generated_dir,
                     extension=extension_path(build_dir), capabilities=tuple(capabilities))
    emit.write_if_changed(plan.dispatch_source, render_dispatch_table(selected, list(catalog.kernels)))
    emit.write_if_changed(build_dir / "build.ninja", ninja_text(plan, toolchain))
    emit.write_if_changed(build_dir / SELECTION_FILE, "".join(f"{k.name}\n" for k in selected))
    return plan


def dry_run(plan: BuildPlan) -> list[str]:
    """The build steps ninja would run now (nothing is compiled)."""
    out = subprocess.run(ninja_command() + ["-C", str(plan.build_dir), "-n"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    return [line for line in out.stdout.splitlines() if line.startswith("[")]


def run(plan: BuildPlan, jobs: int, stream=sys.stdout) -> BuildResult:
    """Run ninja, echoing its progress lines ([n/N] NVCC <kernel>) and any compiler output."""
    start = time.monotonic()
    env = dict(os.environ, NINJA_STATUS="[%f/%t %es] ")
    proc = subprocess.Popen(ninja_command() + ["-C", str(plan.build_dir), "-j", str(jobs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    compiled = 0
    for line in proc.stdout:
        if re.match(r"\[\d+/\d+ [\d.]+s\] (NVCC|CXX) ", line):
            compiled += 1
        stream.write(line)
        stream.flush()
    ok = proc.wait() == 0
    return BuildResult(ok=ok, compiled=compiled, seconds=time.monotonic() - start, extension=plan.extension)
