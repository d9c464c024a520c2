"""The catalog's axes and their vocabularies: the one table.

A kernel is one point on five axes: direction, head dim, dtype, arch and features (the
variants it is built with). AXES lists them in the order a kernel name spells them; each
vocabulary maps every allowed value to the facts about it. Everything else takes the axes from
here: the kernel name and its parser (flashgen.naming), kernels.yaml's checks (gen.spec),
selection and build.py's flags (gen.select, gen.cli), nvcc targets (gen.ninja, gen.jit),
element types (gen.render) and run-time dispatch (flashgen.dispatch).

Pure Python with no imports from flashgen or torch: the runtime package imports it too.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Direction:
    name: str
    meaning: str


@dataclass(frozen=True)
class Dtype:
    name: str
    torch_name: str   # the torch attribute: torch.float16
    cpp: str          # CUTLASS element type
    bytes: int


@dataclass(frozen=True)
class Target:
    """One nvcc target: machine code for compute capability `capability` (an arch-specific
    target, sm_90a, holds instructions only that exact GPU has)."""

    capability: tuple[int, int]
    arch_specific: bool = False

    @property
    def sm(self) -> str:
        return f"{self.capability[0]}{self.capability[1]}{'a' if self.arch_specific else ''}"

    @property
    def gencode(self) -> str:
        return f"-gencode=arch=compute_{self.sm},code=sm_{self.sm}"

    @property
    def ptx_only_gencode(self) -> str:
        """PTX for the target and no machine code: nvcc checks and compiles everything but ptxas
        does not run (minutes less at head dim 256)."""
        return f"-gencode=arch=compute_{self.sm},code=compute_{self.sm}"


@dataclass(frozen=True)
class Arch:
    name: str
    min_capability: tuple[int, int]
    max_capability: tuple[int, int] | None   # None: every newer GPU too
    targets: tuple[Target, ...]
    smem_limit_bytes: int   # dynamic shared memory one CTA may opt into on every such GPU
    smem_max_bytes: int     # ... on the largest: a plan may use more than the limit only if
                            # its launcher falls back to one that fits the limit

    @property
    def gencode(self) -> tuple[str, ...]:
        return tuple(t.gencode for t in self.targets)

    def gencode_for(self, capabilities) -> tuple[str, ...]:
        """The targets whose machine code runs on one of `capabilities` (same major, minor not
        above it): an sm80 kernel built on an H100 needs its sm_90 code only, half the compile.
        With no capabilities (no GPU visible, or a build meant for other machines), or none that
        a target runs on, every target."""
        here = [t for t in self.targets
                if any(t.capability[0] == c[0] and t.capability[1] <= c[1] for c in capabilities)]
        return tuple(t.gencode for t in here or self.targets)

    def runs_on(self, capability) -> bool:
        capability = tuple(capability)
        return self.min_capability <= capability and (self.max_capability is None or capability <= self.max_capability)


@dataclass(frozen=True)
class Feature:
    name: str
    meaning: str


def _by_name(*entries) -> dict:
    return {entry.name: entry for entry in entries}


DIRECTIONS = _by_name(
    Direction("fwd", "forward: out and lse from q, k, v"),
    Direction("bwd", "backward: dq, dk, dv from dout"),
)

MAX_HEAD_DIM = 256
HEAD_DIM_STEP = 8   # the kernels' 16-byte loads take 8 elements of a row
HEAD_DIMS = range(HEAD_DIM_STEP, MAX_HEAD_DIM + 1, HEAD_DIM_STEP)

DTYPES = _by_name(
    Dtype("fp16", torch_name="float16", cpp="cutlass::half_t", bytes=2),
    Dtype("bf16", torch_name="bfloat16", cpp="cutlass::bfloat16_t", bytes=2),
)

ARCHS = _by_name(
    # sm80-family kernels run on every GPU from the A100 on, so they are also compiled to
    # sm_90 machine code for the H100. The limit is the A100's (163 KB per CTA), the most the
    # H100's (227 KB).
    Arch("sm80", min_capability=(8, 0), max_capability=None,
         targets=(Target((8, 0)), Target((9, 0))), smem_limit_bytes=163 * 1024, smem_max_bytes=227 * 1024),
    # wgmma and setmaxnreg exist only in the arch-specific sm_90a target (227 KB per CTA), which
    # runs on compute capability 9.0 only.
    Arch("sm90", min_capability=(9, 0), max_capability=(9, 0),
         targets=(Target((9, 0), arch_specific=True),), smem_limit_bytes=227 * 1024, smem_max_bytes=227 * 1024),
)

# Dispatch and the default build prefer the newest family a GPU runs.
ARCH_PREFERENCE = tuple(sorted(ARCHS, key=lambda name: ARCHS[name].min_capability, reverse=True))
OLDEST_CAPABILITY = min(arch.min_capability for arch in ARCHS.values())

# Variants a kernel can be built with; a kernel name lists its features in this order.
FEATURES = _by_name(
    Feature("softcap", "scores soft-capped by cap * tanh(score / cap)"),
    Feature("window", "sliding-window (local) attention"),
    Feature("varlen", "variable-length sequences packed into one batch"),
)

NO_FEATURES = "none"   # how build.py's --features spells the plain kernel


@dataclass(frozen=True)
class Axis:
    """One axis of the catalog. A kernel has one value of each axis, except a `many` axis
    (features), of which it has a set: a tuple in vocabulary order, () for the plain kernel."""

    name: str              # the KernelKey field and the selection filter
    label: str             # in messages: "unknown head dim ..."
    vocabulary: object     # a mapping of names to their facts, or a range of numbers
    name_prefix: str = ""  # before the value in a kernel name: hdim128
    many: bool = False

    @property
    def flag(self) -> str:
        """build.py's selection flag."""
        return f"--{self.name}"

    @property
    def numeric(self) -> bool:
        return isinstance(self.vocabulary, range)

    def allowed(self) -> str:
        if self.numeric:
            return f"multiples of {self.vocabulary.step} from {self.vocabulary.start} to {self.vocabulary[-1]}"
        return ", ".join(self.vocabulary)

    def check(self, value) -> None:
        """ValueError naming the allowed values unless `value` is in the vocabulary."""
        for item in value if self.many else (value,):
            if item not in self.vocabulary:
                raise ValueError(f"unknown {self.label} {item!r} (allowed: {self.allowed()})")

    def canonical(self, value):
        """A many-axis value as a tuple in vocabulary order (a name spells it so); others as they are."""
        if not self.many:
            return value
        if isinstance(value, str):
            raise TypeError(f"{self.name} takes a collection of names, got the string {value!r}")
        self.check(value)
        chosen = set(value)
        return tuple(item for item in self.vocabulary if item in chosen)

    def name_tokens(self, value) -> list[str]:
        """The `_`-separated tokens of a kernel name that spell this axis's value."""
        return [f"{self.name_prefix}{item}" for item in (value if self.many else (value,))]

    def from_token(self, token: str):
        """The value a kernel-name token spells, or None if it is not spelled like one."""
        if not token.startswith(self.name_prefix):
            return None
        text = token[len(self.name_prefix):]
        if self.numeric:
            return int(text) if text.isdigit() else None
        return text

    def text(self, value) -> str:
        """The value as build.py's flag takes it (features: softcap,window or none)."""
        if self.many:
            return ",".join(value) or NO_FEATURES
        return str(value)

    def flag_values(self, text: str) -> tuple:
        """The values one use of this axis's flag selects: a comma list of values, or for a
        many axis one set (`--features softcap,window`; the flag repeats for more sets)."""
        if self.many:
            return (() if text == NO_FEATURES else tuple(part for part in text.split(",") if part),)
        parts = [part for part in text.split(",") if part]
        return tuple(int(part) if self.numeric else part for part in parts)


AXES = (
    Axis("direction", "direction", DIRECTIONS),
    Axis("hdim", "head dim", HEAD_DIMS, name_prefix="hdim"),
    Axis("dtype", "dtype", DTYPES),
    Axis("arch", "arch", ARCHS),
    Axis("features", "feature", FEATURES, many=True),
)
AXIS = {axis.name: axis for axis in AXES}

# A name's feature tokens follow every other axis's one token, so a name parses by splitting
# on "_": no spelling may contain one, and only the last axis may have many values.
assert not any(axis.many for axis in AXES[:-1])
assert not any("_" in str(value) for axis in AXES if not axis.numeric for value in axis.vocabulary)
