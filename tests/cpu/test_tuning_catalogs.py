"""The tuning catalogs in bench/tuning/ parse, and the candidate catalog the GPU sessions build
(hopper_candidates.yaml) keeps the plans of the catalogs it combines: a plan tuned in
kernels.yaml or bwd_sm90_ws.yaml must not be left behind in a stale copy."""
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
    return {(k.key.direction, k.key.hdim, k.key.dtype, k.key.arch): k.tile for k in load_catalog(catalog).kernels}


def test_hopper_candidates_keep_the_plans_they_combine():
    candidates = load_catalog(TUNING / "hopper_candidates.yaml").kernels
    default, warp_specialized = _plans(paths.CATALOG), _plans(TUNING / "bwd_sm90_ws.yaml")
    checked = 0
    for kernel in candidates:
        where = (kernel.key.direction, kernel.key.hdim, kernel.key.dtype, kernel.key.arch)
        source = warp_specialized if (kernel.key.direction, kernel.key.arch) == ("bwd", "sm90") else default
        assert where in source, f"{kernel.name}: no plan to compare with"
        assert kernel.tile == source[where], f"{kernel.name}: {kernel.tile} differs from {source[where]}"
        checked += 1
    assert checked == len(candidates) == 38
