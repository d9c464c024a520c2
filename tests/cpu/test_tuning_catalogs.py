"""The tuning catalogs in bench/tuning/ parse, and the candidate catalog the GPU sessions build
(hopper_candidates.yaml) keeps kernels.yaml's plans (the warp-specialized sm90 backward's
included, now that kernels.yaml lists it): a plan tuned in kernels.yaml must not be left behind
in a stale copy."""
from __future__ import annotations

from pathlib import Path

import pytest

from gen import paths
from gen.spec import load_catalog

TUNING = paths.REPO_ROOT / "bench" / "tuning"


@pytest.mark.parametrize("catalog", sorted(TUNING.glob("*.yaml")), ids=lambda p: p.name)
def test_every_tuning_catalog_parses(catalog: Path):
    assert load_catalog(catalog).kernels


def _plans(catalog: Path) -> dict:
    """The plain kernels' plans by (direction, hdim, dtype, arch): a variant takes its plain kernel's."""
    return {(k.key.direction, k.key.hdim, k.key.dtype, k.key.arch): k.tile
            for k in load_catalog(catalog).kernels if not k.features}


def test_hopper_candidates_keep_the_plans_they_combine():
    candidates = load_catalog(TUNING / "hopper_candidates.yaml").kernels
    default = _plans(paths.CATALOG)
    checked = 0
    for kernel in candidates:
        where = (kernel.key.direction, kernel.key.hdim, kernel.key.dtype, kernel.key.arch)
        assert where in default, f"{kernel.name}: no plan to compare with"
        assert kernel.tile == default[where], f"{kernel.name}: {kernel.tile} differs from {default[where]}"
        checked += 1
    assert checked == len(candidates) == 40
    # The candidates build the sm90 backward at every head dim kernels.yaml builds it (64, 96,
    # 128, 192 and 256 since session 15).
    plain_sm90_backward = [k.key.hdim for k in candidates
                           if (k.key.direction, k.key.arch) == ("bwd", "sm90") and not k.features]
    default_sm90_backward = {hdim for (direction, hdim, _, arch) in default if (direction, arch) == ("bwd", "sm90")}
    assert sorted(plain_sm90_backward) == sorted(default_sm90_backward) == [64, 96, 128, 192, 256]


@pytest.mark.parametrize("catalog,kernels", [("verify_features.yaml", 38), ("verify_sm80_features.yaml", 18),
                                             ("verify_sm90_features.yaml", 20), ("verify_features_96_192.yaml", 18),
                                             ("verify_bwd_sm90_step.yaml", 20),
                                             ("features_bench.yaml", 10), ("features.yaml", 24), ("varlen.yaml", 24)])
def test_verification_and_feature_benchmark_catalogs_build_kernels_yaml_plans(catalog, kernels):
    # verify_features.yaml (every feature on both families, fp16 of the sm90 plan) verifies what
    # users build, features_bench.yaml times it: their plans must be kernels.yaml's.
    default = _plans(paths.CATALOG)
    built = load_catalog(TUNING / catalog).kernels
    for kernel in built:
        where = (kernel.key.direction, kernel.key.hdim, kernel.key.dtype, kernel.key.arch)
        assert kernel.tile == default[where], f"{kernel.name}: {kernel.tile} differs from {default[where]}"
    assert len(built) == kernels


def test_gpu_suites_parametrize_every_head_dim_kernels_yaml_lists():
    """tests/gpu's CATALOG_HDIMS (the head dims the numerics and feature suites run) is
    kernels.yaml's set: a head dim added to the catalog must not go untested on the GPU."""
    import ast
    source = (paths.REPO_ROOT / "tests" / "gpu" / "test_forward.py").read_text()
    assignment = next(node for node in ast.parse(source).body if isinstance(node, ast.Assign)
                      and getattr(node.targets[0], "id", None) == "CATALOG_HDIMS")
    catalog_hdims = {k.key.hdim for k in load_catalog(paths.CATALOG).kernels}
    assert set(ast.literal_eval(assignment.value)) == catalog_hdims
