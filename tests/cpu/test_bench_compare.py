"""python -m bench.compare: flashgen's TFLOPS per case across result files, ratios to the first."""
import json

from bench.compare import compare, main


def _row(tflops, causal=False, impl="flashgen", seqlen=8192):
    return {"direction": "bwd", "head_dim": 256, "causal": causal, "dtype": "bf16", "batch": 2, "seqlen": seqlen,
            "sweep": False, "impl": impl, "nheads": 8, "ms": 1.0, "tflops": tflops, "error": None}


def test_compare_gives_each_runs_ratio_to_the_base_and_ignores_peers():
    base = [_row(400.0), _row(300.0, causal=True), _row(999.0, impl="fa4")]
    variant = [_row(440.0), _row(250.0, impl="flashgen@sm80"), _row(600.0, impl="flashgen@sm90")]
    table = compare([("base", base), ("variant", variant)])
    lines = table.splitlines()
    assert lines[0] == "| case | base | variant |"
    assert "| bwd d256 bf16 full 2x8192 | 400 | 600 (1.50) |" in lines  # the best flashgen family
    assert "| bwd d256 bf16 causal 2x8192 | 300 | - |" in lines          # a case the variant lacks
    assert len(lines) == 4                                              # fa4's row is not a case of its own


def test_main_names_columns_by_tag(tmp_path, capsys):
    for tag, tflops in (("base", 400.0), ("ds_exchange", 474.0)):
        meta = {"date": "2026-12-03", "gpu": "NVIDIA H200"}
        (tmp_path / f"2026-12-03-NVIDIA_H200-{tag}.json").write_text(json.dumps({"meta": meta, "rows": [_row(tflops)]}))
    assert main([str(tmp_path / "2026-12-03-NVIDIA_H200-base.json"),
                 str(tmp_path / "2026-12-03-NVIDIA_H200-ds_exchange.json")]) == 0
    out = capsys.readouterr().out
    assert "| case | base | ds_exchange |" in out and "474 (1.19)" in out
    assert main([]) == 2
