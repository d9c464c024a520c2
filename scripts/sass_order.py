#!/usr/bin/env python3
"""Where ptxas put the softmax's exps relative to the wgmma waits, read from a compiled cubin
(no GPU, no profiler): for each kernel whose name holds PATTERN, every `WARPGROUP.DEPBAR` (a
`warpgroup_wait<N>`) in order, with the MUFU.EX2 and HGMMA issued since the wait before it.

    nvcc ... -cubin -o k.cubin generated/flash_fwd_hdim128_bf16_sm90.cu
    python3 scripts/sass_order.py k.cubin fwd_kernel

A line `wait<=0  after 66 ex2` means 66 exps sit between the previous wait and this one (under
the GEMMs still in flight); `wait<=0  after 0 ex2` followed by `wait<=1 after 66 ex2` means the
exps come after the wait, once the GEMM is done. Session 17 found ptxas sinking the exps below
the P V wait of the forward and the dP wait of the backward this way (docs/perf.md).

cuobjdump comes from $CUOBJDUMP, else PATH, else $CUDA_HOME/bin.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;")


def cuobjdump() -> str:
    for candidate in (os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump"),
                      str(Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "cuobjdump")):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("cuobjdump not found: set CUOBJDUMP or CUDA_HOME")


def functions(sass: str) -> dict[str, list[str]]:
    """Each function's instructions (opcode and operands, predicates kept) by mangled name."""
    out: dict[str, list[str]] = {}
    for chunk in re.split(r"\n\s*Function : ", sass)[1:]:
        name, body = chunk.split("\n", 1)
        out[name.strip()] = [m.group(1) for m in map(_INSTRUCTION.search, body.splitlines()) if m]
    return out


def wait_windows(instructions: list[str]) -> list[tuple[str, int, int]]:
    """(the wait's operand, exps since the previous wait, HGMMAs since it) per WARPGROUP.DEPBAR."""
    windows, exps, gemms = [], 0, 0
    for ins in instructions:
        if "MUFU.EX2" in ins:
            exps += 1
        elif "HGMMA" in ins:
            gemms += 1
        elif "WARPGROUP.DEPBAR" in ins:
            windows.append((ins.split()[-1], exps, gemms))
            exps = gemms = 0
    return windows


def report(sass: str, pattern: str) -> str:
    lines = []
    for name, instructions in functions(sass).items():
        if pattern not in name:
            continue
        lines.append(f"{name}:")
        for operand, exps, gemms in wait_windows(instructions):
            lines.append(f"  wait<={int(operand, 16)}  after {exps:3d} ex2, {gemms:3d} HGMMA issued")
    return "\n".join(lines) if lines else f"no function matches {pattern!r}"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sass = subprocess.run([cuobjdump(), "-sass", argv[1]], capture_output=True, text=True, check=True).stdout
    print(report(sass, argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
