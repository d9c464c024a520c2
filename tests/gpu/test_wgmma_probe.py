"""The sm90 kernels' wgmma operand arrangements, one GEMM each against a host GEMM
(tests/gpu/wgmma_probe.cu): shared-memory layouts and their transposed views, warpgroup
tilings, P's registers as a register-sourced A. Needs a compute capability 9.0 GPU and nvcc."""
import subprocess
from pathlib import Path

import pytest
import torch

from gen import paths
from gen.toolchain import Toolchain, cutlass_include
from gen.axes import ARCHS
from tests.catalog_configs import write_config_header

pytestmark = [pytest.mark.gpu, pytest.mark.probe]
SOURCE = Path(__file__).resolve().parent / "wgmma_probe.cu"


def build_probe(out: Path) -> subprocess.CompletedProcess:
    """Build the probe for every sm90 config of the catalogs into `out` (its header beside it)."""
    toolchain = Toolchain()
    # The head-dim-split backward's operands are slices of its tiles (a consumer's half of K, of
    # Q^T), which this whole-tile harness does not take: tests/gpu/test_backward.py covers them.
    write_config_header(out.parent / "flashgen_configs.h", archs=("sm90",), skip_families=("bwd_sm90_ws_split",))
    return subprocess.run([toolchain.nvcc, "-std=c++17", "-O2", "--expt-relaxed-constexpr", "-DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED",
                            f"-I{paths.CSRC}",
                           f"-I{cutlass_include()}", f"-I{out.parent}", *ARCHS["sm90"].gencode, str(SOURCE),
                           "-o", str(out)], capture_output=True, text=True)


def test_wgmma_operands_match_a_host_gemm(tmp_path):
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("wgmma needs compute capability 9.0")
    build = build_probe(tmp_path / "wgmma_probe")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(tmp_path / "wgmma_probe")], capture_output=True, text=True)
    print(run.stdout)
    assert run.returncode == 0 and "wgmma probe: 0 failed" in run.stdout, run.stdout + run.stderr
