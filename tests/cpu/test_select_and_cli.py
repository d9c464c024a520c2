"""Selection semantics, build.py --list / --dry-run, and the ninja text."""
import re
import subprocess
import sys

import pytest

from flashgen.build_command import add_command
from flashgen.naming import KernelKey
from gen import paths
from gen.ninja import BuildPlan, ninja_text
from gen.select import Selection, SelectionError, add_to, select
from gen.spec import load_catalog
from gen.axes import ARCHS


def names(preset=None, kernel_globs=None, **filters):
    return [k.name for k in select(load_catalog(), Selection(preset, filters, kernel_globs))]


def test_no_criteria_means_the_default_preset():
    catalog = load_catalog()
    assert names() == [k.name for k in catalog.expand(catalog.presets["default"])]


def test_filters_intersect():
    assert names(hdim=(128, 256), dtype=("bf16",), direction=("fwd",), arch=("sm80",)) == [
        "flash_fwd_hdim128_bf16_sm80", "flash_fwd_hdim256_bf16_sm80"]
    assert names(hdim=(256,), dtype=("fp16",)) == [
        "flash_bwd_hdim256_fp16_sm80", "flash_bwd_hdim256_fp16_sm90", "flash_bwd_hdim256_fp16_sm90_softcap_window",
        "flash_fwd_hdim256_fp16_sm80", "flash_fwd_hdim256_fp16_sm90", "flash_fwd_hdim256_fp16_sm90_softcap_window"]
    assert names(hdim=(256,), dtype=("fp16",), features=((),)) == [
        "flash_bwd_hdim256_fp16_sm80", "flash_bwd_hdim256_fp16_sm90",
        "flash_fwd_hdim256_fp16_sm80", "flash_fwd_hdim256_fp16_sm90"]
    assert names(dtype=("bf16",), features=(("window", "softcap"),)) == [
        "flash_bwd_hdim256_bf16_sm90_softcap_window", "flash_fwd_hdim256_bf16_sm90_softcap_window"]
    assert names(preset="sm80", direction=("fwd",), hdim=(64,)) == [
        "flash_fwd_hdim64_bf16_sm80", "flash_fwd_hdim64_fp16_sm80"]


def test_kernel_globs_match_anywhere_in_the_name():
    assert names(kernel_globs=("fwd*hdim256*sm80",)) == ["flash_fwd_hdim256_bf16_sm80", "flash_fwd_hdim256_fp16_sm80"]
    assert names(kernel_globs=("fwd_hdim64_fp16", "flash_fwd_hdim96_bf16_sm80")) == [
        "flash_fwd_hdim64_fp16_sm80", "flash_fwd_hdim64_fp16_sm90", "flash_fwd_hdim96_bf16_sm80"]


@pytest.mark.parametrize("criteria,message", [
    ({"filters": {"hdim": (72,)}}, "no kernel in the catalog has head dim 72 (catalog has: 64, 96, 128, 192, 256)"),
    ({"filters": {"hdim": (100,)}}, "unknown head dim 100 (allowed: multiples of 8 from 8 to 256)"),
    ({"filters": {"arch": ("sm70",)}}, "unknown arch 'sm70' (allowed: sm80, sm90)"),
    ({"filters": {"features": (("softcap",),)}}, "no kernel in the catalog has features 'softcap' (catalog has: none, softcap,window)"),
    ({"filters": {"features": (("varlen",),)}}, "no kernel in the catalog has features 'varlen' (catalog has: none, softcap,window)"),
    ({"filters": {"features": (("softcap", "tanh"),)}}, "unknown feature 'tanh' (allowed: softcap, window, varlen)"),
    ({"preset": "nope"}, "unknown preset 'nope'"),
    ({"kernel_globs": ("*sm100*",)}, "--kernels '*sm100*' matches no kernel in the catalog"),
])
def test_bad_criteria_say_what_exists(criteria, message):
    with pytest.raises(SelectionError, match=re.escape(message)):
        select(load_catalog(), Selection(**criteria))


def test_a_filter_names_an_axis():
    with pytest.raises(ValueError, match="no axis 'dtypes' \\(axes: direction, hdim, dtype, arch, features\\)"):
        Selection(filters={"dtypes": ("bf16",)})


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


def test_a_repeated_kernels_flag_adds_its_globs():
    out = run_build_py("--list", "--kernels", "flash_fwd_hdim64_fp16_sm80", "--kernels",
                       "flash_bwd_hdim128_bf16_sm80,flash_fwd_hdim96_bf16_sm80").stdout.splitlines()
    assert {"* flash_fwd_hdim64_fp16_sm80", "* flash_bwd_hdim128_bf16_sm80", "* flash_fwd_hdim96_bf16_sm80"} <= set(out)
    assert out[-1] == f"(3 of {len(load_catalog().kernels)} selected)"


def test_cli_errors_exit_2_with_a_message():
    result = run_build_py("--dtype", "fp32")
    assert result.returncode == 2 and "error: unknown dtype 'fp32' (allowed: fp16, bf16)" in result.stderr
    result = run_build_py("--list", "--dtype", "fp16", "--hdim", "72")
    assert result.returncode == 2 and "no kernel in the catalog has head dim 72" in result.stderr


class FakeToolchain:
    nvcc, cxx = "/cuda/bin/nvcc", "c++"
    nvcc_flags, binding_flags, host_flags, link_flags = ["-O3"], ["-O2", "-I/torch"], ["-O2"], ["-ltorch"]


def test_ninja_text_uses_each_kernels_arch_flags(tmp_path):
    catalog = load_catalog().kernels
    sm80 = [spec for spec in catalog if spec.key.arch == "sm80"][:2]
    sm90 = [spec for spec in catalog if spec.key.arch == "sm90"][:1]
    kernels = tuple(sm80 + sm90)
    plan = BuildPlan(kernels=kernels, build_dir=tmp_path, generated_dir=paths.GENERATED, extension=tmp_path / "_C.so")
    text = ninja_text(plan, FakeToolchain())
    for spec in kernels:
        assert (f"build {tmp_path}/obj/{spec.name}.o: nvcc {paths.GENERATED}/{spec.name}.cu\n"
                f"  gencode = {' '.join(ARCHS[spec.key.arch].gencode)}\n") in text
    assert text.count("gencode = " + " ".join(ARCHS["sm80"].gencode)) == 2
    assert text.count("gencode = " + " ".join(ARCHS["sm90"].gencode)) == 1
    assert "compute_90,code=sm_90" in text  # sm80-family kernels also carry H100 machine code
    assert f"build {tmp_path}/_C.so: link" in text and "-MD -MF $out.d" in text
    # Built on an H100 (build.py's default with a GPU visible): the sm80 kernels' sm_90 code only.
    on_h100 = ninja_text(BuildPlan(kernels=kernels, build_dir=tmp_path, generated_dir=paths.GENERATED,
                                   extension=tmp_path / "_C.so", capabilities=((9, 0),)), FakeToolchain())
    assert on_h100.count("gencode = -gencode=arch=compute_90,code=sm_90\n") == 2
    assert "code=sm_80" not in on_h100 and on_h100.count("code=sm_90a") == 1


# A catalog with feature variants of its own (kernels.yaml's are sm90 only).
VARIANTS = """\
kernels:
  - direction: fwd
    arch: sm80
    dtypes: [bf16]
    features: [[], [softcap], [softcap, window]]
    tiles:
      64: {block_m: 128, block_n: 64, warps: 4}
      128: {block_m: 128, block_n: 32, warps: 4}
presets:
  default: ["*"]
  all: ["*"]
"""


@pytest.fixture
def variants(tmp_path):
    path = tmp_path / "variants.yaml"
    path.write_text(VARIANTS)
    return path


def variant_names(catalog_path, **criteria):
    return [k.name for k in select(load_catalog(catalog_path), Selection(**criteria))]


def test_features_filter_takes_exact_variants(variants):
    assert variant_names(variants, filters={"features": (("window", "softcap"),)}) == [
        "flash_fwd_hdim64_bf16_sm80_softcap_window", "flash_fwd_hdim128_bf16_sm80_softcap_window"]
    assert variant_names(variants, filters={"features": ((), ("softcap",)), "hdim": (64,)}) == [
        "flash_fwd_hdim64_bf16_sm80", "flash_fwd_hdim64_bf16_sm80_softcap"]


def test_globs_match_variant_names(variants):
    assert variant_names(variants, kernel_globs=("*softcap*",), filters={"hdim": (128,)}) == [
        "flash_fwd_hdim128_bf16_sm80_softcap", "flash_fwd_hdim128_bf16_sm80_softcap_window"]
    assert variant_names(variants, kernel_globs=("fwd*hdim64*",)) == [
        "flash_fwd_hdim64_bf16_sm80", "flash_fwd_hdim64_bf16_sm80_softcap", "flash_fwd_hdim64_bf16_sm80_softcap_window"]


def test_build_py_features_flag(variants):
    def marked(*args):
        result = run_build_py("--catalog", str(variants), "--list", *args)
        assert result.returncode == 0, result.stderr
        return [line[2:] for line in result.stdout.splitlines() if line.startswith("* ")]
    assert marked("--features", "softcap,window") == [
        "flash_fwd_hdim64_bf16_sm80_softcap_window", "flash_fwd_hdim128_bf16_sm80_softcap_window"]
    assert marked("--features", "none", "--features", "softcap", "--hdim", "128") == [
        "flash_fwd_hdim128_bf16_sm80", "flash_fwd_hdim128_bf16_sm80_softcap"]
    assert marked("--kernels", "hdim64*softcap") == [
        "flash_fwd_hdim64_bf16_sm80_softcap", "flash_fwd_hdim64_bf16_sm80_softcap_window"]
    bad = run_build_py("--catalog", str(variants), "--list", "--features", "softcap,tanh")
    assert bad.returncode == 2 and bad.stderr == "error: unknown feature 'tanh' (allowed: softcap, window, varlen)\n"
    missing = run_build_py("--catalog", str(variants), "--list", "--features", "varlen")
    assert missing.returncode == 2 and "no kernel in the catalog has features 'varlen' (catalog has: none, " \
                                      "softcap, softcap,window)" in missing.stderr


def test_add_keeps_the_build_and_filters_only_what_it_adds(variants):
    catalog = load_catalog(variants)
    previous = ("flash_fwd_hdim128_bf16_sm80",)
    added = add_to(catalog, previous, Selection(kernel_globs=("flash_fwd_hdim64_bf16_sm80",),
                                                filters={"features": (("softcap",),)}))
    assert [k.name for k in added] == ["flash_fwd_hdim64_bf16_sm80_softcap", "flash_fwd_hdim128_bf16_sm80"]
    with pytest.raises(SelectionError, match="the build dir's last selection has flash_fwd_hdim96_bf16_sm80, "
                                             "which the catalog does not define"):
        add_to(catalog, ("flash_fwd_hdim96_bf16_sm80",), Selection(kernel_globs=("hdim64",)))


def test_the_not_built_errors_command_adds_exactly_that_kernel(variants, tmp_path):
    def selected_after(*args):
        result = run_build_py("--catalog", str(variants), "--build-dir", str(tmp_path / "build"), "--dry-run", *args)
        assert result.returncode == 0, result.stderr
        return (tmp_path / "build" / "selected_kernels.txt").read_text().split()
    assert selected_after("--kernels", "flash_fwd_hdim128_bf16_sm80", "--features", "none") == [
        "flash_fwd_hdim128_bf16_sm80"]
    keys = [k.key for k in load_catalog(variants).kernels]
    command = add_command(KernelKey.parse("flash_fwd_hdim64_bf16_sm80_softcap"), keys)
    assert command == "python build.py --add flash_fwd_hdim64_bf16_sm80 --features softcap"
    assert selected_after(*command.split()[2:]) == ["flash_fwd_hdim64_bf16_sm80_softcap", "flash_fwd_hdim128_bf16_sm80"]
    # The plain kernel's command pins the plain variant, its name being a prefix of the others'.
    command = add_command(KernelKey.parse("flash_fwd_hdim64_bf16_sm80"), keys)
    assert command == "python build.py --add flash_fwd_hdim64_bf16_sm80 --features none"
    assert selected_after(*command.split()[2:]) == [
        "flash_fwd_hdim64_bf16_sm80", "flash_fwd_hdim64_bf16_sm80_softcap", "flash_fwd_hdim128_bf16_sm80"]


def test_experiment_flags_from_the_environment_reach_nvcc(monkeypatch):
    from gen.toolchain import Toolchain
    monkeypatch.setenv("FLASHGEN_NVCC_FLAGS", "-DFLASHGEN_ROW_CHAINS=4 -Xptxas='--register-usage-level=10'")
    flags = Toolchain().nvcc_flags
    assert flags[-2:] == ["-DFLASHGEN_ROW_CHAINS=4", "-Xptxas=--register-usage-level=10"]
    monkeypatch.delenv("FLASHGEN_NVCC_FLAGS")
    assert not any("SERIAL" in f for f in Toolchain().nvcc_flags)
