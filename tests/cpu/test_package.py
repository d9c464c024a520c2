"""The pip package: the wheel carries the generator and the build inputs, and an installed
flashgen, imported away from the checkout, builds from its own copy into a per-user cache."""
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gen import paths

ROOT = paths.REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("flashgen-*.whl")
    return path


def tracked_files(folder: str) -> set[str]:
    listed = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(listed.stdout.split())


def test_wheel_carries_the_packages_and_the_build_inputs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in tracked_files("csrc") | tracked_files("templates") | {"kernels.yaml"}:
        assert f"flashgen/_data/{source}" in names, source
    for package in ("flashgen", "gen"):
        for module in tracked_files(package):
            assert module in names, module
    assert not any(n.startswith(("generated/", "tests/", "bench/")) for n in names)


def test_installed_package_builds_from_its_own_copy(wheel, tmp_path):
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHGEN_")}
    env.update(PYTHONPATH=str(site), FLASHGEN_CACHE_DIR=str(tmp_path / "cache"))
    # The runtime's name parser takes the axes from the installed generator (gen/axes.py).
    code = ("from flashgen import locations; from flashgen.naming import KernelKey; from gen import paths; "
            "print(locations.IN_CHECKOUT, paths.CATALOG, locations.build_dir(), "
            "*KernelKey.parse('flash_fwd_hdim64_fp16_sm80_softcap_varlen').features)")
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    in_checkout, catalog, build_dir, *features = where.stdout.split()
    assert features == ["softcap", "varlen"]
    assert in_checkout == "False" and Path(catalog) == site / "flashgen" / "_data" / "kernels.yaml"
    assert re.fullmatch(rf"{tmp_path}/cache/0\.1\.0/torch[^/]+-cp3\d+", build_dir), build_dir

    dry = subprocess.run([str(site / "bin" / "flashgen-build"), "--kernels", "flash_fwd_hdim64_fp16_sm80",
                          "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: 4 step(s) would run" in dry.stdout
    ninja = (Path(build_dir) / "build.ninja").read_text()
    assert f"{site}/flashgen/_data/csrc/binding.cpp" in ninja
    assert f"{build_dir}/generated/flash_fwd_hdim64_fp16_sm80.cu" in ninja
