"""bench/build_bench.py's feature-variant mode: the catalog it derives and the table it writes
(no compiler needed)."""
import json
from pathlib import Path

from bench import build_bench
from gen import paths
from gen.spec import load_catalog

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_every_family_gets_all_its_variants_with_the_same_plans(tmp_path):
    pair = ("softcap", "window")
    assert build_bench.variant_sets("fwd", "sm90", pair) == [[], ["softcap"], ["window"], ["softcap", "window"]]
    assert build_bench.variant_sets("fwd", "sm80", ("window",)) == [[], ["window"]]
    catalog = load_catalog(paths.CATALOG)
    # The plain kernels: kernels.yaml's feature variants (the Gemma softcap + window ones) are
    # entries of their own, which with_all_variants drops for the plain entry's full set.
    plain = [spec for spec in catalog.kernels if not spec.features]
    assert len(plain) < len(catalog.kernels)
    path = tmp_path / "variants.yaml"
    path.write_text(build_bench.with_all_variants(paths.CATALOG.read_text(), pair))
    variants = load_catalog(path)
    assert len(variants.kernels) == 4 * len(plain)
    by_name = variants.by_name()
    for spec in plain:
        for suffix in ("", "_softcap", "_window", "_softcap_window"):
            variant = by_name[spec.name + suffix]
            assert build_bench.plain_name(variant) == spec.name
            assert (variant.tile, variant.smem_bytes) == (spec.tile, spec.smem_bytes)
    # Nothing kernels.yaml builds is lost by dropping its variant entries: same name, same plan.
    for spec in catalog.kernels:
        assert (by_name[spec.name].tile, by_name[spec.name].smem_bytes) == (spec.tile, spec.smem_bytes)
    assert build_bench.variant_label(by_name["flash_fwd_hdim128_bf16_sm90_softcap_window"]) == "softcap+window"
    assert build_bench.variant_label(by_name["flash_fwd_hdim128_bf16_sm90"]) == "plain"


def _row(variant, seconds, gb, spills=0, catalog="kernels.yaml"):
    return {"kernel": "flash_fwd_hdim128_bf16_sm90", "catalog": catalog, "variant": variant, "seconds": seconds,
            "peak_process_gb": gb, "targets": {"sm_90a": {"registers": 168, "spill_stores": spills,
                                                          "spill_loads": spills, "stack": 0}}}


def test_the_table_gives_each_variant_its_ratio_to_its_own_plain_kernel():
    meta = {"cores": 2, "memory_gb": 23.5, "date": "2026-12-03", "commit": "abc1234", "command": "x"}
    rows = [_row("plain", 40.0, 2.0), _row("softcap", 50.0, 2.5, spills=8),
            _row("plain", 80.0, 4.0, catalog="other.yaml"), _row("window", 100.0, 4.0, catalog="other.yaml")]
    table = build_bench.variants_markdown(meta, rows)
    assert "| softcap | 50.0 | 1.25 | 2.5 | 1.25 | sm_90a 168 | sm_90a 8/8 **SPILLS** |" in table
    assert "| other.yaml | window | 100.0 | 1.25 | 4.0 | 1.00 |" in table
    assert "1.25-1.25 (mean 1.25, 2 variants)" in table


def test_committed_variant_results_render():
    for path in RESULTS.glob("*-build-variants-*.json"):
        data = json.loads(path.read_text())
        table = build_bench.variants_markdown(data["meta"], data["rows"])
        assert table == path.with_suffix(".md").read_text()


def test_notes_in_the_meta_follow_the_table():
    meta = {"cores": 2, "memory_gb": 23.5, "date": "2026-12-03", "command": "x", "notes": ["one run each"]}
    assert build_bench.variants_markdown(meta, [_row("plain", 40.0, 2.0)]).endswith("Notes:\n\n- one run each\n")
