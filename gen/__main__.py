"""python -m gen [--check]: render generated/ from kernels.yaml."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gen import emit, paths
from gen.spec import CatalogError, load_catalog


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gen", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the files that differ if generated/ is out of date")
    parser.add_argument("--catalog", type=Path, default=paths.CATALOG)
    parser.add_argument("--out", type=Path, default=paths.GENERATED)
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(args.catalog)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = emit.check(catalog, args.out)
        for problem in problems:
            print(problem)
        if problems:
            print(f"{args.out} is out of date with {args.catalog.name}: run `python -m gen`", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date ({len(catalog.kernels)} kernels)")
        return 0
    written, removed = emit.sync(catalog, args.out)
    print(f"{args.out}: {len(catalog.kernels)} kernels, {len(written)} written, {len(removed)} removed")
    for name in removed:
        print(f"  removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
