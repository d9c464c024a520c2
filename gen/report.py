"""The build report: per kernel, how long it took to compile (ninja's .ninja_log) and what ptxas
gave each of its entry functions (registers, spills, stack, static shared memory; from the
`-Xptxas=-v` output the nvcc rule keeps beside each object, gen/ninja.py). A kernel that spills
is flagged: spills mean local-memory traffic in the inner loop."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gen.build import SELECTION_FILE
from gen.ninja import PTXAS_LOG_SUFFIX

_ENTRY = re.compile(r"ptxas info\s*: Compiling entry function '(?P<fn>[^']+)' for '(?P<target>sm_\w+)'")
_PROPERTIES = re.compile(r"ptxas info\s*: Function properties for (?P<fn>\S+)")
_FRAME = re.compile(r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
                    r"(?P<loads>\d+) bytes spill loads")
_USED = re.compile(r"ptxas info\s*: Used (?P<regs>\d+) registers(?P<rest>.*)")
_SMEM = re.compile(r"(\d+) bytes smem")


@dataclass
class FunctionResources:
    registers: int = 0
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    static_smem: int = 0


def parse_ptxas(text: str) -> dict[tuple[str, str], FunctionResources]:
    """(mangled function, sm target) -> resources, from nvcc -Xptxas=-v output. Each target's
    pass names its functions ('Compiling entry function ... for sm_90'); the frame line
    follows 'Function properties for', the register line the entry it belongs to."""
    functions: dict[tuple[str, str], FunctionResources] = {}
    target, entry, properties_of = None, None, None
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            target, entry = m["target"], m["fn"]
            functions.setdefault((entry, target), FunctionResources())
        elif m := _PROPERTIES.search(line):
            properties_of = m["fn"]
        elif (m := _FRAME.search(line)) and target and properties_of:
            res = functions.setdefault((properties_of, target), FunctionResources())
            res.stack, res.spill_stores, res.spill_loads = int(m["stack"]), int(m["stores"]), int(m["loads"])
        elif (m := _USED.search(line)) and target and entry:
            res = functions[(entry, target)]
            res.registers = int(m["regs"])
            smem = _SMEM.search(m["rest"])
            res.static_smem = int(smem.group(1)) if smem else 0
    return functions


def parse_ninja_log(text: str) -> dict[str, float]:
    """Output path -> seconds its last build step took. Each line: start ms, end ms, mtime,
    output, command hash; a rebuilt output appends a line, and the last one counts."""
    seconds = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        start, end, _, output = line.split("\t")[:4]
        seconds[output] = (int(end) - int(start)) / 1000
    return seconds


@dataclass
class KernelReport:
    name: str
    seconds: float | None                 # None: ninja has no record of compiling it
    plan_smem: int | None                 # dynamic shared memory of the catalog's tile plan
    targets: dict[str, FunctionResources] = field(default_factory=dict)  # sm target -> worst entry

    @property
    def spills(self) -> bool:
        return any(r.spill_stores or r.spill_loads for r in self.targets.values())


def _worst_per_target(functions: dict[tuple[str, str], FunctionResources]) -> dict[str, FunctionResources]:
    """Per target: the most registers, stack and static shared memory of any function, and
    the spill bytes of all of them added up."""
    worst: dict[str, FunctionResources] = {}
    for (_, target), res in functions.items():
        w = worst.setdefault(target, FunctionResources())
        w.registers, w.stack = max(w.registers, res.registers), max(w.stack, res.stack)
        w.static_smem = max(w.static_smem, res.static_smem)
        w.spill_stores += res.spill_stores
        w.spill_loads += res.spill_loads
    return worst


def collect(build_dir: Path, plan_smem: dict[str, int] | None = None) -> list[KernelReport]:
    """The report of the kernels the build dir was last built for (selected_kernels.txt)."""
    build_dir = Path(build_dir)
    selection = build_dir / SELECTION_FILE
    names = selection.read_text().split() if selection.exists() else []
    log = build_dir / ".ninja_log"
    seconds = parse_ninja_log(log.read_text()) if log.exists() else {}
    reports = []
    for name in names:
        obj = build_dir / "obj" / f"{name}.o"
        ptxas = obj.with_name(obj.name + PTXAS_LOG_SUFFIX)
        functions = parse_ptxas(ptxas.read_text()) if ptxas.exists() else {}
        compile_seconds = seconds.get(str(obj), seconds.get(f"obj/{name}.o"))
        reports.append(KernelReport(name, compile_seconds, (plan_smem or {}).get(name), _worst_per_target(functions)))
    return reports


def format_table(reports: list[KernelReport]) -> str:
    header = ("kernel", "compile s", "target", "registers", "spill st/ld B", "stack B", "smem B static+plan")
    rows = []
    for r in reports:
        seconds = f"{r.seconds:.1f}" if r.seconds is not None else "?"
        plan = str(r.plan_smem) if r.plan_smem is not None else "?"
        if not r.targets:
            rows.append((r.name, seconds, "?", "?", "?", "?", f"?+{plan}", ""))
        for i, (target, res) in enumerate(sorted(r.targets.items())):
            flag = "SPILLS" if res.spill_stores or res.spill_loads else ""
            rows.append((r.name if i == 0 else "", seconds if i == 0 else "", target, str(res.registers),
                         f"{res.spill_stores}/{res.spill_loads}", str(res.stack), f"{res.static_smem}+{plan}", flag))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *(row[:-1] for row in rows)]]
    lines[1:] = [line + (f"  << {row[-1]}" if row[-1] else "") for line, row in zip(lines[1:], rows)]
    spilling = [r.name for r in reports if r.spills]
    total = sum(r.seconds or 0 for r in reports)
    lines.append(f"{len(reports)} kernel(s), {total:.0f} s of compiling in all; "
                 + (f"{len(spilling)} spill: {', '.join(spilling)}" if spilling else "none spills"))
    return "\n".join(lines)
