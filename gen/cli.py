"""Build flashgen's extension from a selection of kernels.yaml (`python build.py` in a checkout,
`flashgen-build` once installed; the same flags).

    python build.py                                  # the `default` preset, the families this GPU runs
    python build.py --preset all -j 8
    python build.py --hdim 128,256 --dtype bf16 --arch sm80 --direction fwd
    python build.py --features softcap,window        # kernels built with exactly these features
    python build.py --kernels 'fwd*hdim256*'         # globs over kernel names
    python build.py --list                           # the catalog, selected kernels marked
    python build.py --dry-run                        # what would be compiled
    python build.py --report                         # the last build's compile times, registers, spills
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flashgen import locations
from gen import build, paths, report
from gen.axes import AXES, NO_FEATURES
from gen.machine import machine_selection, visible_gpus
from gen.select import Selection, SelectionError, add_to, select
from gen.spec import CatalogError, load_catalog
from gen.toolchain import Toolchain, ToolchainError


def _csv(text):
    return tuple(part for part in text.split(",") if part)


def _axis_help(axis) -> str:
    if axis.many:
        return (f"kernels built with exactly these {axis.label}s, comma-separated ({axis.allowed()}; "
                f"{NO_FEATURES}: the plain kernels); repeat the flag for more variants")
    return f"comma-separated {axis.label}s ({axis.allowed()})"


def parse_args(argv):
    p = argparse.ArgumentParser(prog=locations.BUILD_COMMAND, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="a preset of kernels.yaml (default: `default` when no filter is given)")
    for axis in AXES:  # one filter flag per axis of the catalog: --direction, --hdim, --dtype, ...
        p.add_argument(axis.flag, dest=axis.name, type=axis.flag_values, action="extend", help=_axis_help(axis))
    # extend: a repeated flag adds globs (it used to keep only the last one, silently).
    p.add_argument("--kernels", type=_csv, action="extend",
                   help="comma-separated globs over kernel names ('bwd*hdim256*'); repeat the flag for more")
    p.add_argument("--add", type=_csv, action="extend",
                   help="kernel-name globs to add to the build dir's current selection "
                        "(the filter flags narrow what is added)")
    p.add_argument("--list", action="store_true", help="print the catalog, marking selected kernels with *")
    p.add_argument("--dry-run", action="store_true", help="print what would be compiled; compile nothing")
    p.add_argument("--report", action="store_true",
                   help="print the build dir's last build report (compile seconds, registers, spills, shared memory)")
    p.add_argument("--all-targets", action="store_true",
                   help="compile machine code for every GPU each family runs on (default with a GPU visible: "
                        "for the visible GPUs only, e.g. an sm80 kernel's sm_90 code alone on an H100)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel compiles (default: by cores and memory)")
    p.add_argument("--build-dir", type=Path, default=None,
                   help="where to build (default: $FLASHGEN_BUILD_DIR, else build/ in a checkout, "
                        "else a per-user cache; flashgen loads the extension from the same place)")
    p.add_argument("--catalog", type=Path, default=paths.CATALOG,
                   help="another catalog (tuning experiments); its files are generated under the build dir")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.build_dir = args.build_dir or locations.build_dir()
    filters = {axis.name: tuple(getattr(args, axis.name)) for axis in AXES if getattr(args, axis.name) is not None}
    try:
        catalog = load_catalog(args.catalog)
        if args.add:
            selection = Selection(preset=args.preset, filters=filters,
                                  kernel_globs=tuple(args.kernels or ()) + tuple(args.add))
            selected = add_to(catalog, build.previous_selection(args.build_dir), selection)
        else:
            selection = Selection(preset=args.preset, filters=filters,
                                  kernel_globs=None if args.kernels is None else tuple(args.kernels))
            if selection.is_empty() and not args.report:
                selection, why = machine_selection(visible_gpus(), frozenset(k.key.arch for k in catalog.kernels))
                print(why)
            selected = select(catalog, selection)
    except (CatalogError, SelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.list:
        names = {k.name for k in selected}
        for spec in catalog.kernels:
            print(f"{'*' if spec.name in names else ' '} {spec.name}")
        print(f"({len(names)} of {len(catalog.kernels)} selected)")
        return 0

    build_dir = args.build_dir.resolve()
    plan_smem = {k.name: k.smem_bytes for k in catalog.kernels}
    if args.report:
        if not (build_dir / build.SELECTION_FILE).exists():
            print(f"error: no build in {build_dir}: run {locations.BUILD_COMMAND} first", file=sys.stderr)
            return 2
        print(report.format_table(report.collect(build_dir, plan_smem)))
        return 0
    try:
        generated_dir = paths.generated_dir(args.catalog, build_dir)
        capabilities = () if args.all_targets else tuple(dict.fromkeys(cap for _, cap in visible_gpus()))
        if capabilities:
            print(f"machine code for compute capability {', '.join(f'{c[0]}.{c[1]}' for c in capabilities)} "
                  "only, the visible GPUs' (--all-targets: for every GPU the kernel families run on)")
        plan = build.prepare(catalog, selected, build_dir, Toolchain(), generated_dir, capabilities)
    except ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"selected {len(selected)} kernel(s): {', '.join(k.name for k in selected)}")

    if args.dry_run:
        steps = build.dry_run(plan)
        for step in steps:
            print(step)
        print(f"dry run: {len(steps)} step(s) would run; nothing compiled")
        return 0

    jobs = args.jobs or build.default_jobs()
    print(f"building in {build_dir} with {jobs} parallel job(s)", flush=True)
    result = build.run(plan, jobs)
    if not result.ok:
        print(f"\nbuild FAILED after {result.seconds:.0f}s (compiler output above). "
              f"Any previous extension at {result.extension} is left as it was.", file=sys.stderr)
        return 1
    print("\n" + report.format_table(report.collect(build_dir, plan_smem)))
    print(f"\nbuilt {len(selected)} kernel(s); compiled {result.compiled} file(s) in {result.seconds:.1f}s"
          f"{' (nothing to do)' if result.compiled == 0 else ''}\nextension: {result.extension}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
