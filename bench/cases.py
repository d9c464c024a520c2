"""The benchmark's cases: the default grid (the benchmark of record), the feature rows (sliding
window, softcap, a packed varlen batch) and the FLOPs a row counts. No GPU, no torch needed."""
from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace

from gen.axes import DIRECTIONS

TOTAL_HIDDEN = 2048  # heads = 2048 / head_dim, as in the FlashAttention papers

# The feature rows (issue 12): a long causal sequence with a sliding window, Gemma 2's softcap,
# and a packed batch of sequences of different lengths.
LONG_SEQLEN = 32768
WINDOW = (4096, 0)
SOFTCAP = 30.0
# Seed 10 draws 9 sequences of 188 to 3990 tokens, a spread over the whole range (seed 0 draws 5
# of 1705 to 4087).
PACKED_TOKENS, PACKED_SHORTEST, PACKED_LONGEST, PACKED_SEED = 16384, 128, 4096, 10


@dataclass(frozen=True)
class Case:
    """One benchmark row's problem. window, softcap and varlen are the features a call uses
    (FlashAttention's arguments): window (left, right) with -1 unbounded; softcap > 0 caps the
    scores; varlen is the sequence lengths of a packed batch (q is (sum(varlen), h, d), one
    flash_attn_varlen_func call), and then batch is the number of sequences and seqlen the
    longest. padded (with varlen): the same sequences as a fixed-length batch (batch, seqlen),
    each padded at its end to the longest; with causal the real tokens' outputs are exact, and
    the row counts the FLOPs of the real tokens only, as its varlen row does."""
    direction: str
    head_dim: int
    causal: bool
    dtype: str
    batch: int
    seqlen: int
    sweep: bool = False   # part of the seqlen sweep (the plot), not the main table
    window: tuple[int, int] | None = None
    softcap: float = 0.0
    varlen: tuple[int, ...] | None = None
    padded: bool = False

    def __post_init__(self):
        if self.varlen is not None and (self.batch, self.seqlen) != (len(self.varlen), max(self.varlen)):
            raise ValueError(f"a varlen case's batch x seqlen is its number of sequences x the longest, "
                             f"{len(self.varlen)} x {max(self.varlen)}, not {self.batch} x {self.seqlen}")
        if self.padded and self.varlen is None:
            raise ValueError("padded needs varlen: the lengths to pad")

    @property
    def nheads(self) -> int:
        return TOTAL_HIDDEN // self.head_dim

    @property
    def packed(self) -> bool:
        """One varlen call over the packed sequences (not the padded fixed-length batch)."""
        return self.varlen is not None and not self.padded

    @property
    def variant(self) -> str:
        """The features in words, '' for a plain fixed-length case."""
        parts = []
        if self.window is not None:
            parts.append(f"window ({self.window[0]}, {self.window[1]})")
        if self.softcap:
            parts.append(f"softcap {self.softcap:g}")
        if self.varlen is not None:
            what = f"padded to {self.seqlen}" if self.padded else "varlen"
            parts.append(f"{what}: {len(self.varlen)} seqs, {sum(self.varlen)} tokens")
        return ", ".join(parts)

    @classmethod
    def from_row(cls, row: dict) -> "Case":
        """The case of a result row (JSON: tuples came back as lists). Rows written before a field
        existed get its default; the row's other keys (impl, ms, ...) are ignored."""
        values = {f.name: row[f.name] for f in fields(cls) if f.name in row}
        for name in ("window", "varlen"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


# --- visible (query, key) pairs and FLOPs ------------------------------------------------------

def visible_pairs(seqlen_q: int, seqlen_k: int, causal: bool = False, window: tuple[int, int] | None = None) -> int:
    """How many (query, key) pairs of one sequence the mask lets through, by FlashAttention's
    rule: query i sees key j (0 <= j < seqlen_k) iff
    i + seqlen_k - seqlen_q - left <= j <= i + seqlen_k - seqlen_q + right, -1 unbounded on that
    side; causal sets right to 0. Exact: one interval per query."""
    left, right = window if window is not None else (-1, -1)
    if causal:
        right = 0
    shift = seqlen_k - seqlen_q
    total = 0
    for i in range(seqlen_q):
        lo = 0 if left < 0 else max(0, i + shift - left)
        hi = seqlen_k - 1 if right < 0 else min(seqlen_k - 1, i + shift + right)
        total += max(0, hi - lo + 1)
    return total


def case_pairs(case: Case) -> int:
    """Visible (query, key) pairs per head over the whole batch (real tokens only when padded)."""
    if case.varlen is not None:
        return sum(visible_pairs(n, n, case.causal, case.window) for n in case.varlen)
    return case.batch * visible_pairs(case.seqlen, case.seqlen, case.causal, case.window)


def pair_flops(pairs: int, nheads: int, head_dim: int, direction: str) -> float:
    """FlashAttention's convention per visible pair: forward 4·d (two matmuls), backward 2.5x."""
    return 4.0 * pairs * nheads * head_dim * (2.5 if direction == "bwd" else 1.0)


def case_flops(case: Case) -> float:
    """The FLOPs a row counts. Window and varlen rows: the visible pairs exactly. Other rows:
    bench.timing.attention_flops as ever (causal halves b·s², 1/seqlen under the exact count), so
    the default grid's TFLOPS stay comparable with every earlier result."""
    if case.window is None and case.varlen is None:
        from bench.timing import attention_flops
        return attention_flops(case.batch, case.seqlen, case.seqlen, case.nheads, case.head_dim, case.causal,
                               case.direction)
    return pair_flops(case_pairs(case), case.nheads, case.head_dim, case.direction)


def window_bounded(causal: bool, window: tuple[int, int] | None, seqlen_q: int, seqlen_k: int) -> bool:
    """Whether (causal, window) masks more than causal or nothing would: the call needs kernels
    built with the window feature. A side that reaches every key of every query is unbounded;
    right = 0 is causal (as flashgen.inputs.mask_args normalizes)."""
    if window is None:
        return False
    left, right = window
    if causal:
        right = 0
    return 0 <= left < seqlen_k - 1 or 0 < right < seqlen_q - 1


# --- the grids ---------------------------------------------------------------------------------

def default_grid(quick: bool) -> list[Case]:
    """The benchmark of record's rows. Keep them (and their order) as they are: results compare
    with earlier runs row by row."""
    shapes = _record_shapes(quick)
    hdims = (128, 256) if quick else (64, 128, 256)
    cases = []
    for direction in DIRECTIONS:
        for head_dim in hdims:
            dtypes = ("bf16", "fp16") if head_dim == 256 and not quick else ("bf16",)
            for dtype in dtypes:
                for causal in (False, True):
                    for batch, seqlen in shapes:
                        cases.append(Case(direction, head_dim, causal, dtype, batch, seqlen))
    sweep = (1024, 4096, 16384) if quick else (512, 1024, 2048, 4096, 8192, 16384)
    for direction in DIRECTIONS:
        for seqlen in sweep:
            cases.append(Case(direction, 256, False, "bf16", max(1, 16384 // seqlen), seqlen, sweep=True))
    return cases


def packed_lengths(total: int = PACKED_TOKENS, shortest: int = PACKED_SHORTEST, longest: int = PACKED_LONGEST,
                   seed: int = PACKED_SEED) -> tuple[int, ...]:
    """Sequence lengths between shortest and longest summing to total, drawn with a fixed seed
    (random.Random's integers are the same on every Python). Each draw leaves at least
    `shortest` tokens; the last sequence is what is left once that fits in one."""
    assert total > longest >= 2 * shortest
    rng = random.Random(seed)
    lengths, left = [], total
    while left > longest:
        n = rng.randint(shortest, min(longest, left - shortest))
        lengths.append(n)
        left -= n
    lengths.append(left)
    return tuple(lengths)


def features_grid(quick: bool = False) -> list[Case]:
    """Issue 12's rows, each beside the plain case it compares with, forward and backward, bf16:
    one 32k-token causal sequence with a (4096, 0) window against the same without (head dim
    128 and 256); softcap 30 at 2 x 8192 head dim 256 (Gemma 2), causal and not, against no
    softcap; a packed causal batch (head dim 128) against the same tokens padded to the longest.
    `quick` is accepted for the CLI's sake; the grid has no smaller form."""
    lengths = packed_lengths()
    cases = []
    for direction in DIRECTIONS:
        for head_dim in (128, 256):
            plain = Case(direction, head_dim, True, "bf16", 1, LONG_SEQLEN)
            cases += [plain, replace(plain, window=WINDOW)]
        for causal in (False, True):
            plain = Case(direction, 256, causal, "bf16", 2, 8192)
            cases += [plain, replace(plain, softcap=SOFTCAP)]
        packed = Case(direction, 128, True, "bf16", len(lengths), max(lengths), varlen=lengths)
        cases += [replace(packed, padded=True), packed]
    return cases


def _record_shapes(quick: bool) -> list[tuple[int, int]]:
    """The record's (batch, seqlen) shapes; `quick`: 2 x 8192 only."""
    return [(2, 8192)] if quick else [(2, 8192), (8, 2048), (32, 512)]


def _record_rows(head_dims: tuple[int, ...], dtype: str, quick: bool) -> list[Case]:
    """The record's rows (both directions, causal and not, its shapes) at other head dims or dtype."""
    return [Case(direction, head_dim, causal, dtype, batch, seqlen)
            for direction in DIRECTIONS for head_dim in head_dims for causal in (False, True)
            for batch, seqlen in _record_shapes(quick)]


def head_dims_grid(quick: bool = False) -> list[Case]:
    """The catalog's head dims outside the record (96 and 192), bf16, the record's shapes, causal
    and not, both directions (2048 // head_dim heads: 21 and 10). `quick`: 2 x 8192 only."""
    return _record_rows((96, 192), "bf16", quick)


def fp16_grid(quick: bool = False) -> list[Case]:
    """The record's rows at head dims 64 and 128 in fp16 (the default grid times fp16 at 256 only),
    so each issue's bf16-and-fp16 bar can be checked. `quick`: 2 x 8192 only."""
    return _record_rows((64, 128), "fp16", quick)


GRIDS = {"default": default_grid, "features": features_grid, "head_dims": head_dims_grid, "fp16": fp16_grid}
