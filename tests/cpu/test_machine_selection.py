"""build.py with no selection flags: the default preset's families that the visible GPUs run."""
import subprocess
import sys

from gen import paths
from gen.machine import machine_selection
from gen.select import Selection, select
from gen.spec import load_catalog

H200, A100 = ("NVIDIA H200", (9, 0)), ("NVIDIA A100-SXM4-80GB", (8, 0))


def archs_built(gpus):
    selection, why = machine_selection(gpus)
    return sorted({k.key.arch for k in select(load_catalog(), selection)}), why


def test_hopper_builds_both_families():
    archs, why = archs_built([H200])
    assert archs == ["sm80", "sm90"]
    assert why.startswith("NVIDIA H200 (compute capability 9.0): building the default preset's sm90 and sm80 kernels")


def test_ampere_builds_sm80_only():
    assert archs_built([A100]) == (["sm80"], "NVIDIA A100-SXM4-80GB (compute capability 8.0): building the "
                                   "default preset's sm80 kernels (a selection flag, e.g. --preset all or --arch, overrides)")
    assert archs_built([A100, H200])[0] == ["sm80", "sm90"]  # any GPU's families


def test_a_catalog_without_a_family_builds_the_families_it_has():
    # A tuning catalog of sm90 kernels on a Hopper machine: its sm90 kernels, not an error for
    # want of sm80 ones (session 8's first A/B builds failed so).
    selection, why = machine_selection([H200], frozenset({"sm90"}))
    assert selection == Selection(preset="default", filters={"arch": ("sm90",)})
    assert "building the default preset's sm90 kernels" in why
    selection, why = machine_selection([A100], frozenset({"sm90"}))
    assert selection == Selection(preset="default") and "runs none of the catalog's families (sm90)" in why


def test_no_gpu_or_too_old_builds_the_default_preset():
    assert machine_selection([]) == (Selection(preset="default"), "no GPU visible: building the default preset "
                                     "(a selection flag, e.g. --preset all or --arch, overrides)")
    selection, why = machine_selection([("Tesla V100", (7, 0))])
    assert selection == Selection(preset="default") and "runs no flashgen kernel family" in why


def test_build_py_says_what_it_chose_and_flags_override():
    def list_(*args):
        return subprocess.run([sys.executable, "build.py", "--list", *args], cwd=paths.REPO_ROOT,
                              capture_output=True, text=True).stdout.splitlines()
    out = list_()
    assert out[0].startswith(("no GPU visible", "NVIDIA")) and out[0].endswith("overrides)")
    assert list_("--arch", "sm80")[0][2:].startswith("flash_")  # a flag: no machine default, no message
