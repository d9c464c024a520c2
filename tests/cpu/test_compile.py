"""Real nvcc compiles of an instantiation through build.py (about a minute on 2 cores)."""
import io
import os
import subprocess
import sys
import time

import pytest

from gen import build, paths, report
from gen.spec import load_catalog
from gen.render import render_kernel
from gen.toolchain import Toolchain
from gen.vocab import ARCH_INFO

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
    # To wgmma: plain sm_90 or a layout slip would give mma.sync or fail. The backward's head
    # dim 64 lives in the sm90 tuning catalog (kernels.yaml takes the sm80 backward there).
    catalog = load_catalog(paths.REPO_ROOT / "bench" / "tuning" / "sm90_family.yaml")
    spec = catalog.by_name()[name]
    source = tmp_path / f"{spec.name}.cu"
    source.write_text(render_kernel(spec))
    toolchain = Toolchain()
    command = [toolchain.nvcc, *toolchain.nvcc_flags, *ARCH_INFO["sm90"].gencode, "-cubin", "--keep",
               "--keep-dir", str(tmp_path), str(source), "-o", str(tmp_path / "kernel.cubin")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ptx = "".join(p.read_text() for p in tmp_path.glob("*.ptx"))
    assert "wgmma.mma_async" in ptx and "mma.sync" not in ptx
