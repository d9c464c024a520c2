"""A/B of benchmark runs: flashgen's TFLOPS per case in each result file, and each file's ratio
to the first (the base). For tuning catalogs timed one after another in one call.

    python -m bench.compare base.json variant.json [more.json ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.cases import Case
from bench.report import result_stem


def _flashgen_tflops(rows: list[dict]) -> dict[Case, float]:
    """flashgen's best TFLOPS per case (its best kernel family where several ran)."""
    best: dict[Case, float] = {}
    for row in rows:
        if row["impl"].startswith("flashgen") and row.get("tflops") and not row.get("sweep"):
            case = Case.from_row(row)
            best[case] = max(best.get(case, 0.0), row["tflops"])
    return best


def _label(case: Case) -> str:
    variant = f" {case.variant}" if case.variant else ""
    return (f"{case.direction} d{case.head_dim} {case.dtype} {'causal' if case.causal else 'full'} "
            f"{case.batch}x{case.seqlen}{variant}")


def compare(named_rows: list[tuple[str, list[dict]]]) -> str:
    """A markdown table: one line per case of the base, a column per run (TFLOPS, and the ratio
    to the base after the first); a case a run lacks shows `-`."""
    tables = [(name, _flashgen_tflops(rows)) for name, rows in named_rows]
    base_name, base = tables[0]
    header = ["case", base_name] + [name for name, _ in tables[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case in base:
        cells = [_label(case), f"{base[case]:.0f}"]
        for _, table in tables[1:]:
            cells.append(f"{table[case]:.0f} ({table[case] / base[case]:.2f})" if case in table else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if len(paths) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    named = []
    for path in paths:
        data = json.loads(path.read_text())
        # The run's tag (its file name past DATE-GPU, bench.report.result_stem) names its column.
        tag = path.stem.removeprefix(result_stem(data["meta"])).lstrip("-")
        named.append((tag or path.stem, data["rows"]))
    print(compare(named), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
