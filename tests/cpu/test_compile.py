"""Real nvcc compiles of an instantiation through build.py (about a minute on 2 cores)."""
import io
import os
import subprocess
import sys
import time

import pytest

from gen import build, paths
from gen.spec import load_catalog
from gen.toolchain import Toolchain

pytestmark = pytest.mark.compile
KERNEL = "flash_fwd_hdim64_fp16_sm80"  # the cheapest sm80 instantiations; sm80 is the only family yet
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
