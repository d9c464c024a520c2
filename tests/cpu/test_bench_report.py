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


def test_forced_flashgen_families_are_flashgen_not_peers():
    meta = {"gpu": "GPU", "date": "2026-11-26", "torch": "x", "command": "python -m bench",
            "ceilings": {"matmul_bf16_tflops": 800.0, "copy_gb_per_s": 3000.0}}
    case = {"direction": "bwd", "head_dim": 256, "dtype": "bf16", "causal": False, "batch": 2, "seqlen": 8192,
            "sweep": False, "nheads": 8, "ms": 1.0, "error": None}
    rows = [dict(case, impl="flashgen@sm80", tflops=240.0, kernel="flash_bwd_hdim256_bf16_sm80"),
            dict(case, impl="flashgen@sm90", tflops=330.0, kernel="flash_bwd_hdim256_bf16_sm90"),
            dict(case, impl="sdpa_cudnn", tflops=300.0, kernel=None)]
    table = report.markdown(meta, rows)
    assert table.rstrip().splitlines()[-1].endswith("| 1.10 |")  # best flashgen family over the best peer
