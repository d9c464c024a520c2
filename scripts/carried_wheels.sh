# Source this on a GPU machine without internet: installs what travelled in .whl/ (the CUTLASS
# headers' wheel, or the headers alone from scripts/pack_cutlass_headers.sh; FlashAttention-4's
# set from scripts/fetch_fa4.sh) into /tmp/site and puts it on PYTHONPATH (CUTLASS_INCLUDE).   . scripts/carried_wheels.sh || exit 1
_site=/tmp/site
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$_site" .whl/*.whl \
    || return 1
  export PYTHONPATH="$_site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -f .whl/cutlass_dsl_libs.tar.xz ]; then
  python3 -c "import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .whl/cutlass_dsl_libs.tar.xz "$_site" \
    || return 1
  # The wheel's .pth adds this folder; pip --target does not run .pth files.
  export PYTHONPATH="$_site/nvidia_cutlass_dsl/python_packages:$PYTHONPATH"
fi
if [ -f .whl/cutlass_include.tar.xz ]; then  # the CUTLASS headers alone (scripts/pack_cutlass_headers.sh)
  mkdir -p "$_site/cutlass" &&
    python3 -c "import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .whl/cutlass_include.tar.xz \
      "$_site/cutlass" || return 1
  export CUTLASS_INCLUDE="$_site/cutlass/include"
fi
unset _site
