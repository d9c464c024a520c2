"""Where the compilers, headers and libraries are, and the flags every object is built with."""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import sysconfig
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gen import paths


class ToolchainError(RuntimeError):
    pass


def cuda_home() -> Path:
    home = Path(os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda")
    if not (home / "bin" / "nvcc").exists():
        raise ToolchainError(f"nvcc not found under CUDA_HOME={home}: set CUDA_HOME to the CUDA toolkit "
                             "(e.g. export CUDA_HOME=/usr/local/cuda)")
    return home


def cutlass_include() -> Path:
    """CUTLASS/CuTe headers: $CUTLASS_INCLUDE, else the nvidia-cutlass PyPI package's copy."""
    if os.environ.get("CUTLASS_INCLUDE"):
        path = Path(os.environ["CUTLASS_INCLUDE"])
    else:
        try:
            import cutlass_library
        except ImportError:
            raise ToolchainError("CUTLASS headers not found: `pip install --no-deps nvidia-cutlass==4.2.0.0` "
                                 "or set CUTLASS_INCLUDE") from None
        path = Path(cutlass_library.__file__).parent / "source" / "include"
    if not (path / "cute" / "tensor.hpp").exists():
        raise ToolchainError(f"no cute/tensor.hpp under {path}")
    return path


def ninja_command() -> list[str]:
    exe = shutil.which("ninja")
    if exe is None:
        raise ToolchainError("ninja not found: `pip install ninja`")
    return [exe]


@dataclass(frozen=True)
class Toolchain:
    """Flags for the three kinds of build step: kernels (nvcc), host C++ (c++), link."""

    @cached_property
    def cuda(self) -> Path:
        return cuda_home()

    @property
    def nvcc(self) -> str:
        return str(self.cuda / "bin" / "nvcc")

    @property
    def cxx(self) -> str:
        return os.environ.get("CXX", "c++")

    @cached_property
    def nvcc_flags(self) -> list[str]:
        # Kernel files include only CUDA, CuTe and our headers: no torch (it costs ~1 min each).
        # CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED: wgmma N of every multiple of 8 (the sm90 forward's
        # 80- and 112-key blocks), not only multiples of 32. -Xptxas=-v: registers, spills and
        # shared memory per kernel, for the build report.
        # FLASHGEN_NVCC_FLAGS: more flags for an experiment (an A/B build of a -D switch or a ptxas
        # option); they land in the ninja file, so a build dir rebuilds when they change.
        return ["-std=c++17", "-O3", "--use_fast_math", "--expt-relaxed-constexpr", "-DNDEBUG",
                "-DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED",
                "-Xcompiler=-fPIC", "-Xptxas=-v", f"-I{paths.CSRC}", f"-I{cutlass_include()}",
                *shlex.split(os.environ.get("FLASHGEN_NVCC_FLAGS", ""))]

    @cached_property
    def _torch(self):
        os.environ.setdefault("CUDA_HOME", str(self.cuda))  # torch guesses otherwise
        # Without a GPU torch warns that it found no CUDA runtime; the build needs none.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        import torch
        from torch.utils import cpp_extension
        try:
            includes = cpp_extension.include_paths(device_type="cpu")
            libdirs = cpp_extension.library_paths(device_type="cpu")
        except TypeError:  # older torch: include_paths(cuda=False)
            includes, libdirs = cpp_extension.include_paths(), cpp_extension.library_paths()
        return torch, includes, libdirs

    @cached_property
    def binding_flags(self) -> list[str]:
        torch, includes, _ = self._torch
        # torch >= 2.12 headers require C++20.
        return (["-std=c++20", "-O2", "-fPIC", "-DTORCH_EXTENSION_NAME=_C", "-DTORCH_API_INCLUDE_EXTENSION_H",
                 f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
                 f"-I{paths.CSRC}", f"-I{self.cuda / 'include'}", f"-I{sysconfig.get_paths()['include']}"]
                + [f"-isystem{p}" for p in includes])

    @cached_property
    def host_flags(self) -> list[str]:
        """The dispatch table: plain C++, no torch."""
        return ["-std=c++17", "-O2", "-fPIC", f"-I{paths.CSRC}", f"-I{self.cuda / 'include'}"]

    @cached_property
    def link_flags(self) -> list[str]:
        _, _, libdirs = self._torch
        cuda_lib = self.cuda / "lib64"
        return ([f"-L{d}" for d in libdirs] + [f"-Wl,-rpath,{d}" for d in libdirs]
                + [f"-L{cuda_lib}", f"-Wl,-rpath,{cuda_lib}",
                   "-lc10", "-lc10_cuda", "-ltorch", "-ltorch_cpu", "-ltorch_python", "-lcudart", "-ldl"])

    @cached_property
    def kernel_library_flags(self) -> list[str]:
        """A JIT kernel's own shared library: CUDA runtime only, no torch. -Bsymbolic binds its
        calls to its own template instances, never to a same-named one loaded before it; -z defs
        turns a missing symbol into a link error instead of a load error."""
        cuda_lib = self.cuda / "lib64"
        return [f"-L{cuda_lib}", f"-Wl,-rpath,{cuda_lib}", "-Wl,-Bsymbolic", "-Wl,-z,defs", "-lcudart"]

    @staticmethod
    def extension_suffix() -> str:
        return sysconfig.get_config_var("EXT_SUFFIX") or ".so"
