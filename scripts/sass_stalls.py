#!/usr/bin/env python3
"""Read the per-instruction SASS page Nsight Compute exports
(`ncu --import R.ncu-rep --page source --csv --print-source sass > K.csv`) and print what a
side-by-side of two kernels needs (scripts/calls/s12_third.sh writes flashgen's and FA4's):

- the stall samples by opcode (HGMMA, MUFU.EX2, WARPGROUP.DEPBAR, SYNCS, ...), as shares;
- the stall samples by reason (ncu's `stall_*` columns, where the export has them: barrier,
  wait, long_sb, math, ...), with the instruction that holds most of each;
- the hottest instructions, with their address and sample counts;
- the order of the events that decide overlap inside the kernel's hottest loop: HGMMA issues,
  WARPGROUP.DEPBAR waits and MUFU.EX2, compressed into runs (session 11 found ptxas placing the
  wait for the P V GEMM before the softmax in flashgen's forward; this shows where FA4's is).

    python3 scripts/sass_stalls.py sass-fwd256-flashgen.csv sass-fwd256-fa4.csv

Columns are found by name, tolerating the wording of different ncu versions: the SASS text
("Source"), the address ("Address"), and the stall samples ("Warp Stall Sampling (All Samples)",
else any column whose name holds "Stall Sampling" or "Samples").
"""
from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

EVENTS = ("HGMMA", "WARPGROUP.DEPBAR", "WARPGROUP.ARRIVE", "MUFU.EX2", "BAR.", "SYNCS")


def _column(header: list[str], *wanted: str) -> int | None:
    for want in wanted:
        for i, name in enumerate(header):
            if want.lower() in name.lower():
                return i
    return None


def _number(text: str) -> float:
    try:
        return float(text.replace(",", "")) if text.strip() else 0.0
    except ValueError:
        return 0.0


def read_rows(path: Path) -> list[dict]:
    """(address, sass, samples) per instruction, in address order."""
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    start = next(i for i, row in enumerate(lines) if _column(row, "Source") is not None)
    header = lines[start]
    source, address = _column(header, "Source"), _column(header, "Address")
    samples = _column(header, "Warp Stall Sampling (All", "Stall Sampling", "Samples")
    if samples is None:
        raise SystemExit(f"{path}: no stall-sampling column in {header}")
    # Per-reason samples (all samples, not the "(Not Issued)" repeats), where exported.
    reasons = {name: i for i, name in enumerate(header)
               if name.startswith("stall_") and "not issued" not in name.lower()}
    rows = []
    for row in lines[start + 1:]:
        if len(row) <= max(source, samples) or not row[source].strip():
            continue
        rows.append({"address": row[address] if address is not None else str(len(rows)),
                     "sass": row[source].strip(), "samples": _number(row[samples]),
                     "reasons": {name[len("stall_"):]: _number(row[i]) for name, i in reasons.items() if i < len(row)}})
    return rows


def reason_lines(rows: list[dict], total: float, top: int = 10) -> list[str]:
    """Samples by stall reason, each with its hottest instruction (empty when not exported)."""
    by_reason = Counter()
    for r in rows:
        by_reason.update(r["reasons"])
    lines = []
    for name, n in by_reason.most_common(top):
        if n <= 0:
            break
        hottest = max(rows, key=lambda r: r["reasons"].get(name, 0.0))
        lines.append(f"  {name:18s} {n:9.0f} {n / total:6.1%}   most at {hottest['address']}: {hottest['sass'][:60]}")
    return ["by reason:", *lines] if lines else []


def opcode(sass: str) -> str:
    words = [w for w in sass.split() if not w.startswith("@")]
    return words[0].rstrip(";") if words else ""


def family(op: str) -> str:
    """HGMMA.64x256x16.F32.BF16 -> HGMMA; MUFU.EX2 and WARPGROUP.DEPBAR keep their second part."""
    head = op.split(".")
    return ".".join(head[:2]) if head[0] in ("MUFU", "WARPGROUP", "SYNCS") else head[0]


def event_stream(rows: list[dict], window: int = 600) -> str:
    """The decisive events around the hottest HGMMA, runs compressed: 'HGMMA x8, DEPBAR, EX2 x40'."""
    hot = [i for i, r in enumerate(rows) if opcode(r["sass"]).startswith("HGMMA")]
    if not hot:
        return "(no HGMMA)"
    centre = max(hot, key=lambda i: rows[i]["samples"])
    runs: list[list] = []
    for r in rows[max(0, centre - window // 2): centre + window // 2]:
        op = opcode(r["sass"])
        name = next((e for e in EVENTS if op.startswith(e)), None)
        if name is None:
            if runs and runs[-1][0] == "other":
                runs[-1][1] += 1
            else:
                runs.append(["other", 1])
            continue
        # A wait keeps its depth: 0x0 (every GEMM done) or 0x1 (all but the last).
        label = f"{op} {r['sass'].rstrip(' ;').split()[-1]}" if name == "WARPGROUP.DEPBAR" else name
        if runs and runs[-1][0] == label:
            runs[-1][1] += 1
        else:
            runs.append([label, 1])
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in runs)


def report(path: Path, top: int = 25) -> str:
    rows = read_rows(path)
    total = sum(r["samples"] for r in rows) or 1.0
    by_family = Counter()
    for r in rows:
        by_family[family(opcode(r["sass"]))] += r["samples"]
    lines = [f"== {path.name}: {len(rows)} instructions, {total:.0f} stall samples", "by opcode:"]
    lines += [f"  {name:24s} {n / total:6.1%}" for name, n in by_family.most_common(12)]
    lines += reason_lines(rows, total)
    lines.append(f"hottest {top}:")
    for r in sorted(rows, key=lambda r: -r["samples"])[:top]:
        lines.append(f"  {r['address']:>8s} {r['samples'] / total:6.1%}  {r['sass'][:90]}")
    lines += ["events around the hottest HGMMA:", "  " + event_stream(rows)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for path in argv:
        print(report(Path(path)), "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
