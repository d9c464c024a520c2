"""gen/axes.py is the one table of the catalog's axes: its facts, and that the rest derives from it."""
import ast
import subprocess
import sys
from pathlib import Path

import torch

from flashgen import dispatch
from flashgen.naming import KernelKey
from gen import paths
from gen.axes import ARCH_PREFERENCE, ARCHS, AXES, AXIS, DIRECTIONS, DTYPES, FEATURES, OLDEST_CAPABILITY
from gen.families import FAMILIES

ROOT = Path(__file__).resolve().parents[2]


def test_the_axes_in_name_order():
    assert [axis.name for axis in AXES] == ["direction", "hdim", "dtype", "arch", "features"]
    assert [axis.flag for axis in AXES] == ["--direction", "--hdim", "--dtype", "--arch", "--features"]
    assert list(FEATURES) == ["softcap", "window", "varlen"]
    key = KernelKey("bwd", 64, "bf16", "sm80", ("varlen",))
    assert key.name.split("_")[1:] == [t for axis in AXES for t in axis.name_tokens(getattr(key, axis.name))]


def test_arch_facts():
    assert ARCHS["sm80"].gencode == ("-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90")
    assert ARCHS["sm90"].gencode == ("-gencode=arch=compute_90a,code=sm_90a",)
    assert [ARCHS["sm90"].runs_on(c) for c in ((8, 0), (9, 0), (10, 0))] == [False, True, False]
    assert [ARCHS["sm80"].runs_on(c) for c in ((7, 5), (8, 0), (8, 6), (9, 0), (12, 0))] == [False, True, True, True, True]
    assert ARCH_PREFERENCE == ("sm90", "sm80") and OLDEST_CAPABILITY == (8, 0)


def test_dtype_facts_reach_torch_and_cutlass():
    assert dispatch.TORCH_DTYPES == {"fp16": torch.float16, "bf16": torch.bfloat16}
    assert dispatch.TORCH_DTYPE_NAMES == {torch.float16: "fp16", torch.bfloat16: "bf16"}
    assert {name: (d.cpp, d.bytes) for name, d in DTYPES.items()} == {
        "fp16": ("cutlass::half_t", 2), "bf16": ("cutlass::bfloat16_t", 2)}


def test_every_kernel_family_sits_on_the_axes():
    for direction, arch in FAMILIES:
        assert direction in DIRECTIONS and arch in ARCHS


def test_axis_spellings_for_flags_and_messages():
    features = AXIS["features"]
    assert features.flag_values("window,softcap") == (("window", "softcap"),)
    assert features.flag_values("none") == ((),)
    assert features.canonical(frozenset({"varlen", "softcap"})) == ("softcap", "varlen")
    assert [features.text(v) for v in ((), ("softcap", "window"))] == ["none", "softcap,window"]
    assert AXIS["hdim"].flag_values("64,128") == (64, 128)
    assert AXIS["dtype"].flag_values("bf16,fp16") == ("bf16", "fp16")
    assert AXIS["hdim"].allowed() == "multiples of 8 from 8 to 256"


def test_build_py_has_a_filter_flag_per_axis():
    out = subprocess.run([sys.executable, "build.py", "--help"], cwd=paths.REPO_ROOT, capture_output=True,
                         text=True).stdout
    text = " ".join(out.split())  # argparse wraps help lines
    for axis in AXES:
        assert f"{axis.flag} {axis.name.upper()}" in text
        assert axis.allowed() in text


# A vocabulary is declared in gen/axes.py only: elsewhere in the generator and the runtime, a
# literal list, tuple, set or mapping holding two values of one vocabulary, an nvcc target or a
# CUTLASS element type is a second copy that will drift.
_DECLARES = ("compute_", "code=sm_", "cutlass::half_t", "cutlass::bfloat16_t")


def _second_copies(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(d in node.value for d in _DECLARES):
            found.append(f"{path.name}:{node.lineno}: {node.value!r}")
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            items = [*node.keys, *node.values] if isinstance(node, ast.Dict) else node.elts
            strings = {item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)}
            for vocabulary in (DIRECTIONS, DTYPES, ARCHS, FEATURES):
                if len(strings & set(vocabulary)) >= 2:
                    found.append(f"{path.name}:{node.lineno}: {sorted(strings)}")
    return found


def test_no_second_copy_of_a_vocabulary():
    sources = [*ROOT.glob("gen/*.py"), *ROOT.glob("flashgen/*.py"), ROOT / "build.py"]
    found = [hit for path in sources if path.name != "axes.py" or path.parent.name != "gen"
             for hit in _second_copies(path)]
    assert found == []
    assert _second_copies(ROOT / "gen" / "axes.py")  # the check finds the declarations themselves


def test_gencode_for_keeps_the_targets_the_gpus_run():
    sm80, sm90 = ARCHS["sm80"], ARCHS["sm90"]
    assert sm80.gencode_for([(9, 0)]) == ("-gencode=arch=compute_90,code=sm_90",)     # an H100: half the compile
    assert sm80.gencode_for([(8, 6)]) == ("-gencode=arch=compute_80,code=sm_80",)     # an RTX 30: sm_80 code runs
    assert sm80.gencode_for([(8, 0), (9, 0)]) == sm80.gencode                          # an A100 and an H100
    assert sm80.gencode_for([]) == sm80.gencode                                        # no GPU: every target
    assert sm80.gencode_for([(7, 5)]) == sm80.gencode                                  # none runs there: every target
    assert sm90.gencode_for([(9, 0)]) == sm90.gencode
