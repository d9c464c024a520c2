"""Build-time facts about each name in flashgen.naming's vocabularies.

Spellings are looked up here, never assembled on the spot.
"""
from __future__ import annotations

from dataclasses import dataclass

from flashgen.naming import ARCHS, DTYPES


@dataclass(frozen=True)
class DtypeInfo:
    cpp: str          # CUTLASS element type
    bytes: int


@dataclass(frozen=True)
class ArchInfo:
    gencode: tuple[str, ...]   # nvcc flags
    smem_limit_bytes: int      # dynamic shared memory one CTA may opt into on every such GPU
    smem_max_bytes: int        # ... on the largest: a plan may use more than the limit only if
                               # its launcher falls back to one that fits the limit


DTYPE_INFO = {
    "fp16": DtypeInfo(cpp="cutlass::half_t", bytes=2),
    "bf16": DtypeInfo(cpp="cutlass::bfloat16_t", bytes=2),
}

ARCH_INFO = {
    # sm80-family kernels run on every GPU from the A100 on, so they are also compiled to
    # sm_90 machine code for the H100. The limit is the A100's (163 KB per CTA), the most the
    # H100's (227 KB).
    "sm80": ArchInfo(
        gencode=("-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90"),
        smem_limit_bytes=163 * 1024, smem_max_bytes=227 * 1024,
    ),
    # wgmma and setmaxnreg exist only in the arch-specific sm_90a target (227 KB per CTA).
    "sm90": ArchInfo(gencode=("-gencode=arch=compute_90a,code=sm_90a",), smem_limit_bytes=227 * 1024,
                     smem_max_bytes=227 * 1024),
}

assert set(DTYPE_INFO) == set(DTYPES) and set(ARCH_INFO) == set(ARCHS)
