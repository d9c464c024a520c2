"""The one naming function of flashgen, and its inverse.

A kernel's name is its identity everywhere: generated file names, ninja targets, dispatch
entries, `build.py --kernels` globs and runtime error messages all use `KernelKey.name`.
Pure Python (no torch), so the generator can import it cheaply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DIRECTIONS = ("fwd", "bwd")
DTYPES = ("fp16", "bf16")
ARCHS = ("sm80", "sm90")

_NAME_RE = re.compile(r"flash_(?P<direction>[a-z]+)_hdim(?P<hdim>\d+)_(?P<dtype>[a-z0-9]+)_(?P<arch>sm\d+)")


@dataclass(frozen=True, order=True)
class KernelKey:
    direction: str
    hdim: int
    dtype: str
    arch: str

    def __post_init__(self) -> None:
        for field, value, allowed in (
            ("direction", self.direction, DIRECTIONS),
            ("dtype", self.dtype, DTYPES),
            ("arch", self.arch, ARCHS),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {field} {value!r} (allowed: {', '.join(allowed)})")

    @property
    def name(self) -> str:
        return f"flash_{self.direction}_hdim{self.hdim}_{self.dtype}_{self.arch}"

    @property
    def launcher(self) -> str:
        """C++ symbol of the instantiation's launch function."""
        return f"run_{self.name}"

    @classmethod
    def parse(cls, name: str) -> "KernelKey":
        match = _NAME_RE.fullmatch(name)
        if match is None:
            raise ValueError(f"not a flashgen kernel name: {name!r} "
                             "(expected flash_{fwd|bwd}_hdim{D}_{fp16|bf16}_sm{80|90})")
        return cls(match["direction"], int(match["hdim"]), match["dtype"], match["arch"])

    def __str__(self) -> str:
        return self.name
