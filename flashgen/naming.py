"""The one naming function of flashgen, and its inverse.

A kernel's name is its identity everywhere: generated file names, ninja targets, dispatch
entries, `build.py --kernels` globs and runtime error messages all use `KernelKey.name`.
The name spells each axis of gen.axes in order, `_`-separated, and then the kernel's features:
flash_fwd_hdim128_bf16_sm90 is the plain kernel, flash_fwd_hdim128_bf16_sm90_softcap_window its
variant with softcap and window. Pure Python (no torch), so the generator can import it cheaply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property

from gen.axes import AXES, AXIS

PREFIX = "flash"
_TOKEN = re.compile(r"[a-z0-9]+")
_ONE_VALUE_AXES = tuple(axis for axis in AXES if not axis.many)
_FEATURES = AXIS["features"]


def _expected_form() -> str:
    """The name's form, for errors: flash_{fwd|bwd}_hdim{D}_{fp16|bf16}_{sm80|sm90}[_{softcap|...}...]."""
    parts = [f"{axis.name_prefix}{{D}}" if axis.numeric else "{" + "|".join(axis.vocabulary) + "}"
             for axis in _ONE_VALUE_AXES]
    return "_".join([PREFIX, *parts]) + "[_{" + "|".join(_FEATURES.vocabulary) + "}...]"


@dataclass(frozen=True, order=True)
class KernelKey:
    direction: str
    hdim: int
    dtype: str
    arch: str
    features: tuple[str, ...] = ()   # in gen.axes.FEATURES order; () is the plain kernel

    def __post_init__(self) -> None:
        # Any collection of feature names is taken, stored in the order the name spells them.
        object.__setattr__(self, "features", _FEATURES.canonical(self.features))
        for axis in _ONE_VALUE_AXES:
            axis.check(getattr(self, axis.name))

    # Spelled once per key: dispatch hands the same cached key to the extension on every call.
    # (cached_property writes the instance's __dict__, which a frozen dataclass allows; the
    # fields alone still make equality, order and hash.)
    @cached_property
    def name(self) -> str:
        tokens = [token for axis in AXES for token in axis.name_tokens(getattr(self, axis.name))]
        return "_".join([PREFIX, *tokens])

    @property
    def launcher(self) -> str:
        """C++ symbol of the instantiation's launch function."""
        return f"run_{self.name}"

    def plain(self) -> "KernelKey":
        """The same kernel without features."""
        return replace(self, features=())

    @classmethod
    def parse(cls, name: str) -> "KernelKey":
        tokens = name.split("_")
        values = {}
        if tokens[0] == PREFIX and len(tokens) > len(_ONE_VALUE_AXES) and all(map(_TOKEN.fullmatch, tokens[1:])):
            values = {axis.name: axis.from_token(token) for axis, token in zip(_ONE_VALUE_AXES, tokens[1:])}
        if not values or None in values.values():
            raise ValueError(f"not a flashgen kernel name: {name!r} (expected {_expected_form()})")
        key = cls(**values, features=tokens[1 + len(_ONE_VALUE_AXES):])
        if key.name != name:  # features out of order or repeated, hdim0128: a name has one spelling
            raise ValueError(f"not a flashgen kernel name: {name!r} (the kernel it means is {key.name})")
        return key

    def __str__(self) -> str:
        return self.name
