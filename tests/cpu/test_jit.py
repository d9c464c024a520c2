"""Compiling on first use, without nvcc: the cache (miss, then a hit with no compile), the lock
(concurrent processes compile once), the messages, the disabled path, and where dispatch calls
it. The compiler is a stand-in here; tests/cpu/test_compile.py runs the real one."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from flashgen import _ext, dispatch, jit, locations, ops  # noqa: F401 - ops registers flashgen::fwd
from flashgen.errors import ExtensionNotBuiltError, KernelBuildError, KernelNotBuiltError
from gen import jit as jit_build
from gen import paths
from gen.ninja import KernelLibraryPlan, kernel_library_ninja_text
from gen.render import render_jit_entry
from gen.spec import load_catalog, parse_catalog
from gen.toolchain import Toolchain
from gen.axes import ARCHS

KERNEL = "flash_fwd_hdim64_fp16_sm80"


@pytest.fixture(scope="module")
def spec():
    return load_catalog().by_name()[KERNEL]


@pytest.fixture
def fake_compiler(monkeypatch):
    """Replaces ninja with a stand-in that 'links' the library; returns the folders it built."""
    built = []

    def compile(folder, what):
        built.append(folder)
        (folder / f"lib{KERNEL}.so").write_text("not a real library")
    monkeypatch.setattr(jit_build, "run_ninja", compile)
    return built


def test_targets_are_those_the_gpu_runs():
    sm80 = ARCHS["sm80"].gencode
    assert jit_build.targets("sm80", (9, 0)) == ("-gencode=arch=compute_90,code=sm_90",)
    assert jit_build.targets("sm80", (8, 6)) == ("-gencode=arch=compute_80,code=sm_80",)
    assert jit_build.targets("sm80", None) == sm80  # no GPU: what build.py compiles
    assert jit_build.targets("sm90", (9, 0)) == ARCHS["sm90"].gencode


def test_entry_point_carries_the_registry_entry():
    bwd = load_catalog().by_name()["flash_bwd_hdim128_bf16_sm80"]
    text = render_jit_entry(bwd)
    assert 'extern "C" int flashgen_kernel_entry_v1(' in text
    assert (f'{{"flash_bwd_hdim128_bf16_sm80", nullptr, &flashgen::run_flash_bwd_hdim128_bf16_sm80, '
            f'{bwd.tile.block_m}, {bwd.tile.block_n}}}') in text
    assert "cudaError_t run_flash_bwd_hdim128_bf16_sm80(const BwdParams&, cudaStream_t);" in text


def test_library_builds_with_the_extensions_flags_and_links_no_torch(spec, tmp_path):
    toolchain = Toolchain()
    lib = KernelLibraryPlan(spec, tmp_path, jit_build.targets("sm80", (8, 0)))
    text = kernel_library_ninja_text(lib, toolchain)
    assert f"nvcc_flags = {' '.join(toolchain.nvcc_flags)}" in text
    assert f"build {tmp_path}/obj/{KERNEL}.cu.o: nvcc {tmp_path}/{KERNEL}.cu" in text
    assert "gencode = -gencode=arch=compute_80,code=sm_80\n" in text
    assert f"build {tmp_path}/lib{KERNEL}.so: link" in text
    assert "torch" not in text.split("link_flags = ")[1].splitlines()[0]


def test_miss_compiles_and_says_so_then_a_fresh_lookup_hits(spec, tmp_path, fake_compiler, capsys):
    library = jit_build.kernel_library(spec, tmp_path, (8, 0))
    err = capsys.readouterr().err
    assert library.exists() and library.parent.parent == tmp_path and len(fake_compiler) == 1
    assert f"flashgen: compiling {KERNEL} on first use, once (cached in {library.parent})" in err
    assert f"flashgen: compiled {KERNEL} in " in err
    # Rendered sources and the ninja file sit beside the library, for a look at what was built.
    assert {p.name for p in library.parent.iterdir()} >= {f"{KERNEL}.cu", f"{KERNEL}_entry.cpp", "build.ninja"}
    # No state survives in memory between lookups: the second one is a later process's.
    assert jit_build.kernel_library(spec, tmp_path, (8, 0)) == library
    assert len(fake_compiler) == 1 and capsys.readouterr().err == ""


def test_another_gpu_or_changed_sources_get_their_own_folder(spec, tmp_path, fake_compiler):
    a = jit_build.kernel_library(spec, tmp_path, (8, 0))
    b = jit_build.kernel_library(spec, tmp_path, (9, 0))
    assert a.parent != b.parent and len(fake_compiler) == 2
    assert jit_build.fingerprint("x") != jit_build.fingerprint("y")


_BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from gen import jit
    from gen.spec import load_catalog, parse_catalog

    def slow_compile(folder, what):  # long enough for the other process to reach the lock
        with open(sys.argv[2], "a") as log:
            log.write("compile\\n")
        time.sleep(2)
        (folder / "lib{kernel}.so").write_text("not a real library")

    jit.run_ninja = slow_compile
    print(jit.kernel_library(load_catalog().by_name()["{kernel}"], Path(sys.argv[1]), (8, 0)))
""").replace("{kernel}", KERNEL)


def test_concurrent_processes_compile_once(tmp_path):
    compiles = tmp_path / "compiles.log"
    env = dict(os.environ, PYTHONPATH=str(paths.REPO_ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", _BUILDER, str(tmp_path / "cache"), str(compiles)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert compiles.read_text() == "compile\n"
    assert results[0][0] == results[1][0]  # both found the same library
    errs = "".join(err for _, err in results)
    assert errs.count(f"compiling {KERNEL} on first use") == 1
    assert f"waiting for another process compiling {KERNEL}" in errs


def test_a_failed_compile_shows_the_output_and_the_alternatives(tmp_path):
    (tmp_path / "build.ninja").write_text("rule fail\n  command = echo 'nvcc: deliberate error' && false\n"
                                          "build out: fail\n")
    with pytest.raises(KernelBuildError) as info:
        jit_build.run_ninja(tmp_path, KERNEL)
    message = str(info.value)
    assert f"compiling {KERNEL} failed (log: {tmp_path / 'build.log'})" in message
    assert "nvcc: deliberate error" in message and "python build.py" in message and "FLASHGEN_JIT=0" in message
    assert "deliberate error" in (tmp_path / "build.log").read_text()


@pytest.mark.parametrize("value,on", [(None, True), ("1", True), ("0", False), ("off", False), ("False", False)])
def test_flashgen_jit_switch(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv("FLASHGEN_JIT", raising=False)
    else:
        monkeypatch.setenv("FLASHGEN_JIT", value)
    assert jit.enabled() is on


def test_cache_dir_follows_flashgen_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASHGEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FLASHGEN_BUILD_DIR", str(tmp_path / "elsewhere"))  # the AOT build's, not the JIT's
    assert locations.jit_dir().parent.parent.parent == tmp_path and locations.jit_dir().name == "jit"


# Dispatch, with the extension's lists stubbed as in test_dispatch_and_inputs.py.
class FakeExtension:
    def __init__(self):
        self.loaded = []

    def load_kernel(self, path):
        self.loaded.append(path)


@pytest.fixture
def unbuilt(monkeypatch):
    """Nothing built; jit.load_kernel records what it was asked for and 'loads' it."""
    loaded = []
    monkeypatch.setattr(dispatch, "available_kernels", lambda: list(loaded))
    monkeypatch.setattr(dispatch, "catalog_kernels", lambda: [KERNEL, "flash_fwd_hdim64_fp16_sm90"])
    monkeypatch.setattr(dispatch, "extension", FakeExtension)
    monkeypatch.setattr(jit, "load_kernel", lambda ext, key, capability: loaded.append(key.name))
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()
    yield loaded
    dispatch._kernel_sets.cache_clear()
    dispatch._choose.cache_clear()


def test_dispatch_compiles_the_best_catalog_kernel_when_none_is_built(unbuilt, monkeypatch):
    monkeypatch.setenv("FLASHGEN_JIT", "1")
    assert dispatch.choose_kernel("fwd", 64, torch.float16, (8, 0)).name == KERNEL
    assert unbuilt == [KERNEL]
    # Now built: an sm80 call does not compile again, and a Hopper call compiles its own family.
    assert dispatch.choose_kernel("fwd", 48, torch.float16, (8, 0)).name == KERNEL
    assert dispatch.choose_kernel("fwd", 64, torch.float16, (9, 0)).name == KERNEL  # a built one is kept
    assert unbuilt == [KERNEL]


def test_disabled_raises_with_the_build_command(unbuilt, monkeypatch):
    monkeypatch.setenv("FLASHGEN_JIT", "0")
    with pytest.raises(KernelNotBuiltError) as info:
        dispatch.choose_kernel("fwd", 64, torch.float16, (8, 0))
    assert f"Add it with: python build.py --add {KERNEL} (compiling on first use is off: FLASHGEN_JIT=0)" \
        in str(info.value)
    assert unbuilt == []


def test_tracing_never_compiles(unbuilt, monkeypatch):
    monkeypatch.setenv("FLASHGEN_JIT", "1")
    with FakeTensorMode():
        q = torch.empty(1, 8, 2, 64, dtype=torch.float16, device="cuda")
        torch.ops.flashgen.fwd(q, q, q, False, 0.125, None, False)
    assert unbuilt == []


def test_extension_older_than_jit_asks_for_a_rebuild(spec):
    with pytest.raises(KernelNotBuiltError, match="predates compiling on first use: rebuild it with `python build.py`"):
        jit.load_kernel(object(), spec.key, (8, 0))


def test_a_variants_build_command_names_its_features(monkeypatch):
    variants = parse_catalog(textwrap.dedent("""\
        kernels:
          - {direction: fwd, arch: sm80, dtypes: [fp16], features: [[], [softcap]],
             tiles: {64: {block_m: 128, block_n: 64, warps: 4}}}
        presets: {default: ["*"], all: ["*"]}
        """))
    monkeypatch.setattr(jit, "_catalog", lambda: variants)
    softcap = variants.by_name()[f"{KERNEL}_softcap"].key
    with pytest.raises(KernelNotBuiltError, match=f"`python build.py --add {KERNEL} --features softcap`$"):
        jit.load_kernel(object(), softcap, (8, 0))


def test_no_build_at_all(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASHGEN_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "binding_path", lambda: (_ for _ in ()).throw(RuntimeError("building the binding")))
    _ext.extension.cache_clear()
    try:
        monkeypatch.setenv("FLASHGEN_JIT", "0")
        with pytest.raises(ExtensionNotBuiltError, match="not built .* unset FLASHGEN_JIT=0"):
            _ext.extension()
        monkeypatch.setenv("FLASHGEN_JIT", "1")  # then the binding comes from the JIT cache
        with pytest.raises(RuntimeError, match="building the binding"):
            _ext.extension()
    finally:
        _ext.extension.cache_clear()
