#!/usr/bin/env python3
"""Build flashgen's extension from a selection of kernels.yaml (from a checkout; an installed
flashgen has the same command as `flashgen-build`). `python build.py --help` for the flags."""
import sys

from gen.cli import main

if __name__ == "__main__":
    sys.exit(main())
