"""The kernels' index algebra, checked on the host (tests/cpu/host_checks.cu, built for every
bf16 config of the catalogs, ~30 s):
transposed shared-memory views, the register (rows, cols) views the softmax reduces over, P's
registers as the A operand of the P V MMA (sm80 and sm90 families), and which (query block,
key block) pairs the forward and backward visit, against the mask's rule."""
import subprocess
from pathlib import Path

import pytest

from gen import paths
from gen.toolchain import Toolchain, cutlass_include
from gen.axes import ARCHS
from tests.catalog_configs import write_config_header

pytestmark = pytest.mark.compile
SOURCE = Path(__file__).resolve().parent / "host_checks.cu"


def test_kernel_index_algebra_holds_on_the_host(tmp_path):
    toolchain = Toolchain()
    binary = tmp_path / "host_checks"
    write_config_header(tmp_path / "flashgen_configs.h")
    build = subprocess.run([toolchain.nvcc, "-std=c++17", "-O1", "--expt-relaxed-constexpr", "-DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED",
                            f"-I{paths.CSRC}",
                            f"-I{cutlass_include()}", f"-I{tmp_path}", *ARCHS["sm90"].gencode, str(SOURCE),
                            "-o", str(binary)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True)
    assert run.returncode == 0 and ", 0 failed" in run.stdout, run.stdout


def test_the_gpu_wgmma_probe_keeps_compiling(tmp_path):
    # tests/gpu/wgmma_probe.cu runs only on a Hopper; here it must at least build.
    from tests.gpu.test_wgmma_probe import build_probe
    build = build_probe(tmp_path / "wgmma_probe")
    assert build.returncode == 0, build.stderr
