"""kernels.yaml parsing and validation: exact error messages, on inline YAML."""
import textwrap
from unittest import mock
from pathlib import Path

import pytest

from gen.render import render_kernel

from gen.families import FAMILIES
from gen.spec import CatalogError, load_catalog, parse_catalog

GOOD = """\
kernels:
  - direction: fwd
    arch: sm80
    dtypes: [fp16, bf16]
    tiles:
      64: {block_m: 128, block_n: 128, warps: 4}
      128: {block_m: 128, block_n: 64, warps: 4}
presets:
  default: ["flash_fwd_*"]
  all: ["*"]
"""


def error_of(text):
    with pytest.raises(CatalogError) as info:
        parse_catalog(textwrap.dedent(text))
    return str(info.value)


def test_good_catalog_parses_into_sorted_kernels():
    catalog = parse_catalog(GOOD)
    assert [k.name for k in catalog.kernels] == [
        "flash_fwd_hdim64_bf16_sm80", "flash_fwd_hdim64_fp16_sm80",
        "flash_fwd_hdim128_bf16_sm80", "flash_fwd_hdim128_fp16_sm80"]
    assert catalog.kernels[2].smem_bytes == (128 + 2 * 64) * 128 * 2
    assert catalog.presets["default"] == ("flash_fwd_*",)


def test_the_repository_catalog_is_valid():
    catalog = load_catalog()
    assert {"default", "all"} <= set(catalog.presets)
    assert catalog.expand(catalog.presets["all"]) == list(catalog.kernels)


def test_unknown_tile_key():
    assert error_of(GOOD.replace("128: {block_m: 128, block_n: 64", "128: {blok_m: 128, block_n: 64")) == (
        "kernels.yaml:7: kernels[0].tiles[128]: missing key 'block_m'")
    assert error_of(GOOD.replace("warps: 4}\n      128", "warps: 4, stages: 2}\n      128")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: unknown key 'stages' (allowed: block_m, block_n, warps)")


def test_unknown_entry_key():
    assert error_of(GOOD.replace("    arch: sm80\n", "    arch: sm80\n    archs: sm90\n")) == (
        "kernels.yaml:4: kernels[0]: unknown key 'archs' (allowed: direction, arch, dtypes, features, tiles)")


def test_duplicate_key():
    assert error_of(GOOD.replace("      128: {", "      64: {")) == "kernels.yaml:7: duplicate key 64"


def test_head_dim_not_multiple_of_8():
    assert error_of(GOOD.replace("      128: {", "      100: {")) == (
        "kernels.yaml:7: kernels[0].tiles[100]: head dim must be a positive multiple of 8 up to 256, got 100")


def test_head_dim_above_256():
    assert error_of(GOOD.replace("      128: {", "      264: {")) == (
        "kernels.yaml:7: kernels[0].tiles[264]: head dim must be a positive multiple of 8 up to 256, got 264")


def test_head_dim_the_kernel_cannot_tile():
    assert error_of(GOOD.replace("      128: {", "      72: {")) == (
        "kernels.yaml:7: kernels[0].tiles[72]: the sm80 forward kernel needs head dim to be a multiple of 32, got 72")


def test_unknown_dtype():
    assert error_of(GOOD.replace("[fp16, bf16]", "[fp16, fp8]")) == (
        "kernels.yaml:4: kernels[0].dtypes: unknown value 'fp8' (allowed: fp16, bf16)")


def test_a_list_where_a_name_belongs():
    assert error_of(GOOD.replace("[fp16, bf16]", "[[fp16], bf16]")) == (
        "kernels.yaml:4: kernels[0].dtypes: unknown value ['fp16'] (allowed: fp16, bf16)")


def test_unknown_arch():
    assert error_of(GOOD.replace("arch: sm80", "arch: sm75")) == (
        "kernels.yaml:3: kernels[0].arch: unknown value 'sm75' (allowed: sm80, sm90)")


def test_family_without_a_template():
    families = dict(FAMILIES)
    del families[("bwd", "sm90")]
    text = GOOD.replace("arch: sm80", "arch: sm90").replace("direction: fwd", "direction: bwd").replace("flash_fwd_*", "*")
    with mock.patch.dict("gen.spec.FAMILIES", families, clear=True):
        assert error_of(text) == ("kernels.yaml:2: kernels[0]: no kernel template for direction 'bwd' on sm90 "
                                  "(available: fwd/sm80, bwd/sm80, fwd/sm90)")


def test_sm90_backward_takes_64_by_64_tiles():
    text = _bwd_catalog("      128: {block_m: 64, block_n: 64}\n").replace("arch: sm80", "arch: sm90")
    assert parse_catalog(text).kernels[0].smem_bytes == (4 * 64 * 128 + 2 * 64 * 128 + 2 * 64 * 64) * 2
    assert error_of(text.replace("block_n: 64}", "block_n: 128}")) == (
        "kernels.yaml:6: kernels[0].tiles[128]: the sm90 backward kernel takes 64 x 64 tiles only "
        "(one wgmma M per GEMM), got 64 x 128")
    assert error_of(text.replace("      128: {", "      192: {")) == (
        "kernels.yaml:6: kernels[0].tiles[192]: the sm90 backward kernel takes head dim 64, 128 or 256, got 192")


def test_head_dim_split_backward_takes_192_with_three_consumers():
    # 192: three consumers of 64 head dims each, so block_n splits three ways into multiples of 8
    # and whole dQ k steps (a multiple of 48); FlashAttention-3's 64 x 96 there.
    split = ("      192: {block_m: 64, block_n: 96, warp_specialized: 1, head_dim_split: 1, stages: 2}\n")
    text = _bwd_catalog(split).replace("arch: sm80", "arch: sm90")
    kernel = parse_catalog(text).kernels[0]
    # Q ring (2) + dO, K, V, two P and two dS buffers; row statistics and barriers; rounded to 1 KB.
    assert kernel.smem_bytes == -(-((3 * 64 * 192 + 2 * 96 * 192 + 4 * 64 * 96) * 2 + 3 * 64 * 4 + 56) // 1024) * 1024
    assert "kHeadDimSplit = 1;" in render_kernel(kernel)
    assert error_of(text.replace("block_n: 96", "block_n: 80")) == (
        "kernels.yaml:6: kernels[0].tiles[192]: block_n must be a multiple of 48 from 32 to 128 with head_dim_split "
        "at head dim 192 (3 consumers' S columns each a multiple of 8, whole k steps of the dQ GEMM), got 80")
    assert "ds_exchange gives each consumer" in error_of(text.replace("stages: 2}", "stages: 2, ds_exchange: 1}"))
    assert error_of(text.replace("192: {", "160: {")) == (
        "kernels.yaml:6: kernels[0].tiles[160]: head_dim_split gives each consumer whole 64-column dQ pieces of the "
        "head dim (two consumers, three at 192): head dim 128, 192 or 256, got 160")


def test_head_dim_split_backward_buffers_and_ds_exchange():
    split = ("      256: {block_m: 64, block_n: 80, warp_specialized: 1, head_dim_split: 1, stages: 2}\n")
    text = _bwd_catalog(split).replace("arch: sm80", "arch: sm90")
    # Q ring (2) + dO, K, V, two P and two dS buffers; row statistics and barriers; rounded to 1 KB.
    assert parse_catalog(text).kernels[0].smem_bytes == 222208
    one = parse_catalog(text.replace("stages: 2}", "stages: 2, pds_buffers: 1}")).kernels[0]
    assert one.smem_bytes == 222208 - 2 * 64 * 80 * 2
    # The exchange adds the partner's K columns (80 x 128) and its dS buffer: 227 KB exactly.
    pair = parse_catalog(text.replace("stages: 2}", "stages: 2, pds_buffers: 1, ds_exchange: 1}")).kernels[0]
    assert pair.smem_bytes == 232448
    assert "over sm90's limit" in error_of(text.replace("stages: 2}", "stages: 2, ds_exchange: 1}"))
    assert error_of(text.replace("stages: 2}", "stages: 2, pds_buffers: 3}")) == (
        "kernels.yaml:6: kernels[0].tiles[256]: pds_buffers must be 1 or 2, got 3")
    assert error_of(text.replace("256: {", "128: {").replace("stages: 2}", "stages: 2, ds_exchange: 1}")) == (
        "kernels.yaml:6: kernels[0].tiles[128]: ds_exchange gives each consumer of a pair one 64-column dQ piece "
        "of its CTA's head-dim half: head dim 256, got 128")
    ws = text.replace("head_dim_split: 1", "head_dim_split: 0").replace("256: {block_m: 64, block_n: 80",
                                                                         "128: {block_m: 64, block_n: 128")
    assert error_of(ws.replace("stages: 2}", "stages: 2, pds_buffers: 1}")) == (
        "kernels.yaml:6: kernels[0].tiles[128]: ds_exchange and pds_buffers are options of head_dim_split: 1")
    # skip_unseen_keys: a pair's option (the tile struct carries it; the kernel reads it).
    skip = parse_catalog(text.replace("stages: 2}", "stages: 2, pds_buffers: 1, ds_exchange: 1, skip_unseen_keys: 1}"))
    assert "kSkipUnseenKeys = 1;" in render_kernel(skip.kernels[0])
    assert skip.kernels[0].smem_bytes == pair.smem_bytes
    assert error_of(text.replace("stages: 2}", "stages: 2, skip_unseen_keys: 1}")) == (
        "kernels.yaml:6: kernels[0].tiles[256]: skip_unseen_keys skips the steps a cluster pair walks for its "
        "partner: it needs ds_exchange: 1")


def test_dq_before_dk_and_causal_head_groups_are_options_of_the_warp_specialized_backward():
    ws = _bwd_catalog("      128: {block_m: 64, block_n: 128, warp_specialized: 1, stages: 2, dq_before_dk: 1}\n")
    ws = ws.replace("arch: sm80", "arch: sm90")
    assert parse_catalog(ws).kernels[0].tile.dq_before_dk == 1
    groups = parse_catalog(ws.replace("dq_before_dk", "causal_head_groups")).kernels[0]
    assert groups.tile.causal_head_groups == 1
    assert "kCausalHeadGroups = 1;" in render_kernel(groups)
    split = ws.replace("128: {block_m: 64, block_n: 128", "256: {block_m: 64, block_n: 80").replace(
        "stages: 2,", "head_dim_split: 1, stages: 2,")
    assert error_of(split) == ("kernels.yaml:6: kernels[0].tiles[256]: dq_before_dk, causal_head_groups, "
                               "dq_transposed, split_masked_steps and ds_keys_contiguous are options of "
                               "warp_specialized: 1 without head_dim_split")
    masked = parse_catalog(ws.replace("dq_before_dk", "split_masked_steps")).kernels[0]
    assert "kSplitMaskedSteps = 1;" in render_kernel(masked)
    assert "split_masked_steps and" in error_of(split.replace("dq_before_dk", "split_masked_steps"))
    keys = parse_catalog(ws.replace("dq_before_dk", "ds_keys_contiguous")).kernels[0]
    assert "kDsKeysContiguous = 1;" in render_kernel(keys) and keys.smem_bytes == parse_catalog(ws).kernels[0].smem_bytes
    assert "ds_keys_contiguous are options" in error_of(split.replace("dq_before_dk", "ds_keys_contiguous"))
    assert error_of(ws.replace("dq_before_dk: 1", "dq_gemm_first: 1")) == (
        "kernels.yaml:6: kernels[0].tiles[128]: sdp_by_warpgroup and dq_gemm_first are options of warp_specialized: 0")


def test_dq_transposed_takes_block_m_80_at_head_dim_128_only():
    ws = _bwd_catalog("      128: {block_m: 80, block_n: 128, warp_specialized: 1, stages: 2, dq_transposed: 1}\n")
    ws = ws.replace("arch: sm80", "arch: sm90")
    spec = parse_catalog(ws).kernels[0]
    assert (spec.tile.block_m, spec.tile.dq_transposed) == (80, 1)
    assert "kDqTransposed = 1;" in render_kernel(spec)
    # Q and dO rings, K, V, two dS^T buffers, the fp32 dQ staging tile: 225 KB of the 227.
    assert 229376 <= spec.smem_bytes <= 232448
    assert "block_m must be 64 or 128" in error_of(ws.replace(", dq_transposed: 1", ""))
    assert error_of(ws.replace("block_m: 80", "block_m: 72")) == (
        "kernels.yaml:6: kernels[0].tiles[128]: block_m must be a multiple of 16 from 64 to 128 with dq_transposed "
        "(the N of the S^T and dQ^T wgmmas, whole k steps of the dV and dK GEMMs), got 72")
    assert error_of(ws.replace("128: {block_m: 80", "64: {block_m: 80")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: dq_transposed gives each of the two consumers 64 head dims of dQ^T "
        "(one wgmma M): head dim 128, got 64")


def test_warp_specialized_backward_head_dims():
    # 64, 96 and 128 (dK and dV of 64 keys in registers); at 96 only block_m 64 fits the register
    # budget, and its dQ split gives each consumer 48 columns (whole 16-column atoms).
    ws = _bwd_catalog("      96: {block_m: 64, block_n: 128, warp_specialized: 1, stages: 2}\n")
    ws = ws.replace("arch: sm80", "arch: sm90")
    spec = parse_catalog(ws).kernels[0]
    assert spec.key.hdim == 96
    # Q and dO rings (2 stages), K, V, two dS buffers, the dQ staging tile (fp32), row statistics.
    assert spec.smem_bytes >= (4 * 64 * 96 + 2 * 128 * 96 + 2 * 128 * 64) * 2 + 64 * 96 * 4
    assert "about 256 registers" in error_of(ws.replace("block_m: 64", "block_m: 128"))
    assert error_of(ws.replace("96: {", "192: {")) == (
        "kernels.yaml:6: kernels[0].tiles[192]: the warp-specialized sm90 backward keeps dK and dV of its 64 keys "
        "per warpgroup in registers, which fits head dim 64, 96 or 128, got 192 (use warp_specialized: 0)")


def test_sm90_forward_tile_checks():
    sm90 = GOOD.replace("arch: sm80", "arch: sm90").replace("flash_fwd_*", "*")
    sm90 = sm90.replace("{block_m: 128, block_n: 128, warps: 4}", "{block_m: 128, block_n: 128}")
    sm90 = sm90.replace("{block_m: 128, block_n: 64, warps: 4}", "{block_m: 128, block_n: 64}")
    # Q, two stages of K and V, 1 KB of pipeline barriers.
    assert [k.smem_bytes for k in parse_catalog(sm90).kernels[:2]] == [(128 + 4 * 128) * 64 * 2 + 1024] * 2
    stages = parse_catalog(sm90.replace("64: {block_m: 128, block_n: 128}", "64: {block_m: 128, block_n: 128, stages: 3}"))
    assert stages.kernels[0].smem_bytes == (128 + 6 * 128) * 64 * 2 + 1024
    own_o = parse_catalog(sm90.replace("64: {block_m: 128, block_n: 128}", "64: {block_m: 128, block_n: 128, o_buffer: 1}"))
    assert own_o.kernels[0].smem_bytes == (2 * 128 + 4 * 128) * 64 * 2 + 1024  # O beside Q
    assert error_of(sm90.replace("64: {block_m: 128, block_n: 128}", "64: {block_m: 96, block_n: 128}")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: block_m must be 64, 128 or 192 (1 to 3 consumer warpgroups of "
        "64 rows), got 96")
    assert error_of(sm90.replace("64: {block_m: 128, block_n: 128}", "64: {block_m: 128, block_n: 72}")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: block_n must be a multiple of 16 from 16 to 256 (the S wgmma's N, "
        "the P V wgmma's K), got 72")
    assert error_of(sm90.replace("64: {block_m: 128, block_n: 128}", "80: {block_m: 128, block_n: 128}")) == (
        "kernels.yaml:6: kernels[0].tiles[80]: the sm90 forward kernel needs head dim to be a multiple of 32 "
        "(its smem atom is 64 or 32 columns), got 80")
    assert error_of(sm90.replace("64: {block_m: 128, block_n: 128}", "64: {block_m: 64, block_n: 128, pingpong: 1}")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: pingpong needs block_m of 128 or 192 (two or more consumer warpgroups)")
    # The register estimate: O 128 + S 128 + P 64 + 32 = 352 > 240 at head dim 256 with 256 keys.
    assert "over the 240 that 2 consumer warpgroups get" in error_of(
        sm90.replace("64: {block_m: 128, block_n: 128}", "256: {block_m: 128, block_n: 256, stages: 1}"))


def test_sm90_forward_causal_block_m_renders_a_causal_plan():
    sm90 = GOOD.replace("arch: sm80", "arch: sm90").replace("flash_fwd_*", "*")
    sm90 = sm90.replace("{block_m: 128, block_n: 128, warps: 4}", "{block_m: 192, block_n: 128, pingpong: 1}")
    sm90 = sm90.replace("      128: {block_m: 128, block_n: 64, warps: 4}\n", "")
    plain = parse_catalog(sm90).kernels[0]
    assert "_causal_tile" not in render_kernel(plain)
    spec = parse_catalog(sm90.replace("pingpong: 1}", "pingpong: 1, causal_block_m: 128}")).kernels[0]
    assert spec.smem_bytes == plain.smem_bytes  # the larger plan's
    text = render_kernel(spec)
    assert f"struct {spec.name}_causal_tile {{" in text
    causal = text.split("_causal_tile {")[1].split("};")[0]
    assert "kBlockM = 128;" in causal and "kCausalBlockM = 0;" in causal and "kPingpong = 1;" in causal
    assert f"kSmemBytes = {(128 + 4 * 128) * 64 * 2 + 1024};" in causal
    assert f"params.causal ? sm90::launch_fwd<{spec.name}_causal_config, sm90::FwdCalls::kCausal>" in text
    # One consumer warpgroup: no ping-pong partner.
    one = parse_catalog(sm90.replace("pingpong: 1}", "pingpong: 1, causal_block_m: 64}")).kernels[0]
    assert "kBlockM = 64;" in render_kernel(one).split("_causal_tile {")[1] and one.tile.causal_plan().pingpong == 0
    assert error_of(sm90.replace("pingpong: 1}", "pingpong: 1, causal_block_m: 192}")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: causal_block_m must be 64 or 128 and below block_m (192), got 192")
    # Only short causal calls on the smaller plan: the larger one then compiles both kinds of call.
    short = parse_catalog(sm90.replace("pingpong: 1}", "pingpong: 1, causal_block_m: 128, causal_block_m_seqlen: 2048}"))
    text = render_kernel(short.kernels[0])
    assert "if (params.causal && params.seqlen_q <= 2048) {" in text
    assert f"return sm90::launch_fwd<{spec.name}_config>(params, stream);" in text
    assert "kCausalBlockMSeqlen = 0;" in text.split("_causal_tile {")[1]
    assert error_of(sm90.replace("pingpong: 1}", "pingpong: 1, causal_block_m_seqlen: 2048}")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: causal_block_m_seqlen picks when causal calls run causal_block_m: "
        "set causal_block_m")


def test_sm90_forward_o_in_v_needs_room_in_v_and_excludes_o_buffer():
    sm90 = GOOD.replace("arch: sm80", "arch: sm90").replace("flash_fwd_*", "*")
    sm90 = sm90.replace("{block_m: 128, block_n: 128, warps: 4}", "{block_m: 128, block_n: 64, persistent: 1}")
    sm90 = sm90.replace("      128: {block_m: 128, block_n: 64, warps: 4}\n", "")
    plain = parse_catalog(sm90).kernels[0]
    o_in_v = parse_catalog(sm90.replace("persistent: 1}", "persistent: 1, o_in_v: 1}")).kernels[0]
    assert o_in_v.smem_bytes == plain.smem_bytes and "kOInV = 1;" in render_kernel(o_in_v)
    assert error_of(sm90.replace("persistent: 1}", "persistent: 1, o_in_v: 1, o_buffer: 1}")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: o_in_v and o_buffer both give O a home: pick one")
    assert error_of(sm90.replace("persistent: 1}", "persistent: 1, o_in_v: 1, stages: 1}")) == (
        "kernels.yaml:6: kernels[0].tiles[64]: o_in_v puts O's 128 rows in V's ring of 1 x 64 rows: they do not fit")


def test_backward_family_has_its_own_tile_fields_and_checks():
    bwd = GOOD.replace("direction: fwd", "direction: bwd").replace("flash_fwd_*", "*")
    assert error_of(bwd) == ("kernels.yaml:6: kernels[0].tiles[64]: missing key 'atom_m_sdp'")
    tiles = ("      64: {block_m: 128, block_n: 128, warps: 8, atom_m_sdp: 2, atom_n_dkv: 4, atom_m_dq: 4}\n"
             "      128: {block_m: 64, block_n: 128, warps: 8, atom_m_sdp: 2, atom_n_dkv: 3, atom_m_dq: 2}\n")
    text = bwd.split("    tiles:\n")[0] + "    tiles:\n" + tiles + "presets:" + bwd.split("presets:")[1]
    assert error_of(text) == "kernels.yaml:7: kernels[0].tiles[128]: atom_n_dkv must divide warps (8), got 3"
    ok = parse_catalog(text.replace("atom_n_dkv: 3", "atom_n_dkv: 4"))
    assert ok.kernels[0].smem_bytes == (2 * 128 * 64 + 2 * 128 * 64 + 2 * 128 * 128) * 2


def test_tile_over_shared_memory_limit():
    text = GOOD.replace("      128: {block_m: 128, block_n: 64, warps: 4}",
                        "      256: {block_m: 128, block_n: 128, warps: 8}")
    assert error_of(text) == ("kernels.yaml:7: kernels[0].tiles[256]: tile needs 196608 bytes of shared memory, "
                              "over sm80's limit of 166912")


def test_bad_tile_shape():
    assert error_of(GOOD.replace("128: {block_m: 128, block_n: 64, warps: 4}",
                                 "128: {block_m: 96, block_n: 64, warps: 4}")) == (
        "kernels.yaml:7: kernels[0].tiles[128]: block_m must be a multiple of 16 * warps = 64, got 96")


def test_preset_naming_a_missing_config():
    assert error_of(GOOD.replace('default: ["flash_fwd_*"]', 'default: ["flash_bwd_*"]')) == (
        "kernels.yaml:9: presets.default: 'flash_bwd_*' names no kernel in the catalog")


def test_required_presets():
    assert error_of(GOOD.replace('  all: ["*"]\n', "")) == "kernels.yaml:9: presets: missing preset 'all'"


def test_kernel_defined_twice():
    twice = GOOD.replace("presets:", GOOD.split("presets:")[0].replace("kernels:\n", "") + "presets:")
    assert "flash_fwd_hdim64_fp16_sm80 is defined twice" in error_of(twice)


def test_not_yaml():
    assert error_of("kernels: [\n").startswith("kernels.yaml:2: not valid YAML")


def _bwd_catalog(tile_line):
    bwd = GOOD.replace("direction: fwd", "direction: bwd").replace("flash_fwd_*", "*")
    return bwd.split("    tiles:\n")[0] + "    tiles:\n" + tile_line + "presets:" + bwd.split("presets:")[1]


def test_q_buffers_defaults_to_one_and_is_checked():
    text = _bwd_catalog("      128: {block_m: 64, block_n: 128, warps: 8, atom_m_sdp: 2, atom_n_dkv: 4, atom_m_dq: 2}\n")
    one = parse_catalog(text).kernels[0]
    assert one.tile.q_buffers == 1
    two = parse_catalog(text.replace("atom_m_dq: 2}", "atom_m_dq: 2, q_buffers: 2}")).kernels[0]
    assert two.smem_bytes == one.smem_bytes + 64 * 128 * 2   # one more Q tile
    assert error_of(text.replace("atom_m_dq: 2}", "atom_m_dq: 2, q_buffers: 3}")) == (
        "kernels.yaml:6: kernels[0].tiles[128]: q_buffers must be 1 or 2, got 3")


def test_do_buffers_add_a_tile_and_fall_back_with_q_buffers():
    tile = "      256: {block_m: 64, block_n: 64, warps: 8, atom_m_sdp: 4, atom_n_dkv: 2, atom_m_dq: 2, q_buffers: 2}\n"
    one = parse_catalog(_bwd_catalog(tile)).kernels[0]
    two = parse_catalog(_bwd_catalog(tile.replace("q_buffers: 2}", "q_buffers: 2, do_buffers: 2}"))).kernels[0]
    assert one.tile.do_buffers == 1 and two.smem_bytes == one.smem_bytes + 64 * 256 * 2  # 208 KB, H100 only
    assert two.tile.fallback_smem_bytes(256, 2) == 147456  # one Q and one dO buffer: fits an A100
    assert error_of(_bwd_catalog(tile.replace("q_buffers: 2}", "q_buffers: 2, do_buffers: 3}"))) == (
        "kernels.yaml:6: kernels[0].tiles[256]: do_buffers must be 1 or 2, got 3")


def test_dq_before_dk_defaults_to_zero_and_is_checked():
    text = _bwd_catalog("      128: {block_m: 64, block_n: 128, warps: 8, atom_m_sdp: 2, atom_n_dkv: 4, atom_m_dq: 2}\n")
    assert parse_catalog(text).kernels[0].tile.dq_before_dk == 0
    assert parse_catalog(text.replace("atom_m_dq: 2}", "atom_m_dq: 2, dq_before_dk: 1}")).kernels[0].tile.dq_before_dk == 1
    assert error_of(text.replace("atom_m_dq: 2}", "atom_m_dq: 2, dq_before_dk: 2}")) == (
        "kernels.yaml:6: kernels[0].tiles[128]: dq_before_dk must be 0 or 1, got 2")


def test_a_plan_over_the_a100_limit_is_accepted_only_with_a_fallback_that_fits():
    # hdim 256, 64 x 64: 176 KB with two Q buffers (H100 only), 144 KB with one (the A100 fallback).
    tile = "      256: {block_m: 64, block_n: 64, warps: 8, atom_m_sdp: 4, atom_n_dkv: 2, atom_m_dq: 2, q_buffers: 2}\n"
    assert parse_catalog(_bwd_catalog(tile)).kernels[0].smem_bytes == 180224
    # 128 x 64: 224 KB even with one Q buffer, so no A100 could run it.
    big = tile.replace("block_m: 64", "block_m: 128").replace("atom_m_sdp: 4", "atom_m_sdp: 2")
    assert error_of(_bwd_catalog(big)) == ("kernels.yaml:6: kernels[0].tiles[256]: tile needs 229376 bytes of "
                                           "shared memory, over sm80's limit of 166912")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "bench" / "tuning").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_tuning_catalogs_stay_valid(path):
    # A/B experiments build from these (build.py --catalog); a kernel change must not strand them.
    assert load_catalog(path).kernels


def with_features(line):
    return GOOD.replace("    tiles:\n", f"    features: {line}\n    tiles:\n", 1)


def test_features_list_the_variants_a_family_is_built_with(tmp_path):
    path = tmp_path / "variants.yaml"
    path.write_text(with_features("[[], [softcap], [window, softcap]]"))
    catalog = load_catalog(path)
    assert [k.name for k in catalog.kernels if k.key.hdim == 64 and k.key.dtype == "bf16"] == [
        "flash_fwd_hdim64_bf16_sm80", "flash_fwd_hdim64_bf16_sm80_softcap", "flash_fwd_hdim64_bf16_sm80_softcap_window"]
    assert len(catalog.kernels) == 12
    by_name = catalog.by_name()
    variant = by_name["flash_fwd_hdim128_fp16_sm80_softcap_window"]
    assert variant.features == frozenset({"softcap", "window"})
    assert by_name["flash_fwd_hdim128_fp16_sm80"].features == frozenset()
    # A variant takes its family's tile plan for the head dim.
    assert variant.tile == by_name["flash_fwd_hdim128_fp16_sm80"].tile
    assert variant.smem_bytes == by_name["flash_fwd_hdim128_fp16_sm80"].smem_bytes


def test_a_family_without_plain_kernels():
    assert {k.key.features for k in parse_catalog(with_features("[[softcap]]")).kernels} == {("softcap",)}


def test_every_family_accepts_varlen_but_the_sm90_backwards_first_design():
    # The sm80 families, the sm90 forward and the sm90 warp-specialized backwards implement varlen
    # (gen/families.py); the sm90 backward's warp_specialized: 0 design does not.
    catalog = parse_catalog(with_features("[[], [varlen], [softcap, varlen]]"))
    names = {k.name for k in catalog.kernels}
    assert {"flash_fwd_hdim64_bf16_sm80_varlen", "flash_fwd_hdim128_fp16_sm80_softcap_varlen"} <= names
    assert frozenset({"varlen"}) in {k.features for k in catalog.kernels}
    sm90 = with_features("[[], [softcap, varlen]]").replace("arch: sm80", "arch: sm90", 1)
    sm90 = sm90.replace("{block_m: 128, block_n: 128, warps: 4}", "{block_m: 128, block_n: 128}").replace("{block_m: 128, block_n: 64, warps: 4}", "{block_m: 128, block_n: 128}")
    sm90_names = {k.name for k in parse_catalog(sm90).kernels}
    assert {"flash_fwd_hdim64_bf16_sm90", "flash_fwd_hdim128_bf16_sm90_softcap_varlen"} <= sm90_names
    sm90_bwd = sm90.replace("direction: fwd", "direction: bwd", 1).replace('["flash_fwd_*"]', '["*"]')
    ws = sm90_bwd.replace("64: {block_m: 128, block_n: 128}", "64: {block_m: 128, block_n: 128, warp_specialized: 1}").replace(
        "128: {block_m: 128, block_n: 128}", "256: {block_m: 64, block_n: 80, warp_specialized: 1, head_dim_split: 1}")
    assert {"flash_bwd_hdim64_bf16_sm90_softcap_varlen", "flash_bwd_hdim256_fp16_sm90_softcap_varlen",
            "flash_bwd_hdim256_bf16_sm90"} <= {k.name for k in parse_catalog(ws).kernels}
    v1 = sm90_bwd.replace("{block_m: 128, block_n: 128}", "{block_m: 64, block_n: 64}")
    assert error_of(v1) == (
        "kernels.yaml:7: kernels[0].tiles[64]: features[1] [softcap, varlen]: the warp_specialized: 0 sm90 backward "
        "(sm90/bwd_kernel.cuh) does not implement varlen: use warp_specialized: 1 (with head_dim_split: 1 at head "
        "dim 256), or build this head dim's varlen backward on sm80")
    # Without varlen the first design takes the other features.
    assert parse_catalog(v1.replace("[softcap, varlen]", "[softcap]")).kernels


def test_varlen_kernels_get_the_constant_in_their_tile_struct():
    catalog = parse_catalog(with_features("[[varlen]]"))
    by_name = {k.name: k for k in catalog.kernels}
    assert "static constexpr int kVarlen = 1;" in render_kernel(by_name["flash_fwd_hdim128_fp16_sm80_varlen"])


def test_feature_constants_reach_the_tile_struct_only_for_built_features(tmp_path):
    catalog = parse_catalog(with_features("[[], [softcap, window]]"))
    by_name = {k.name: k for k in catalog.kernels}
    variant = render_kernel(by_name["flash_fwd_hdim128_fp16_sm80_softcap_window"])
    plain = render_kernel(by_name["flash_fwd_hdim128_fp16_sm80"])
    assert "static constexpr int kSoftcap = 1;" in variant and "static constexpr int kWindow = 1;" in variant
    assert "kVarlen" not in variant
    assert "kSoftcap" not in plain and "kWindow" not in plain


def test_without_features_only_plain_kernels():
    assert all(k.features == frozenset() for k in parse_catalog(GOOD).kernels)


def test_the_repository_catalogs_variants_are_the_gemma_ones_with_their_plain_kernels_plans():
    # kernels.yaml builds one feature variant by default: softcap + window (Gemma 2/3) at head
    # dim 256 on sm90, both directions and dtypes, each with its plain kernel's plan.
    kernels = load_catalog().kernels
    by_name = {k.name: k for k in kernels}
    variants = [k for k in kernels if k.features]
    assert sorted(k.name for k in variants) == sorted(
        f"flash_{direction}_hdim256_{dtype}_sm90_softcap_window" for direction in ("fwd", "bwd")
        for dtype in ("fp16", "bf16"))
    for variant in variants:
        assert variant.features == {"softcap", "window"}
        plain = by_name[variant.name.removesuffix("_softcap_window")]
        assert not plain.features
        assert (variant.tile, variant.smem_bytes) == (plain.tile, plain.smem_bytes)


@pytest.mark.parametrize("line,message", [
    ("[[], [softcapp]]", "kernels.yaml:5: kernels[0].features[1]: unknown value 'softcapp' (allowed: softcap, window, varlen)"),
    ("[[softcap, softcap]]", "kernels.yaml:5: kernels[0].features[0]: a feature is listed twice"),
    ("[[softcap, window], [window, softcap]]", "kernels.yaml:5: kernels[0].features[1]: the variant [softcap, window] is listed twice"),
    ("[softcap]", "kernels.yaml:5: kernels[0].features: expected a non-empty list of feature lists, e.g. [[], [softcap]] ([] is the plain kernel)"),
    ("[]", "kernels.yaml:5: kernels[0].features: expected a non-empty list of feature lists, e.g. [[], [softcap]] ([] is the plain kernel)"),
])
def test_bad_features(line, message):
    assert error_of(with_features(line)) == message


def test_bad_features_in_a_catalog_file_name_the_file(tmp_path):
    path = tmp_path / "tuning.yaml"
    path.write_text(with_features("[[tanh]]"))
    with pytest.raises(CatalogError, match=r"^tuning\.yaml:5: kernels\[0\]\.features\[0\]: unknown value 'tanh'"):
        load_catalog(path)


def test_a_template_gets_the_kernels_features(tmp_path):
    from gen.render import environment, render_kernel
    (tmp_path / "flash_fwd_sm80.cu.j2").write_text(
        "{{ name }}{% for feature, on in features.items() %} {{ feature | cpp_constant }}={{ on }}{% endfor %}")
    catalog = parse_catalog(with_features("[[], [window, softcap]]"))
    rendered = [render_kernel(k, environment(tmp_path)) for k in catalog.kernels[:2]]
    assert rendered == ["flash_fwd_hdim64_bf16_sm80 kSoftcap=0 kWindow=0 kVarlen=0",
                        "flash_fwd_hdim64_bf16_sm80_softcap_window kSoftcap=1 kWindow=1 kVarlen=0"]


def _tile_struct(text, name):
    return text.split(f"struct {name} {{")[1].split("};")[0]


@pytest.mark.parametrize("name, consumers, producer_registers, consumer_registers", [
    ("flash_fwd_hdim64_bf16_sm90", 3, 32, 160),        # block_m 192
    ("flash_fwd_hdim256_bf16_sm90", 2, 24, 240),       # block_m 128
    ("flash_bwd_hdim128_bf16_sm90", 2, 24, 240),       # two consumers of 64 keys
    ("flash_bwd_hdim192_bf16_sm90", 3, 32, 160),       # head-dim split, 64 dims each
    ("flash_bwd_hdim256_bf16_sm90", 2, 24, 240),       # head-dim split, 128 dims each
])
def test_sm90_tile_structs_carry_the_warpgroup_split(name, consumers, producer_registers, consumer_registers):
    # The kernels read their consumer count and setmaxnreg split from the tile struct (gen is the
    # one place that computes them); every warpgroup's registers fit the 64K register file.
    spec = load_catalog(Path(__file__).resolve().parents[2] / "kernels.yaml").by_name()[name]
    struct = _tile_struct(render_kernel(spec), f"{name}_tile")
    assert f"kConsumers = {consumers};" in struct
    assert f"kProducerRegisters = {producer_registers};" in struct
    assert f"kConsumerRegisters = {consumer_registers};" in struct
    assert 128 * (producer_registers + consumers * consumer_registers) <= 65536


def test_sm90_causal_plan_and_sm80_structs_carry_their_own_split():
    spec = load_catalog(Path(__file__).resolve().parents[2] / "kernels.yaml").by_name()["flash_fwd_hdim64_bf16_sm90"]
    causal = _tile_struct(render_kernel(spec), f"{spec.name}_causal_tile")  # block_m 128: two consumers
    assert "kConsumers = 2;" in causal and "kConsumerRegisters = 240;" in causal
    sm80 = load_catalog(Path(__file__).resolve().parents[2] / "kernels.yaml").by_name()["flash_bwd_hdim256_bf16_sm80"]
    assert "kConsumers" not in render_kernel(sm80)  # no warp specialization, nothing derived
