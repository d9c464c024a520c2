"""python -m bench: time flashgen and its peers over a grid, write JSON, a table and a plot.

    python -m bench                       # the default grid
    python -m bench --quick               # a couple of minutes
    python -m bench --hdim 256 --causal false --direction fwd --impl flashgen,sdpa_flash
    python -m bench --grid features --impl flashgen,fa4,sdpa_cudnn --tag features
                                          # sliding window, softcap and varlen rows, each beside
                                          # the plain case it compares with
    python -m bench --features            # the default grid, then the features rows
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import zlib
from dataclasses import asdict
from pathlib import Path

import torch

from bench import report
from bench.cases import GRIDS, TOTAL_HIDDEN, Case, case_flops, default_grid, features_grid  # noqa: F401
from bench.impls import IMPLS, OPT_IN_IMPLS, Unavailable
from bench.timing import ceilings, time_side_by_side
from flashgen.dispatch import TORCH_DTYPES

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _bool(text: str) -> bool:
    return {"true": True, "false": False, "1": True, "0": False}[text.lower()]


def _grids(text: str) -> list[str]:
    names = text.split(",")
    unknown = [n for n in names if n not in GRIDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown grid {unknown} (known: {', '.join(GRIDS)})")
    return names


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hdim", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--causal", type=lambda s: [_bool(x) for x in s.split(",")])
    p.add_argument("--direction", type=lambda s: s.split(","))
    p.add_argument("--dtype", type=lambda s: s.split(","))
    p.add_argument("--impl", type=lambda s: s.split(","), default=[i for i in IMPLS if i not in OPT_IN_IMPLS],
                   help="comma-separated; flashgen@sm80, flashgen@sm90 force a kernel family, flashgen_ops "
                        "calls through the torch.library ops instead of the eager path (opt-in, as the "
                        f"@ ones) (known: {', '.join(IMPLS)})")
    p.add_argument("--grid", type=_grids, default=["default"],
                   help=f"comma-separated grids to run, in order (known: {', '.join(GRIDS)}; default: default). "
                        "features: a 32k causal sequence with a (4096, 0) window, softcap 30 at 2 x 8192 "
                        "hdim 256, a packed varlen batch and its padded batch, each beside its plain case")
    p.add_argument("--features", action="store_true",
                   help="add the features grid's rows after the others (--grid default,features)")
    p.add_argument("--quick", action="store_true", help="a smaller default grid that runs in a couple of minutes")
    p.add_argument("--no-sweep", action="store_true", help="skip the seqlen sweep")
    p.add_argument("--rounds", type=int, default=15, help="timed batches per row (median taken)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--tag", default="", help="suffix for the result file names")
    return p.parse_args(argv)


def select_cases(args) -> list[Case]:
    grids = args.grid + (["features"] if args.features and "features" not in args.grid else [])
    cases = [case for grid in grids for case in GRIDS[grid](args.quick)]
    keep = lambda c: ((args.hdim is None or c.head_dim in args.hdim)  # noqa: E731
                      and (args.causal is None or c.causal in args.causal)
                      and (args.direction is None or c.direction in args.direction)
                      and (args.dtype is None or c.dtype in args.dtype)
                      and not (args.no_sweep and c.sweep))
    return [c for c in cases if keep(c)]


def error_text(exc: BaseException) -> str:
    if isinstance(exc, Unavailable):
        return str(exc)
    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory"
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


def run_case(case: Case, impls: list[str], rounds: int) -> list[dict]:
    """One row per implementation, timed side by side (bench.timing.time_side_by_side), each on
    its own random inputs. A peer that breaks on the case gets its error in its row; the run goes on."""
    rows, fns = {}, {}
    for impl in impls:
        row = asdict(case) | {"impl": impl, "nheads": case.nheads, "ms": None, "tflops": None, "error": None,
                              "kernel": None, "spread": None, "host_ms": None, "host_idle_ms": None}
        rows[impl] = row
        # The same inputs in every run (hash() of a str changes per process).
        gen = torch.Generator(device="cuda").manual_seed(zlib.crc32(repr((case, impl)).encode()) % 2**31)
        lead = (sum(case.varlen),) if case.packed else (case.batch, case.seqlen)   # packed: (total, h, d)
        shape = (*lead, case.nheads, case.head_dim)
        try:
            q, k, v = (torch.randn(shape, generator=gen, device="cuda", dtype=TORCH_DTYPES[case.dtype])
                       for _ in range(3))
            fns[impl] = IMPLS[impl](q, k, v, case.causal, case.direction, window=case.window, softcap=case.softcap,
                                    seqlens=case.varlen if case.packed else None)
            row["kernel"] = getattr(fns[impl], "kernel", None)
        except Exception as exc:  # noqa: BLE001 - a peer that breaks on one case must not end the run
            row["error"] = error_text(exc)
    for impl, timing in time_side_by_side(fns, rounds=rounds).items():
        if isinstance(timing, BaseException):
            rows[impl]["error"] = error_text(timing)
        else:
            rows[impl].update(ms=timing.ms, tflops=case_flops(case) / timing.ms / 1e9, spread=timing.spread,
                              host_ms=timing.host_ms, host_idle_ms=timing.host_idle_ms)
    return [rows[impl] for impl in impls]


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
    stem = report.result_stem(meta, args.tag)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{stem}.json"
    rows = []
    total = len(cases) * len(args.impl)
    for case in cases:
        for row in run_case(case, args.impl, args.rounds):
            rows.append(row)
            result = f"{row['tflops']:7.1f} TFLOPS  {row['ms']:.3f} ms" if row["ms"] else f"-- {row['error']}"
            print(f"[{len(rows)}/{total}] {case.direction} d{case.head_dim} {case.dtype} "
                  f"{'causal' if case.causal else 'full'} b{case.batch} s{case.seqlen}"
                  f"{' [' + case.variant + ']' if case.variant else ''} {row['impl']:15s} {result}",
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
