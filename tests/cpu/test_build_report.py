"""The build report: ptxas -v output and ninja's log parsed, the table and its spill flag, and
the nvcc rule's shell (ptxas lines to a log, everything else shown) run on a tiny kernel."""
import subprocess

from gen import report
from gen.ninja import BuildPlan, ninja_text
from gen.toolchain import Toolchain, ninja_command

PTXAS = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z10fwd_kernelILi64EEv6Params' for 'sm_80'
ptxas info    : Function properties for _Z10fwd_kernelILi64EEv6Params
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 360 bytes cmem[0]
ptxas info    : Compile time = 1234.5 ms
ptxas info    : Compiling entry function '_Z10bwd_kernelILi64EEv6Params' for 'sm_80'
ptxas info    : Function properties for _Z10bwd_kernelILi64EEv6Params
    24 bytes stack frame, 40 bytes spill stores, 36 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 1024 bytes smem, 360 bytes cmem[0]
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z10fwd_kernelILi64EEv6Params' for 'sm_90'
ptxas info    : Function properties for _Z10fwd_kernelILi64EEv6Params
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 170 registers, used 1 barriers
"""

NINJA_LOG = """\
# ninja log v7
12\t52012\t1700000000000000000\t/b/obj/flash_fwd_hdim64_fp16_sm80.o\tabc
52013\t53500\t1700000000000000001\t/b/obj/binding.o\tdef
60000\t61000\t1700000000000000002\t/b/obj/flash_fwd_hdim64_fp16_sm80.o\tabd
"""


def test_parse_ptxas_per_function_and_target():
    functions = report.parse_ptxas(PTXAS)
    fwd80 = functions[("_Z10fwd_kernelILi64EEv6Params", "sm_80")]
    bwd80 = functions[("_Z10bwd_kernelILi64EEv6Params", "sm_80")]
    fwd90 = functions[("_Z10fwd_kernelILi64EEv6Params", "sm_90")]
    assert (fwd80.registers, fwd80.spill_stores, fwd80.static_smem) == (168, 0, 0)
    assert (bwd80.registers, bwd80.stack, bwd80.spill_stores, bwd80.spill_loads, bwd80.static_smem) == (
        255, 24, 40, 36, 1024)
    assert fwd90.registers == 170 and len(functions) == 3


def test_ninja_log_keeps_each_outputs_last_step():
    assert report.parse_ninja_log(NINJA_LOG) == {"/b/obj/flash_fwd_hdim64_fp16_sm80.o": 1.0, "/b/obj/binding.o": 1.487}


def test_report_from_a_build_dir_flags_the_spilling_kernel(tmp_path):
    names = ["flash_fwd_hdim64_fp16_sm80", "flash_bwd_hdim64_fp16_sm80"]
    (tmp_path / "selected_kernels.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "obj").mkdir()
    lines = PTXAS.splitlines(keepends=True)
    (tmp_path / "obj" / f"{names[0]}.o.ptxas.log").write_text("".join(lines[:6] + lines[10:]))  # fwd, 2 targets
    (tmp_path / "obj" / f"{names[1]}.o.ptxas.log").write_text("".join(lines[6:10]))
    (tmp_path / ".ninja_log").write_text(NINJA_LOG.replace("/b/", f"{tmp_path}/"))
    reports = report.collect(tmp_path, {names[0]: 49152})
    assert [r.name for r in reports] == names and [r.spills for r in reports] == [False, True]
    table = report.format_table(reports).splitlines()
    assert table[0].split() == ["kernel", "compile", "s", "target", "registers", "spill", "st/ld", "B", "stack", "B",
                                "smem", "B", "static+plan"]
    assert table[1].split() == [names[0], "1.0", "sm_80", "168", "0/0", "0", "0+49152"]
    assert table[2].split() == ["sm_90", "170", "0/0", "0", "0+49152"]
    assert table[3].split() == [names[1], "?", "sm_80", "255", "40/36", "24", "1024+?", "<<", "SPILLS"]
    assert table[-1] == f"2 kernel(s), 1 s of compiling in all; 1 spill: {names[1]}"


def test_nvcc_rule_logs_ptxas_and_shows_the_rest(tmp_path):
    toolchain = Toolchain()
    text = ninja_text(BuildPlan((), tmp_path, tmp_path, tmp_path / "_C.so"), toolchain)
    rule = text[text.index("rule nvcc"):text.index("rule cxx")]
    good, bad = tmp_path / "good.cu", tmp_path / "bad.cu"
    good.write_text("#warning \"a warning stays visible\"\n__global__ void k(float* x) { x[threadIdx.x] = 1; }\n")
    bad.write_text("__global__ void k(float* x) { x[threadIdx.x] = undeclared; }\n")
    (tmp_path / "build.ninja").write_text(
        f"nvcc = {toolchain.nvcc}\nnvcc_flags = -Xptxas=-v\n{rule}\n"
        f"build good.o: nvcc {good}\n  gencode = -arch=sm_80\n  kernel = good\n"
        f"build bad.o: nvcc {bad}\n  gencode = -arch=sm_80\n  kernel = bad\n")
    ok = subprocess.run(ninja_command() + ["-C", str(tmp_path), "good.o"], capture_output=True, text=True)
    assert ok.returncode == 0 and "a warning stays visible" in ok.stdout and "ptxas info" not in ok.stdout
    functions = report.parse_ptxas((tmp_path / "good.o.ptxas.log").read_text())
    assert functions[("_Z1kPf", "sm_80")].registers > 0
    failed = subprocess.run(ninja_command() + ["-C", str(tmp_path), "bad.o"], capture_output=True, text=True)
    assert failed.returncode != 0 and "undeclared" in failed.stdout
