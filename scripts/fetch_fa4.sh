#!/usr/bin/env bash
# Fetch FlashAttention-4 and what it needs into .whl/, for a GPU machine that cannot download
# (run here, where pip reaches the registry; .whl/ is git-ignored and travels as `carry`).
#
# Why these pins: FA4 imports the CUTLASS DSL's Python frontend (`cutlass.cute`). Of the
# nvidia-cutlass-dsl-libs-base wheels the registry serves, 4.4.x-4.5.x hold that frontend and
# 4.6.2-4.8.1 do not (only `_mlir` bindings). flash-attn-4 4.0.0b19 is the newest release whose
# requirements admit 4.5.x (b20-b26 pin 4.6.0.dev0, b28+ need >= 4.6.2); quack-kernels 0.5.0
# is the newest that admits it too.
# The libs-base wheel (75 MB) is over the 64 MiB a device call may carry, so it travels as
# its extracted contents in one xz tarball (52 MB); scripts/gpu_check.sh unpacks it.
# Costs ~2.5 min here (xz -9 on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
mkdir -p "$DEST"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude

PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
fetch() {  # the GPU machine runs CPython 3.12
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$1" "${@:2}"
}
fetch "$DEST" flash-attn-4==4.0.0b19 quack-kernels==0.5.0 nvidia-cutlass-dsl==4.5.3 \
  "apache-tvm-ffi==0.1.15.post2" torch-c-dlpack-ext==0.1.5 einops==0.8.2

if [ ! -s "$DEST/cutlass_dsl_libs.tar.xz" ]; then
  tmp=$(mktemp -d)
  fetch "$tmp" nvidia-cutlass-dsl-libs-base==4.5.3
  python3 -m zipfile -e "$tmp"/nvidia_cutlass_dsl_libs_base-*.whl "$tmp/tree"
  tar -C "$tmp/tree" -cf - nvidia_cutlass_dsl | xz -9 -T0 > "$tmp/libs.tar.xz"
  mv "$tmp/libs.tar.xz" "$DEST/cutlass_dsl_libs.tar.xz"  # only a whole tarball lands
  rm -rf "$tmp"
fi
du -ch "$DEST"/* | tail -1
