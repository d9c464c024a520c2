"""bench.train_step's model and report on the CPU (float32, tiny widths): the step runs and fills
every gradient, SDPA's GQA attention inside it matches a direct causal softmax, and an
implementation that cannot run the step gets its error in its row instead of ending the run."""
import math

import torch

from bench import train_step

TINY = train_step.Shape(hidden=64, heads=4, kv_heads=2, intermediate=96, layers=2)


def causal_gqa_reference(q, k, v):
    groups = q.shape[2] // k.shape[2]
    k, v = (t.repeat_interleave(groups, dim=2) for t in (k, v))
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    seqlen = q.shape[1]
    scores = scores.masked_fill(torch.ones(seqlen, seqlen, dtype=torch.bool).triu(1), float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)


def test_sdpa_attention_is_causal_gqa():
    q = torch.randn(2, 7, 4, 16)
    k, v = torch.randn(2, 7, 2, 16), torch.randn(2, 7, 2, 16)
    torch.testing.assert_close(train_step.ATTENTION["sdpa"](q, k, v), causal_gqa_reference(q, k, v))


def test_steps_run_fill_every_gradient_and_record_what_cannot_run():
    steps, errors = train_step.prepare(["none", "sdpa", "flashgen"], TINY, batch=1, seqlen=9, device="cpu",
                                       dtype=torch.float32)
    assert set(steps) == {"none", "sdpa"}
    assert "flashgen supports" in errors["flashgen"]   # flashgen's own message: float32 on the CPU
    loss = steps["sdpa"]()
    assert torch.isfinite(loss)
    assert len(steps["sdpa"].params) == 9 * TINY.layers
    steps["none"]()
    assert all(p.grad is not None for p in steps["none"].params)   # the baseline keeps k's and v's backward
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in steps["sdpa"].params)


def test_report_rows():
    meta = {"gpu": "GPU", "date": "2026-12-03", "torch": "x", "command": "python -m bench.train_step",
            "layers": 4, "batch": 1, "seqlen": 8192, "hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128}
    rows = [{"impl": "none", "ms": 80.0, "attention_ms": None, "spread": 0.01, "host_ms": 1.0, "error": None},
            {"impl": "flashgen", "ms": 100.0, "attention_ms": 20.0, "spread": 0.02, "host_ms": 1.5, "error": None},
            {"impl": "sdpa", "ms": 95.0, "attention_ms": 15.0, "spread": 0.02, "host_ms": 1.2, "error": None},
            {"impl": "fa4", "ms": None, "attention_ms": None, "spread": None, "host_ms": None,
             "error": "ImportError: no flash_attn"}]
    table = train_step.markdown(meta, rows)
    assert "| flashgen | 100.00 | 20.00 | 1.053 | 2.0% | 1.50 |" in table
    assert "| fa4 | n/a |" in table and "- fa4: ImportError" in table


def test_step_flops_count_attention_at_half_for_causal():
    flops = train_step.step_flops(train_step.Shape(), batch=1, seqlen=8192)
    assert flops["attention"] == 3.5 * 4 * 8192 * 8192 * 32 * 128 / 2 * 4
