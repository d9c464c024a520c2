"""python -m bench.build_bench: how long `python build.py` takes here, and how much memory the
largest compiler process needs. Builds into throw-away folders; prints a markdown table and
writes bench/results/<date>-build-<host>.json.

Rows: one instantiation (clean), the default preset (clean), a no-op rebuild of it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import RESULTS_DIR
from gen import paths

# Runs build.py and reports the largest descendant's peak RSS (nvcc's cicc/ptxas, or c++).
_MEASURE = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
            "print('PEAK_CHILD_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def timed_build(build_dir: Path, *selection: str) -> dict:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "build.py", "--build-dir", str(build_dir),
                           *selection], cwd=paths.REPO_ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    peak_kb = int(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PEAK_CHILD_KB")))
    compiled = next((line for line in proc.stdout.splitlines() if line.startswith("built ")), "")
    return {"selection": " ".join(selection) or "(default preset)", "seconds": round(seconds, 1),
            "peak_process_gb": round(peak_kb / 2**20, 2), "summary": compiled}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.build_bench", description=__doc__)
    parser.add_argument("--kernel", default="flash_bwd_hdim256_bf16_sm80", help="the single-instantiation row")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as preset:
        rows.append(timed_build(Path(one), "--kernels", args.kernel) | {"case": "one instantiation, clean"})
        print(rows[-1], flush=True)
        rows.append(timed_build(Path(preset)) | {"case": "default preset, clean"})
        print(rows[-1], flush=True)
        rows.append(timed_build(Path(preset)) | {"case": "default preset, nothing changed"})
        print(rows[-1], flush=True)
    meta = {"date": datetime.date.today().isoformat(), "host": platform.node(), "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "command": "python -m bench.build_bench " + " ".join(argv if argv is not None else sys.argv[1:])}
    lines = [f"Build times on {meta['cores']} cores, {meta['memory_gb']} GB ({meta['date']}; `{meta['command']}`; "
             "peak = largest single compiler process):", "",
             "| case | selection | seconds | peak process GB | build.py summary |", "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['selection']} | {r['seconds']} | {r['peak_process_gb']} | {r['summary']} |" for r in rows]
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{meta['date']}-build-{meta['cores']}cores"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
