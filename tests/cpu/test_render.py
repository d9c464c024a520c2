"""Rendering: golden files for two configs, StrictUndefined, determinism."""
from pathlib import Path

import jinja2
import pytest

from gen.render import cpp_constant, environment, render_dispatch_table, render_kernel
from gen.spec import load_catalog

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
GOLDEN_KERNELS = ("flash_fwd_hdim128_bf16_sm80", "flash_fwd_hdim256_fp16_sm80", "flash_bwd_hdim256_bf16_sm80",
                  "flash_fwd_hdim256_bf16_sm90")


@pytest.mark.parametrize("name", GOLDEN_KERNELS)
def test_kernel_matches_golden_file(name):
    spec = load_catalog().by_name()[name]
    assert render_kernel(spec) == (GOLDEN / f"{name}.cu").read_text(), (
        f"rendering of {name} changed; if intended, update tests/golden/{name}.cu")


def test_rendering_is_deterministic():
    spec = load_catalog().kernels[0]
    assert render_kernel(spec) == render_kernel(spec)


def test_missing_template_variable_is_an_error(tmp_path):
    (tmp_path / "t.j2").write_text("{{ defined }} {{ not_defined }}")
    with pytest.raises(jinja2.UndefinedError, match="not_defined"):
        environment(tmp_path).get_template("t.j2").render(defined=1)


def test_dispatch_table_lists_selection_and_catalog():
    catalog = list(load_catalog().kernels)
    text = render_dispatch_table(catalog[:1], catalog)
    bwd = catalog[0]
    assert bwd.key.direction == "bwd"
    assert f'{{"{bwd.name}", nullptr, &{bwd.key.launcher}, {bwd.tile.block_m}, {bwd.tile.block_n}}}' in text
    assert f"cudaError_t {bwd.key.launcher}(const BwdParams&, cudaStream_t);" in text
    assert "kNumBuiltKernels = 1;" in text
    assert f"kNumCatalogKernels = {len(catalog)};" in text
    for spec in catalog[1:]:
        assert f'"{spec.name}",' in text and spec.key.launcher not in text


def test_tile_fields_become_named_constants():
    # One rule from kernels.yaml's field names to the tile struct's constants the kernels read.
    assert [cpp_constant(f) for f in ("block_m", "warps", "atom_m_sdp", "dq_before_dk", "o_buffer")] == [
        "kBlockM", "kWarps", "kAtomMSdp", "kDqBeforeDk", "kOBuffer"]
    text = render_kernel(load_catalog().by_name()["flash_bwd_hdim256_bf16_sm80"])
    assert "struct flash_bwd_hdim256_bf16_sm80_tile {" in text
    assert "static constexpr int kQBuffers = 2;" in text
    assert "using flash_bwd_hdim256_bf16_sm80_config = sm80::BwdConfig<flash_bwd_hdim256_bf16_sm80_tile>;" in text
