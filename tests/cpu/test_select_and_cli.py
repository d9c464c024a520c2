"""Selection semantics, build.py --list / --dry-run, and the ninja text."""
import re
import subprocess
import sys

import pytest

from gen import paths
from gen.ninja import BuildPlan, ninja_text
from gen.select import Selection, SelectionError, select
from gen.spec import load_catalog
from gen.axes import ARCHS


def names(**criteria):
    return [k.name for k in select(load_catalog(), Selection(**criteria))]


def test_no_criteria_means_the_default_preset():
    catalog = load_catalog()
    assert names() == [k.name for k in catalog.expand(catalog.presets["default"])]


def test_filters_intersect():
    assert names(hdims=(128, 256), dtypes=("bf16",), directions=("fwd",), archs=("sm80",)) == [
        "flash_fwd_hdim128_bf16_sm80", "flash_fwd_hdim256_bf16_sm80"]
    assert names(hdims=(256,), dtypes=("fp16",)) == ["flash_bwd_hdim256_fp16_sm80", "flash_bwd_hdim256_fp16_sm90",
                                                     "flash_fwd_hdim256_fp16_sm80", "flash_fwd_hdim256_fp16_sm90"]
    assert names(preset="sm80", directions=("fwd",), hdims=(64,)) == [
        "flash_fwd_hdim64_bf16_sm80", "flash_fwd_hdim64_fp16_sm80"]


def test_kernel_globs_match_anywhere_in_the_name():
    assert names(kernel_globs=("fwd*hdim256*sm80",)) == ["flash_fwd_hdim256_bf16_sm80", "flash_fwd_hdim256_fp16_sm80"]
    assert names(kernel_globs=("fwd_hdim64_fp16", "flash_fwd_hdim96_bf16_sm80")) == [
        "flash_fwd_hdim64_fp16_sm80", "flash_fwd_hdim64_fp16_sm90", "flash_fwd_hdim96_bf16_sm80"]


@pytest.mark.parametrize("criteria,message", [
    ({"hdims": (72,)}, "no kernel in the catalog has head dim 72 (catalog has: 64, 96, 128, 192, 256)"),
    ({"archs": ("sm70",)}, "no kernel in the catalog has arch 'sm70'"),
    ({"preset": "nope"}, "unknown preset 'nope'"),
    ({"kernel_globs": ("*sm100*",)}, "--kernels '*sm100*' matches no kernel in the catalog"),
])
def test_bad_criteria_say_what_exists(criteria, message):
    with pytest.raises(SelectionError, match=re.escape(message)):
        select(load_catalog(), Selection(**criteria))


def run_build_py(*args):
    return subprocess.run([sys.executable, "build.py", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True)


def test_list_marks_the_selection():
    out = run_build_py("--list", "--hdim", "256", "--direction", "fwd", "--arch", "sm80").stdout.splitlines()
    assert "* flash_fwd_hdim256_bf16_sm80" in out and "  flash_fwd_hdim64_fp16_sm80" in out
    assert "  flash_bwd_hdim256_bf16_sm80" in out
    assert out[-1] == f"(2 of {len(load_catalog().kernels)} selected)"


def test_dry_run_compiles_nothing(tmp_path):
    result = run_build_py("--kernels", "flash_fwd_hdim64_fp16_sm80", "--dry-run", "--build-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "NVCC flash_fwd_hdim64_fp16_sm80" in result.stdout
    assert "dry run: 4 step(s) would run; nothing compiled" in result.stdout
    assert not list(tmp_path.glob("obj/*.o")) and not list(tmp_path.glob("_C*"))


def test_cli_errors_exit_2_with_a_message():
    result = run_build_py("--dtype", "fp32")
    assert result.returncode == 2 and "no kernel in the catalog has dtype 'fp32'" in result.stderr


class FakeToolchain:
    nvcc, cxx = "/cuda/bin/nvcc", "c++"
    nvcc_flags, binding_flags, host_flags, link_flags = ["-O3"], ["-O2", "-I/torch"], ["-O2"], ["-ltorch"]


def test_ninja_text_uses_each_kernels_arch_flags(tmp_path):
    kernels = tuple(load_catalog().kernels[:2])
    plan = BuildPlan(kernels=kernels, build_dir=tmp_path, generated_dir=paths.GENERATED, extension=tmp_path / "_C.so")
    text = ninja_text(plan, FakeToolchain())
    for spec in kernels:
        assert f"build {tmp_path}/obj/{spec.name}.o: nvcc {paths.GENERATED}/{spec.name}.cu" in text
    assert text.count("gencode = " + " ".join(ARCHS["sm80"].gencode)) == 2
    assert "compute_90,code=sm_90" in text  # sm80-family kernels also carry H100 machine code
    assert f"build {tmp_path}/_C.so: link" in text and "-MD -MF $out.d" in text
