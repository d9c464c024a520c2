#!/usr/bin/env bash
# Pack the CUTLASS / CuTe headers of nvidia-cutlass==4.2.0.0 into .whl/cutlass_include.tar.xz for a
# GPU machine that cannot download (run here; .whl/ is git-ignored and travels as `carry`). The
# headers are all a build needs (gen/toolchain.py takes $CUTLASS_INCLUDE, which
# scripts/carried_wheels.sh sets): ~1 MB against the wheel's 6.4 MB, so FlashAttention-4's set
# (scripts/fetch_fa4.sh, ~57 MB) and the tree fit the 64 MiB a device call carries together.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
mkdir -p "$DEST"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
tmp=$(mktemp -d)
python3 -m pip download -q --no-deps -d "$tmp" nvidia-cutlass==4.2.0.0
python3 -m zipfile -e "$tmp"/nvidia_cutlass-4.2.0.0-*.whl "$tmp/tree"
tar -C "$tmp/tree/cutlass_library/source" -cf - include | xz -9 -T0 > "$tmp/include.tar.xz"
mv "$tmp/include.tar.xz" "$DEST/cutlass_include.tar.xz"  # only a whole tarball lands
rm -rf "$tmp"
ls -l "$DEST/cutlass_include.tar.xz"
