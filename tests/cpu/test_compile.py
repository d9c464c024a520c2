"""Real nvcc compiles of an instantiation through build.py (about a minute on 2 cores)."""
import ctypes
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gen import build, paths, report
from gen.spec import load_catalog
from gen.render import render_kernel
from gen.toolchain import Toolchain
from gen.axes import ARCHS

pytestmark = pytest.mark.compile
KERNEL = "flash_fwd_hdim64_fp16_sm80"  # the cheapest instantiations of the catalog (kernels.yaml)
BWD_KERNEL = "flash_bwd_hdim64_fp16_sm80"


def run_build_py(*args):
    return subprocess.run([sys.executable, "build.py", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    build_dir = tmp_path_factory.mktemp("build")
    result = run_build_py("--kernels", f"{KERNEL},{BWD_KERNEL}", "--build-dir", str(build_dir), "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    return build_dir, result.stdout


def test_build_compiles_the_selection_with_progress(built):
    build_dir, out = built
    assert f"NVCC {KERNEL}" in out and f"NVCC {BWD_KERNEL}" in out and "[5/5 " in out
    assert "built 2 kernel(s); compiled 4 file(s)" in out
    assert build.extension_path(build_dir).exists()


def test_build_ends_with_the_report_and_report_reprints_it(built):
    build_dir, out = built
    reports = {r.name: r for r in report.collect(build_dir)}
    for name in (KERNEL, BWD_KERNEL):
        assert reports[name].seconds > 1, name  # from ninja's log
        assert set(reports[name].targets) == {"sm_80", "sm_90"} and reports[name].targets["sm_80"].registers > 0
    assert "spill st/ld B" in out and "2 kernel(s)," in out
    again = run_build_py("--report", "--build-dir", str(build_dir))
    assert again.returncode == 0 and again.stdout.splitlines()[0] in out
    assert sum(line.startswith(("flash_fwd_hdim64", "flash_bwd_hdim64")) for line in again.stdout.splitlines()) == 2


def test_rebuild_with_nothing_changed_compiles_nothing(built):
    build_dir, _ = built
    start = time.monotonic()
    result = run_build_py("--kernels", f"{KERNEL},{BWD_KERNEL}", "--build-dir", str(build_dir))
    assert result.returncode == 0 and "compiled 0 file(s)" in result.stdout and "(nothing to do)" in result.stdout
    assert time.monotonic() - start < 30


def test_extension_reports_its_kernels_without_a_gpu(built):
    build_dir, _ = built
    code = "import flashgen; print(flashgen.available_kernels(), len(flashgen.catalog_kernels()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                            env=dict(os.environ, FLASHGEN_BUILD_DIR=str(build_dir)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"['{BWD_KERNEL}', '{KERNEL}'] {len(load_catalog().kernels)}"


def test_failing_compile_shows_the_error_and_keeps_the_previous_extension(built, tmp_path):
    build_dir, _ = built
    catalog = load_catalog()
    spec = catalog.by_name()[KERNEL]
    plan = build.prepare(catalog, [spec], build_dir, Toolchain(), generated_dir=tmp_path)
    source = plan.kernel_source(spec)
    source.write_text(source.read_text() + '\n#error "deliberately broken kernel"\n')
    extension_before = plan.extension.read_bytes()
    log = io.StringIO()
    result = build.run(plan, jobs=2, stream=log)
    assert not result.ok
    assert "deliberately broken kernel" in log.getvalue() and str(source) in log.getvalue()
    assert plan.extension.read_bytes() == extension_before


@pytest.mark.parametrize("name", [
    "flash_fwd_hdim64_fp16_sm90", "flash_bwd_hdim64_fp16_sm90",
    "flash_bwd_hdim256_bf16_sm90",  # the flagship: the most registers, two-atom warpgroup halves
])
def test_sm90_kernels_compile_to_warpgroup_mma(name, tmp_path):
    # To wgmma: plain sm_90 or a layout slip would give mma.sync or fail. The non-warp-specialized
    # backward lives in the sm90 tuning catalog (kernels.yaml's sm90 backward is warp-specialized).
    catalog = load_catalog(paths.REPO_ROOT / "bench" / "tuning" / "sm90_family.yaml")
    spec = catalog.by_name()[name]
    source = tmp_path / f"{spec.name}.cu"
    source.write_text(render_kernel(spec))
    toolchain = Toolchain()
    command = [toolchain.nvcc, *toolchain.nvcc_flags, *ARCHS["sm90"].gencode, "-cubin", "--keep",
               "--keep-dir", str(tmp_path), str(source), "-o", str(tmp_path / "kernel.cubin")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ptx = "".join(p.read_text() for p in tmp_path.glob("*.ptx"))
    assert "wgmma.mma_async" in ptx and "mma.sync" not in ptx


def _compile_without_ptxas(spec, tmp_path):
    source = tmp_path / f"{spec.name}.cu"
    source.write_text(render_kernel(spec))
    toolchain = Toolchain()
    gencode = [target.ptx_only_gencode for target in ARCHS[spec.key.arch].targets]
    command = [toolchain.nvcc, *toolchain.nvcc_flags, *gencode, "-c", str(source), "-o", str(tmp_path / f"{spec.name}.o")]
    return spec.name, subprocess.run(command, capture_output=True, text=True)


def test_every_sm90_kernel_of_the_catalog_compiles(tmp_path):
    # Each sm90 plan instantiates its kernel template with its own constants, so code that one plan
    # never calls can still fail for another (session 16's ds_exchange operands broke the 192
    # backward, which has no partner storage, and no test compiled it). One dtype (the other differs
    # only in the element type), every head dim and feature variant of kernels.yaml; device code to
    # PTX (front end and NVVM, where such errors are; ptxas would add minutes) and the host code
    # (the launchers) to an object, two at a time.
    specs = [spec for spec in load_catalog().kernels if spec.key.arch == "sm90" and spec.key.dtype == "bf16"]
    assert {spec.key.hdim for spec in specs} == {64, 96, 128, 192, 256}
    assert {spec.key.direction for spec in specs} == {"fwd", "bwd"}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda spec: _compile_without_ptxas(spec, tmp_path), specs))
    failed = {name: result.stderr[-3000:] for name, result in results if result.returncode != 0}
    assert not failed, "\n".join(f"{name}:\n{err}" for name, err in failed.items())


# Compiling on first use (flashgen/jit.py), for real: a process with no build at all builds the
# torch binding (empty table) and the one kernel it needs into a fresh cache; later processes find
# both there. The kernel compiles for sm_80 only, the GPU the call names.
JIT_KERNEL = "flash_fwd_hdim64_bf16_sm80"
_FIRST_CALL = ("import torch; from flashgen import dispatch; "
               "key = dispatch.choose_kernel('fwd', 64, torch.bfloat16, (8, 0)); "
               "print(key.name, sorted(dispatch.available_kernels()))")


def first_call(cache, build_dir):
    env = dict(os.environ, FLASHGEN_JIT="1", FLASHGEN_CACHE_DIR=str(cache), FLASHGEN_BUILD_DIR=str(build_dir))
    return subprocess.run([sys.executable, "-c", _FIRST_CALL], cwd=paths.REPO_ROOT, capture_output=True,
                          text=True, env=env)


@pytest.fixture(scope="module")
def jit_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jit_cache")
    result = first_call(cache, tmp_path_factory.mktemp("no_build"))
    assert result.returncode == 0, result.stdout + result.stderr
    return cache, result


def test_first_use_compiles_the_binding_and_the_kernel_and_says_so(jit_cache):
    _, result = jit_cache
    assert "flashgen: compiling flashgen's torch binding (no kernels: each compiles on first use)" in result.stderr
    assert f"flashgen: compiling {JIT_KERNEL} on first use, once (cached in " in result.stderr
    assert result.stderr.count("flashgen: compiled ") == 2
    assert result.stdout.strip() == f"{JIT_KERNEL} ['{JIT_KERNEL}']"


def test_next_process_finds_the_kernel_in_the_cache(jit_cache, built, tmp_path):
    cache, _ = jit_cache
    again = first_call(cache, tmp_path)  # no build: the cached binding and kernel
    assert again.returncode == 0 and "compiling" not in again.stderr, again.stderr
    assert again.stdout.strip() == f"{JIT_KERNEL} ['{JIT_KERNEL}']"
    # Beside an ahead-of-time build, the cached kernel joins the extension's own.
    build_dir, _ = built
    beside = first_call(cache, build_dir)
    assert beside.returncode == 0 and "compiling" not in beside.stderr, beside.stderr
    assert beside.stdout.strip() == f"{JIT_KERNEL} {sorted([BWD_KERNEL, KERNEL, JIT_KERNEL])}"


def test_kernel_library_exports_its_registry_entry(jit_cache):
    cache, _ = jit_cache
    (path,) = cache.glob(f"*/*/jit/{JIT_KERNEL}-*/lib{JIT_KERNEL}.so")

    class KernelEntry(ctypes.Structure):  # csrc/flashgen/registry.h
        _fields_ = [("name", ctypes.c_char_p), ("fwd", ctypes.c_void_p), ("bwd", ctypes.c_void_p),
                    ("block_m", ctypes.c_int), ("block_n", ctypes.c_int)]

    entry_point = ctypes.CDLL(str(path)).flashgen_kernel_entry_v1  # dlopen + dlsym, as the binding does
    entry = KernelEntry()
    assert entry_point(ctypes.byref(entry), ctypes.sizeof(entry)) == 0
    tile = load_catalog().by_name()[JIT_KERNEL].tile
    assert (entry.name.decode(), bool(entry.fwd), entry.bwd) == (JIT_KERNEL, True, None)
    assert (entry.block_m, entry.block_n) == (tile.block_m, tile.block_n)
    assert entry_point(ctypes.byref(entry), 8) == 1  # another layout is refused, not misread
