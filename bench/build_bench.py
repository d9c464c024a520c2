"""python -m bench.build_bench: how long `python build.py` takes here, and how much memory the
largest compiler process needs. Builds into throw-away folders; prints a markdown table and
writes bench/results/<date>-build-<host>.json.

Rows: one instantiation (clean), the default preset (clean), a no-op rebuild of it.

With --variants CATALOG:GLOBS (repeatable): the build-time cost of feature variants instead. Each
family of CATALOG is rebuilt with every combination of the features it implements (--features
softcap,window: plain, softcap, window, softcap+window), and each kernel the globs select is
compiled alone (ninja -j 1, its object only, in a fresh build dir): compile seconds, the largest
compiler process's peak memory, registers and spills per target, and each variant's ratio to its
plain kernel. Writes bench/results/<date>-build-variants-<cores>cores.{md,json}.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.run import RESULTS_DIR
from gen import paths, report
from gen.axes import FEATURES
from gen.families import FAMILIES
from gen.spec import load_catalog

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


def variant_sets(direction: str, arch: str, features=None) -> list[list[str]]:
    """Every combination of the features a family implements (of `features` only, if given), the
    plain kernel first, in the vocabulary's order: [[], [softcap], [window], [softcap, window]]."""
    implemented = [name for name in FEATURES if name in FAMILIES[(direction, arch)].features
                   and (features is None or name in features)]
    return [list(combo) for n in range(len(implemented) + 1) for combo in itertools.combinations(implemented, n)]


def with_all_variants(catalog_text: str, features=None) -> str:
    """A catalog's text with every family built in all its feature variants (same tile plans).
    Entries that already list variants (kernels.yaml's Gemma ones) are dropped: the plain
    entry of the same family now builds those too."""
    root = yaml.safe_load(catalog_text)
    root["kernels"] = [entry for entry in root["kernels"] if not entry.get("features")]
    for entry in root["kernels"]:
        entry["features"] = variant_sets(entry["direction"], entry["arch"], features)
    root["presets"] = {"default": ["*"], "all": ["*"]}
    return yaml.safe_dump(root, sort_keys=False)


def plain_name(spec) -> str:
    return dataclasses.replace(spec.key, features=()).name


def variant_label(spec) -> str:
    return "+".join(name for name in FEATURES if name in spec.features) or "plain"


def _variant_order(spec):
    order = list(FEATURES)
    return plain_name(spec), len(spec.features), sorted(order.index(name) for name in spec.features)


def measure_objects(catalog: Path, globs: str, build_dir: Path, on_row=lambda row: None) -> list[dict]:
    """Prepare a build of the kernels `globs` selects from `catalog` (build.py --dry-run writes the
    ninja file and renders the sources), then compile each kernel's object alone, one at a time:
    the plain kernel first, then its variants."""
    build_dir = build_dir.resolve()
    proc = subprocess.run([sys.executable, "build.py", "--catalog", str(catalog), "--build-dir", str(build_dir),
                           "--kernels", globs, "--dry-run"], cwd=paths.REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    specs = {k.name: k for k in load_catalog(catalog).kernels}
    selected = sorted((specs[name] for name in (build_dir / "selected_kernels.txt").read_text().split()),
                      key=_variant_order)
    plan_smem = {k.name: k.smem_bytes for k in selected}
    rows = []
    for spec in selected:
        obj = build_dir / "obj" / f"{spec.name}.o"
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", _MEASURE, "ninja", "-C", str(build_dir), "-j", "1", str(obj)],
                              cwd=paths.REPO_ROOT, capture_output=True, text=True)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
        peak_kb = int(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PEAK_CHILD_KB")))
        r = next(r for r in report.collect(build_dir, plan_smem) if r.name == spec.name)
        rows.append({"kernel": plain_name(spec), "variant": variant_label(spec), "name": spec.name,
                     "seconds": round(r.seconds, 1) if r.seconds is not None else None,
                     "wall_seconds": round(wall, 1), "peak_process_gb": round(peak_kb / 2**20, 2),
                     "targets": {target: {"registers": res.registers, "spill_stores": res.spill_stores,
                                          "spill_loads": res.spill_loads, "stack": res.stack}
                                 for target, res in sorted(r.targets.items())}})
        on_row(rows[-1])
    return rows


def _ratio(value, plain) -> str:
    return f"{value / plain:.2f}" if value is not None and plain else "?"


def variants_markdown(meta: dict, rows: list[dict]) -> str:
    """One row per kernel variant; the ratios are to the same kernel's plain build."""
    plain = {(r["kernel"], r.get("catalog")): r for r in rows if r["variant"] == "plain"}
    source = f"commit {meta.get('commit', '?')}"
    if meta.get("sources_changed"):
        source += " with uncommitted csrc/gen changes"
    lines = [f"Build cost of the feature variants on {meta['cores']} cores, {meta['memory_gb']} GB ({meta['date']}, "
             f"{source}; `{meta['command']}`): each kernel's object compiled alone in a fresh build dir (ninja -j 1); "
             "seconds = the nvcc command (.ninja_log), peak = the largest compiler process; registers and "
             "spill stores/loads (bytes) per target, from ptxas.", "",
             "| kernel | plan from | variant | seconds | x plain | peak GB | x plain | registers | spills st/ld B |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = plain.get((r["kernel"], r.get("catalog")), {})
        regs = ", ".join(f"{t} {v['registers']}" for t, v in r["targets"].items()) or "?"
        spills = ", ".join(f"{t} {v['spill_stores']}/{v['spill_loads']}" for t, v in r["targets"].items()) or "?"
        if any(v["spill_stores"] or v["spill_loads"] for v in r["targets"].values()):
            spills += " **SPILLS**"
        lines.append(f"| {r['kernel']} | {r.get('catalog', '?')} | {r['variant']} "
                     f"| {r['seconds']} | {_ratio(r['seconds'], base.get('seconds'))} "
                     f"| {r['peak_process_gb']} | {_ratio(r['peak_process_gb'], base.get('peak_process_gb'))} "
                     f"| {regs} | {spills} |")
    variants = [(r, plain[(r["kernel"], r.get("catalog"))]) for r in rows
                if r["variant"] != "plain" and (r["kernel"], r.get("catalog")) in plain]
    ratios = [r["seconds"] / base["seconds"] for r, base in variants if r["seconds"] and base["seconds"]]
    if ratios:
        lines += ["", f"Variants' compile time over their plain kernel's: {min(ratios):.2f}-{max(ratios):.2f} "
                      f"(mean {sum(ratios) / len(ratios):.2f}, {len(ratios)} variants)."]
    # Notes added to the JSON's meta after a run (what else ran on the machine, repeats, caveats).
    if meta.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in meta["notes"]]
    return "\n".join(lines) + "\n"


def _git(*args) -> str:
    proc = subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _meta(argv) -> dict:
    return {"date": datetime.date.today().isoformat(), "host": platform.node(), "cores": os.cpu_count(),
            "commit": _git("rev-parse", "--short", "HEAD") or "?",
            "sources_changed": bool(_git("status", "--porcelain", "--", "csrc", "gen")),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "command": "python -m bench.build_bench " + " ".join(argv if argv is not None else sys.argv[1:])}


def run_variants(specs: list[str], out: Path, argv, features=None) -> int:
    """Measure each CATALOG:GLOBS in turn; the results files are rewritten after every kernel, so
    a run stopped early keeps what it measured."""
    meta = _meta(argv)
    stem = f"{meta['date']}-build-variants-{meta['cores']}cores"
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def write(row=None):
        if row is not None:
            rows.append(row)
            print(row, flush=True)
        (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        (out / f"{stem}.md").write_text(variants_markdown(meta, rows))

    for spec in specs:
        catalog, _, globs = spec.partition(":")
        with tempfile.TemporaryDirectory() as tmp:
            variants = Path(tmp) / "variants.yaml"
            variants.write_text(with_all_variants((paths.REPO_ROOT / catalog).read_text(), features))
            measure_objects(variants, globs, Path(tmp) / "build", lambda row: write(dict(row, catalog=catalog)))
    write()
    print(variants_markdown(meta, rows))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.build_bench", description=__doc__)
    parser.add_argument("--kernel", default="flash_bwd_hdim256_bf16_sm80", help="the single-instantiation row")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--variants", action="append", metavar="CATALOG:GLOBS",
                        help="measure the feature variants of the kernels GLOBS (comma-separated kernel-name "
                             "globs) selects from CATALOG (a path from the repository root), each compiled "
                             "alone; repeatable. Replaces the default rows.")
    parser.add_argument("--features", type=lambda text: tuple(text.split(",")),
                        help="with --variants: combine only these features, comma-separated "
                             "(default: every feature each family implements)")
    args = parser.parse_args(argv)
    if args.variants:
        return run_variants(args.variants, args.out, argv, args.features)
    rows = []
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as preset:
        rows.append(timed_build(Path(one), "--kernels", args.kernel) | {"case": "one instantiation, clean"})
        print(rows[-1], flush=True)
        rows.append(timed_build(Path(preset)) | {"case": "default preset, clean"})
        print(rows[-1], flush=True)
        rows.append(timed_build(Path(preset)) | {"case": "default preset, nothing changed"})
        print(rows[-1], flush=True)
    meta = _meta(argv)
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
