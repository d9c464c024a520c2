"""python -m bench.train_step: one Llama-style training step (forward and backward of a stack of
decoder layers) with each attention implementation, timed side by side in one run.

    python -m bench.train_step                                  # 4 layers, 1 x 8192, Llama-3-8B widths
    python -m bench.train_step --impl flashgen,sdpa --layers 2 --seqlen 4096 --tag short

The brief's measurement (a Llama-style step at seqlen 8192 5-10% slower with flashgen than with
PyTorch SDPA) had no script in this repository; this is it. Each row is one implementation of
the causal GQA attention inside the same model (same weights, same input); `none` replaces
attention by its query (no attention work, gradients still flow), so `attention ms` = step -
none's step is what attention costs inside the step: the kernels plus the layout copies, the
GQA reductions and the host work each implementation brings. A layer: RMSNorm, q/k/v
projections, rotary embedding, attention, output projection, residual; RMSNorm, SwiGLU MLP,
residual. Weights and activations bf16; the loss is the mean square of the output.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.report import result_stem
from bench.run import RESULTS_DIR, error_text
from bench.timing import time_side_by_side

IMPL_NAMES = ("none", "flashgen", "sdpa", "sdpa_cudnn", "sdpa_flash", "fa4")


@dataclass(frozen=True)
class Shape:
    """Llama-3-8B's widths by default (32 query heads, 8 KV heads, head dim 128)."""
    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    intermediate: int = 14336
    layers: int = 4

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


# --- attention implementations: (q, k, v) as (batch, seqlen, heads, head_dim) -> like q -------

def _sdpa(backend: str | None):
    def attend(q, k, v):
        qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))   # SDPA's layout: (b, h, s, d)
        gqa = qt.shape[1] != kt.shape[1]
        if backend is None:
            out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=gqa)
        else:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            with sdpa_kernel(getattr(SDPBackend, backend)):
                out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=gqa)
        return out.transpose(1, 2)
    return attend


def _flashgen(q, k, v):
    import flashgen
    return flashgen.flash_attn_func(q, k, v, causal=True)


def _fa4(q, k, v):
    import flash_attn.cute as fa4
    out = fa4.flash_attn_func(q, k, v, causal=True)
    return out[0] if isinstance(out, tuple) else out


def _none(q, k, v):
    """No attention: the query passes through. k and v stay in the graph (times zero), so the
    step keeps their projections' backward, which every attention implementation needs too."""
    return q + 0.0 * (k.mean() + v.mean())


ATTENTION = {"none": _none, "flashgen": _flashgen, "sdpa": _sdpa(None), "sdpa_cudnn": _sdpa("CUDNN_ATTENTION"),
             "sdpa_flash": _sdpa("FLASH_ATTENTION"), "fa4": _fa4}


# --- the model ---------------------------------------------------------------------------------

def rms_norm(x, weight, eps=1e-5):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def rotary(x, cos, sin):
    """Rotate pairs (x1, x2) of the head dim's halves by the position's angles (Llama's rotary
    embedding, half-split layout). x: (b, s, h, d); cos, sin: (s, d / 2)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


def rotary_tables(seqlen, head_dim, device, theta=500000.0):
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seqlen, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def make_weights(shape: Shape, device, dtype, seed=0) -> list[dict]:
    gen = torch.Generator(device=device).manual_seed(seed)

    def w(*size):
        std = 1.0 / math.sqrt(size[-1])
        return (torch.randn(*size, generator=gen, device=device, dtype=torch.float32) * std).to(dtype).requires_grad_()
    kv = shape.kv_heads * shape.head_dim
    return [{"attn_norm": torch.ones(shape.hidden, device=device, dtype=dtype, requires_grad=True),
             "wq": w(shape.hidden, shape.hidden), "wk": w(kv, shape.hidden), "wv": w(kv, shape.hidden),
             "wo": w(shape.hidden, shape.hidden),
             "mlp_norm": torch.ones(shape.hidden, device=device, dtype=dtype, requires_grad=True),
             "w_gate": w(shape.intermediate, shape.hidden), "w_up": w(shape.intermediate, shape.hidden),
             "w_down": w(shape.hidden, shape.intermediate)} for _ in range(shape.layers)]


def forward(x, weights, shape: Shape, attend, rope):
    batch, seqlen, _ = x.shape
    for layer in weights:
        h = rms_norm(x, layer["attn_norm"])
        q = F.linear(h, layer["wq"]).view(batch, seqlen, shape.heads, shape.head_dim)
        k = F.linear(h, layer["wk"]).view(batch, seqlen, shape.kv_heads, shape.head_dim)
        v = F.linear(h, layer["wv"]).view(batch, seqlen, shape.kv_heads, shape.head_dim)
        q, k = rotary(q, *rope), rotary(k, *rope)
        attn = attend(q, k, v).reshape(batch, seqlen, shape.hidden)
        x = x + F.linear(attn, layer["wo"])
        h = rms_norm(x, layer["mlp_norm"])
        x = x + F.linear(F.silu(F.linear(h, layer["w_gate"])) * F.linear(h, layer["w_up"]), layer["w_down"])
    return x


def make_step(attend, x, weights, shape: Shape):
    """A zero-argument training step: forward, loss, backward (gradients dropped first)."""
    rope = rotary_tables(x.shape[1], shape.head_dim, x.device)
    params = [p for layer in weights for p in layer.values()]

    def step():
        for p in params:
            p.grad = None
        loss = forward(x, weights, shape, attend, rope).float().square().mean()
        loss.backward()
        return loss
    step.params = params
    return step


def step_flops(shape: Shape, batch: int, seqlen: int) -> dict:
    """Matmul FLOPs of one step (forward x 3 for forward + backward), attention by
    FlashAttention's convention (causal: half; backward 2.5x the forward)."""
    kv = shape.kv_heads * shape.head_dim
    linear = 2 * batch * seqlen * shape.hidden * (2 * shape.hidden + 2 * kv + 3 * shape.intermediate)
    attention = 4 * batch * seqlen * seqlen * shape.heads * shape.head_dim / 2
    return {"linear": 3 * linear * shape.layers, "attention": 3.5 * attention * shape.layers}


# --- the run -------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default="none,flashgen,sdpa,sdpa_cudnn,fa4",
                   type=lambda s: [x for x in s.split(",") if x], help=f"any of {', '.join(IMPL_NAMES)}")
    p.add_argument("--layers", type=int, default=Shape.layers)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seqlen", type=int, default=8192)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--tag", default="train-step")
    args = p.parse_args(argv)
    unknown = set(args.impl) - set(IMPL_NAMES)
    if unknown:
        p.error(f"unknown --impl {sorted(unknown)} (known: {', '.join(IMPL_NAMES)})")
    return args


def prepare(impls, shape: Shape, batch: int, seqlen: int, device="cuda", dtype=torch.bfloat16):
    """Each implementation's step on one set of weights and one input; errors by implementation."""
    weights = make_weights(shape, device, dtype)
    x = torch.randn(batch, seqlen, shape.hidden, device=device, dtype=dtype,
                    generator=torch.Generator(device=device).manual_seed(1))
    steps, errors = {}, {}
    for impl in impls:
        step = make_step(ATTENTION[impl], x, weights, shape)
        try:
            step()
            steps[impl] = step
        except Exception as exc:  # noqa: BLE001 - an implementation that cannot run the step: its row says why
            errors[impl] = error_text(exc)
    return steps, errors


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# Llama-style training step on {meta['gpu']} ({meta['date']}, torch {meta['torch']})", "",
             f"Command: `{meta['command']}`. {meta['layers']} layers, batch {meta['batch']} x seqlen "
             f"{meta['seqlen']}, hidden {meta['hidden']}, {meta['heads']} query / {meta['kv_heads']} KV heads of "
             f"{meta['head_dim']}, causal, bf16. `attention ms` = the step minus `none`'s (attention replaced by "
             "its query). Implementations timed side by side (bench/timing.py).", "",
             "| attention | step ms | attention ms | vs fastest step | spread | host ms |", "|---|---|---|---|---|---|"]
    timed = [r for r in rows if r["ms"]]
    fastest = min((r["ms"] for r in timed if r["impl"] != "none"), default=None)
    for r in rows:
        if not r["ms"]:
            lines.append(f"| {r['impl']} | n/a | | | | |")
            continue
        attn = f"{r['attention_ms']:.2f}" if r.get("attention_ms") is not None else ""
        ratio = f"{r['ms'] / fastest:.3f}" if fastest and r["impl"] != "none" else ""
        lines.append(f"| {r['impl']} | {r['ms']:.2f} | {attn} | {ratio} | {r['spread']:.1%} | {r['host_ms']:.2f} |")
    errors = [f"- {r['impl']}: {r['error']}" for r in rows if r["error"]]
    return "\n".join(lines + ([""] + ["Not measured:"] + errors if errors else []) + [""])


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("python -m bench.train_step needs a CUDA GPU", file=sys.stderr)
        return 2
    shape = Shape(layers=args.layers)
    steps, errors = prepare(args.impl, shape, args.batch, args.seqlen)
    timings = time_side_by_side(steps, warmup=2, rounds=args.rounds, round_ms=1.0)
    baseline = timings.get("none")
    rows = []
    for impl in args.impl:
        t = timings.get(impl)
        row = {"impl": impl, "ms": None, "attention_ms": None, "spread": None, "host_ms": None,
               "error": errors.get(impl) or (error_text(t) if isinstance(t, BaseException) else None)}
        if t is not None and not isinstance(t, BaseException):
            row.update(ms=t.ms, spread=t.spread, host_ms=t.host_ms)
            if impl != "none" and baseline is not None and not isinstance(baseline, BaseException):
                row["attention_ms"] = t.ms - baseline.ms
        rows.append(row)
    meta = {"gpu": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(), "torch": torch.__version__,
            "command": "python -m bench.train_step " + " ".join(argv if argv is not None else sys.argv[1:]),
            "layers": shape.layers, "batch": args.batch, "seqlen": args.seqlen, "hidden": shape.hidden,
            "heads": shape.heads, "kv_heads": shape.kv_heads, "head_dim": shape.head_dim,
            "flops": step_flops(shape, args.batch, args.seqlen)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(meta, args.tag)
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    table = markdown(meta, rows)
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    print(f"wrote {args.out / stem}.json, .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
