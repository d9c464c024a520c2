"""python -m bench: time flashgen and its peers over a grid, write JSON, a table and a plot.

    python -m bench                       # the default grid
    python -m bench --quick               # a couple of minutes
    python -m bench --hdim 256 --causal false --direction fwd --impl flashgen,sdpa_flash
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench import report
from bench.impls import IMPLS, Unavailable
from bench.timing import attention_flops, ceilings, median_ms
from flashgen.dispatch import TORCH_DTYPES
from gen.axes import DIRECTIONS

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TOTAL_HIDDEN = 2048  # heads = 2048 / head_dim, as in the FlashAttention papers


@dataclass(frozen=True)
class Case:
    direction: str
    head_dim: int
    causal: bool
    dtype: str
    batch: int
    seqlen: int
    sweep: bool = False   # part of the seqlen sweep (the plot), not the main table

    @property
    def nheads(self) -> int:
        return TOTAL_HIDDEN // self.head_dim


def default_grid(quick: bool) -> list[Case]:
    shapes = [(2, 8192)] if quick else [(2, 8192), (8, 2048), (32, 512)]
    hdims = (128, 256) if quick else (64, 128, 256)
    cases = []
    for direction in DIRECTIONS:
        for head_dim in hdims:
            dtypes = ("bf16", "fp16") if head_dim == 256 and not quick else ("bf16",)
            for dtype in dtypes:
                for causal in (False, True):
                    for batch, seqlen in shapes:
                        cases.append(Case(direction, head_dim, causal, dtype, batch, seqlen))
    sweep = (1024, 4096, 16384) if quick else (512, 1024, 2048, 4096, 8192, 16384)
    for direction in DIRECTIONS:
        for seqlen in sweep:
            cases.append(Case(direction, 256, False, "bf16", max(1, 16384 // seqlen), seqlen, sweep=True))
    return cases


def _bool(text: str) -> bool:
    return {"true": True, "false": False, "1": True, "0": False}[text.lower()]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hdim", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--causal", type=lambda s: [_bool(x) for x in s.split(",")])
    p.add_argument("--direction", type=lambda s: s.split(","))
    p.add_argument("--dtype", type=lambda s: s.split(","))
    p.add_argument("--impl", type=lambda s: s.split(","), default=[i for i in IMPLS if "@" not in i],
                   help="comma-separated; flashgen@sm80, flashgen@sm90 force a kernel family "
                        f"(known: {', '.join(IMPLS)})")
    p.add_argument("--quick", action="store_true", help="a smaller grid that runs in a couple of minutes")
    p.add_argument("--no-sweep", action="store_true", help="skip the seqlen sweep")
    p.add_argument("--rounds", type=int, default=15, help="timed batches per row (median taken)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--tag", default="", help="suffix for the result file names")
    return p.parse_args(argv)


def select_cases(args) -> list[Case]:
    cases = default_grid(args.quick)
    keep = lambda c: ((args.hdim is None or c.head_dim in args.hdim)  # noqa: E731
                      and (args.causal is None or c.causal in args.causal)
                      and (args.direction is None or c.direction in args.direction)
                      and (args.dtype is None or c.dtype in args.dtype)
                      and not (args.no_sweep and c.sweep))
    return [c for c in cases if keep(c)]


def run_case(case: Case, impl: str, rounds: int) -> dict:
    row = asdict(case) | {"impl": impl, "nheads": case.nheads, "ms": None, "tflops": None, "error": None,
                          "kernel": None}
    gen = torch.Generator(device="cuda").manual_seed(hash((case, impl)) % 2**31)
    shape = (case.batch, case.seqlen, case.nheads, case.head_dim)
    q, k, v = (torch.randn(shape, generator=gen, device="cuda", dtype=TORCH_DTYPES[case.dtype]) for _ in range(3))
    try:
        fn = IMPLS[impl](q, k, v, case.causal, case.direction)
        row["kernel"] = getattr(fn, "kernel", None)
        ms = median_ms(fn, rounds=rounds)
    except Unavailable as exc:
        row["error"] = str(exc)
        return row
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
        return row
    except Exception as exc:  # noqa: BLE001 - a peer that breaks on one case must not end the run
        row["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        return row
    flops = attention_flops(case.batch, case.seqlen, case.seqlen, case.nheads, case.head_dim, case.causal,
                            case.direction)
    row.update(ms=ms, tflops=flops / ms / 1e9)
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("python -m bench needs a CUDA GPU", file=sys.stderr)
        return 2
    unknown = set(args.impl) - set(IMPLS)
    if unknown:
        print(f"unknown --impl {sorted(unknown)} (known: {', '.join(IMPLS)})", file=sys.stderr)
        return 2
    cases = select_cases(args)
    gpu = torch.cuda.get_device_name()
    print(f"{gpu}: measuring ceilings...", flush=True)
    roofs = ceilings()
    print(f"  bf16 matmul {roofs['matmul_bf16_tflops']:.0f} TFLOPS, copy {roofs['copy_gb_per_s']:.0f} GB/s", flush=True)
    meta = {"gpu": gpu, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
            "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "ceilings": roofs, "complete": False}
    stem = f"{meta['date']}-{gpu.replace(' ', '_')}{'-' + args.tag if args.tag else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{stem}.json"
    rows = []
    total = len(cases) * len(args.impl)
    for case in cases:
        for impl in args.impl:
            row = run_case(case, impl, args.rounds)
            rows.append(row)
            result = f"{row['tflops']:7.1f} TFLOPS  {row['ms']:.3f} ms" if row["ms"] else f"-- {row['error']}"
            print(f"[{len(rows)}/{total}] {case.direction} d{case.head_dim} {case.dtype} "
                  f"{'causal' if case.causal else 'full'} b{case.batch} s{case.seqlen} {impl:15s} {result}",
                  flush=True)
            torch.cuda.empty_cache()
        # Rows so far, so a run stopped by a time limit still leaves what it measured.
        json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    meta["complete"] = True
    json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    table = report.markdown(meta, rows)
    (args.out / f"{stem}.md").write_text(table)
    plotted = report.plot(rows, args.out / f"{stem}.png", gpu)
    print("\n" + table)
    print(f"wrote {args.out / stem}.json, .md{', .png' if plotted else ''}")
    return 0
