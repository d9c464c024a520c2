"""Benchmark reports render from result rows, the committed ones included (no GPU needed)."""
import json
from pathlib import Path

from bench import report

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_committed_results_render_and_name_the_kernels_they_timed():
    data = json.loads((RESULTS / "2026-11-25-NVIDIA_H100_80GB_HBM3-h100.json").read_text())
    table = report.markdown(data["meta"], data["rows"])
    assert "| bwd | 256 | bf16 | no | 2 x 8192 |" in table
    assert "flashgen kernels timed" not in table  # rows from before the kernel field
    rows = [dict(r, kernel="flash_bwd_hdim256_bf16_sm90") if r["impl"] == "flashgen" else r for r in data["rows"]]
    assert "flashgen kernels timed: `flash_bwd_hdim256_bf16_sm90`." in report.markdown(data["meta"], rows)
