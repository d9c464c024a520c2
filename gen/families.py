"""Kernel families: per (direction, arch), the tile fields kernels.yaml must give, the checks
on them, the shared memory they take, and the template that instantiates them.

Adding a kernel family means adding one class here and one template in templates/.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields, replace

from gen.axes import FEATURES


class TileError(ValueError):
    """A tile plan the kernel cannot run; the message says why and what would work."""


def _rows_per_copy_pass(threads: int, hdim: int) -> int:
    """Tile rows one pass of 16-byte copies covers: a row of a 64-column smem atom takes 8
    threads, of a 32-column one 4 (sm80/tile_atoms.cuh GmemCopies, used by every family)."""
    return threads // (8 if hdim % 64 == 0 else 4)


def _forward_smem_bytes(block_m: int, block_n: int, hdim: int, elem_bytes: int) -> int:
    """A Q tile, one K tile and one V tile (the FwdConfig::kSmemBytes of sm80 and sm90)."""
    return (block_m + 2 * block_n) * hdim * elem_bytes


# The features of gen/axes.py each kernel family implements (kernels.yaml may build a family
# with any combination of its own; gen/spec.py rejects the others): all of them, every family.
# A family whose designs differ checks a tile's features too (check_features: the sm90
# backward's warp_specialized: 0 design has no varlen).
_SM80_FEATURES = frozenset(FEATURES)
_SM90_FWD_FEATURES = frozenset(FEATURES)
_SM90_BWD_FEATURES = frozenset(FEATURES)


class _Plan:
    """What every family's tile plan has besides its fields, check and smem_bytes."""

    def causal_plan(self) -> "_Plan | None":
        """The plan causal calls run where it differs from this one (the generated file then
        instantiates both); None: this one."""
        return None

    def check_features(self, hdim: int, features: frozenset[str]) -> None:
        """Raise TileError if this tile's design cannot be built with `features` (each one of
        the family's `features`, gen/spec.py checks that first)."""

    def derived_constants(self, hdim: int) -> dict[str, int]:
        """Values that follow from the plan and that the kernel reads from its tile struct
        (field name -> value, rendered like the tile fields), so that they are computed here
        only: the sm90 kernels' consumer warpgroups and register split."""
        return {}


class _NoFallbackPlan(_Plan):
    """A plan whose launcher has no smaller shared-memory variant to fall back to."""

    def fallback_smem_bytes(self, hdim: int, elem_bytes: int) -> int:
        return self.smem_bytes(hdim, elem_bytes)


def _check_choices(tile, allowed: tuple, *names: str) -> None:
    """Each named tile field holds one of `allowed` (the on/off and buffer-count options)."""
    for name in names:
        value = getattr(tile, name)
        if value not in allowed:
            raise TileError(f"{name} must be {' or '.join(map(str, allowed))}, got {value}")


def _check_sm80_common(kernel: str, hdim: int, warps: int, rows: dict) -> None:
    """Rules every sm80 kernel shares: the 32-column smem atom, 4 or 8 warps, and tiles that are
    a whole number of 16-byte copy passes (rows: field name -> tile rows)."""
    if hdim % 32:
        raise TileError(f"the sm80 {kernel} kernel needs head dim to be a multiple of 32, got {hdim}")
    if warps not in (4, 8):
        raise TileError(f"warps must be 4 or 8, got {warps}")
    rows_per_copy_pass = _rows_per_copy_pass(warps * 32, hdim)
    for name, value in rows.items():
        if value % rows_per_copy_pass:
            raise TileError(f"{name} must be a multiple of {rows_per_copy_pass} "
                            f"(rows one 16-byte copy pass covers at head dim {hdim} with {warps} warps)")


@dataclass(frozen=True)
class FwdSm80Tile(_NoFallbackPlan):
    """FlashAttention-2 forward: csrc/flashgen/sm80/fwd_kernel.cuh."""

    block_m: int   # query rows per CTA
    block_n: int   # key rows per step
    warps: int

    template = "flash_fwd_sm80.cu.j2"
    features = _SM80_FEATURES

    def check(self, hdim: int) -> None:
        _check_sm80_common("forward", hdim, self.warps, {"block_m": self.block_m, "block_n": self.block_n})
        if self.block_m % (16 * self.warps):
            raise TileError(f"block_m must be a multiple of 16 * warps = {16 * self.warps}, got {self.block_m}")
        if self.block_n % 16 or self.block_n <= 0:
            raise TileError(f"block_n must be a positive multiple of 16, got {self.block_n}")

    def smem_bytes(self, hdim: int, elem_bytes: int) -> int:
        return _forward_smem_bytes(self.block_m, self.block_n, hdim, elem_bytes)


@dataclass(frozen=True)
class BwdSm80Tile(_Plan):
    """FlashAttention-2 backward: csrc/flashgen/sm80/bwd_kernel.cuh. Three warp layouts, one per
    GEMM shape: atom_m_sdp warps along queries for S and dP (block_m x block_n), atom_n_dkv
    along keys for dK and dV (block_n x head dim), atom_m_dq along queries for dQ."""

    block_m: int
    block_n: int
    warps: int
    atom_m_sdp: int
    atom_n_dkv: int
    atom_m_dq: int
    # 2: the next Q tile loads into a second buffer for a whole iteration. Where a GPU lacks
    # the shared memory for it (an A100 at head dim 256), the launcher runs the 1-buffer plan.
    q_buffers: int = 1
    # The same for dO (1: it loads after the dV GEMM, behind a barrier); same fallback.
    do_buffers: int = 1
    # 1: the dQ GEMM and its atomics run before the dK GEMM (FlashAttention-2's order), 0: after.
    dq_before_dk: int = 0
    # 1: causal CTAs run heaviest key block first across groups of heads whose dQ accumulators
    # fit 32 MB of L2 (BackwardCta, csrc/flashgen/sm80/mask.cuh); 0: in launch order.
    causal_head_groups: int = 0

    template = "flash_bwd_sm80.cu.j2"
    features = _SM80_FEATURES

    def check(self, hdim: int) -> None:
        _check_sm80_common("backward", hdim, self.warps, {"block_m": self.block_m, "block_n": self.block_n})
        _check_choices(self, (1, 2), "q_buffers", "do_buffers")
        _check_choices(self, (0, 1), "dq_before_dk", "causal_head_groups")
        if self.block_n % 32 or self.block_m % 16:
            raise TileError(f"block_n must be a multiple of 32 and block_m of 16, got {self.block_m} x {self.block_n}")
        for name, warps_m, rows, cols in (("atom_m_sdp", self.atom_m_sdp, self.block_m, self.block_n),
                                          ("atom_n_dkv", self.atom_n_dkv, self.block_n, hdim),
                                          ("atom_m_dq", self.atom_m_dq, self.block_m, hdim)):
            if warps_m <= 0 or self.warps % warps_m:
                raise TileError(f"{name} must divide warps ({self.warps}), got {warps_m}")
            if rows % (16 * warps_m) or cols % (16 * (self.warps // warps_m)):
                raise TileError(f"{name}={warps_m}: a {rows} x {cols} GEMM tile is not a whole number of "
                                f"{16 * warps_m} x {16 * (self.warps // warps_m)} warp tiles")

    def smem_bytes(self, hdim: int, elem_bytes: int) -> int:
        # Q (q_buffers tiles), dO (do_buffers tiles), K, V tiles plus the P and dS tiles
        # (bwd_kernel.cuh BwdConfig::kSmemBytes).
        return ((self.q_buffers + self.do_buffers) * self.block_m * hdim + 2 * self.block_n * hdim
                + 2 * self.block_m * self.block_n) * elem_bytes

    def fallback_smem_bytes(self, hdim: int, elem_bytes: int) -> int:
        extra_buffers = self.q_buffers + self.do_buffers - 2
        return self.smem_bytes(hdim, elem_bytes) - extra_buffers * self.block_m * hdim * elem_bytes


# setmaxnreg's split of the register file between the producer warpgroup and 1, 2 or 3 consumer
# warpgroups: (producer, consumer) registers per thread, each a multiple of 8, within the 64K
# registers (sm90/warpgroup.cuh check_register_split checks what the kernels receive). The one
# source: the sm90 plans' derived_constants render it into each tile struct.
_SM90_REGISTER_SPLIT = {1: (56, 256), 2: (24, 240), 3: (32, 160)}
_SM90_CONSUMER_REGISTERS = {consumers: split[1] for consumers, split in _SM90_REGISTER_SPLIT.items()}


def _sm90_warpgroup_constants(consumers: int) -> dict[str, int]:
    """A warp-specialized sm90 kernel's consumer warpgroups and their register split, as tile
    struct constants (kConsumers, kProducerRegisters, kConsumerRegisters)."""
    producer, consumer = _SM90_REGISTER_SPLIT[consumers]
    return {"consumers": consumers, "producer_registers": producer, "consumer_registers": consumer}


def head_dim_split_consumers(hdim: int) -> int:
    """The head-dim-split sm90 backward's consumer warpgroups (its tile struct's kConsumers): one
    per 64 head dims up to three, two of 128 at 256 (four of 64 would get 120 registers each,
    under dK^T + dV^T alone)."""
    return hdim // 64 if hdim <= 192 else 2


@dataclass(frozen=True)
class FwdSm90Tile(_NoFallbackPlan):
    """Hopper forward, warp-specialized: csrc/flashgen/sm90/fwd_kernel.cuh. A producer warpgroup
    TMA-loads Q once and K/V through `stages`-deep rings; block_m / 64 consumer warpgroups of 64
    query rows each run S = Q K^T, the softmax and O += P V, overlapping the next block's softmax
    with the current P V GEMM."""

    block_m: int   # query rows per CTA: 64 per consumer warpgroup
    block_n: int   # key rows per step: the N of the S wgmma, the K of the P V wgmma
    stages: int = 2   # K and V buffers each (TMA ring depth)
    # 1: the consumer warpgroups take turns issuing GEMMs (named barriers), so one's softmax
    # runs under the other's GEMMs (FlashAttention-3's ping-pong); needs 2 or 3 consumers.
    pingpong: int = 0
    # 1: non-causal calls run a GPU-full of CTAs, each taking every grid-th tile
    # (common/tile_scheduler.cuh), so the next tile's first K loads under this one's epilogue;
    # causal calls keep one CTA per tile (their tiles differ in length). 0: one CTA per tile.
    persistent: int = 0
    # 1 (with persistent: 1): causal calls run persistent too, and every CTA after its first tile
    # takes the next one from an atomic counter (common/tile_scheduler.cuh), longest first.
    dynamic_scheduler: int = 0
    # 1: a row keeps its running max until a block's max exceeds it by 2^8 in exp2 terms, so
    # most steps of a long row skip rescaling O (common/softmax.cuh, kLazy).
    lazy_rescale: int = 0
    # 1: O gets its own shared-memory tiles instead of reusing Q's, so a persistent CTA's next Q
    # loads as soon as this tile's last S GEMM is done, under its last P V GEMM and epilogue.
    o_buffer: int = 0
    # 1: O goes out through V's ring instead of Q's buffer (where o_buffer's tiles do not fit,
    # head dim 256): Q is free after the last S GEMM as with o_buffer, and the next tile's V
    # loads wait until this tile's O stores have read the ring. Needs block_m <= stages * block_n.
    o_in_v: int = 0
    # 1: non-causal calls run the key blocks that need a mask (the ragged end, a window's start)
    # and those that do not in loops of their own, so the common step has no masking branch
    # between its S wait and its P V wait and ptxas starts part of the softmax before the P V
    # wait. H200, bf16 (session 12, against the same plan without it): +4-6% non-causal at 128
    # (the causal instantiation lost 1-3%, so it keeps one loop); at 64 within +-1%; at 256 -9%
    # at 32 x 512 (more spills).
    split_masked_steps: int = 0
    # 1: each consumer reads its Q rows into registers once per tile and S = Q K^T takes them from
    # there, so the S wgmmas re-read only K from shared memory (64 x hdim / 128 / 2 registers).
    q_in_registers: int = 0
    # Causal calls' query rows per CTA when smaller than block_m (0: block_m): a smaller tile
    # wastes less of the causal diagonal's masked blocks (192-row tiles over 128-key blocks
    # compute ~60% masked-away work on a 512-token sequence, 128-row ones ~20%). The kernel is
    # instantiated with this plan for causal calls and with block_m for the others.
    causal_block_m: int = 0
    # With causal_block_m: only causal calls with seqlen_q at or below this run the smaller plan
    # (short sequences, where the diagonal's waste dominates), longer ones block_m (0: every
    # causal call). H200, d64, 128 for 192 rows: +7% causal at 32 x 512, -8% at 2 x 8192.
    causal_block_m_seqlen: int = 0

    template = "flash_fwd_sm90.cu.j2"
    features = _SM90_FWD_FEATURES

    def consumers(self) -> int:
        return self.block_m // 64

    def derived_constants(self, hdim: int) -> dict[str, int]:
        return _sm90_warpgroup_constants(self.consumers())

    def causal_plan(self) -> "FwdSm90Tile | None":
        """The plan causal calls run, where it differs from this one."""
        if not self.causal_block_m:
            return None
        return replace(self, block_m=self.causal_block_m, causal_block_m=0, causal_block_m_seqlen=0,
                       pingpong=self.pingpong if self.causal_block_m >= 128 else 0)

    def check(self, hdim: int) -> None:
        if hdim % 32:
            raise TileError(f"the sm90 forward kernel needs head dim to be a multiple of 32 "
                            f"(its smem atom is 64 or 32 columns), got {hdim}")
        if self.block_m not in (64, 128, 192):
            raise TileError(f"block_m must be 64, 128 or 192 (1 to 3 consumer warpgroups of 64 rows), got {self.block_m}")
        if self.block_n % 16 or not 16 <= self.block_n <= 256:
            raise TileError(f"block_n must be a multiple of 16 from 16 to 256 (the S wgmma's N, the P V "
                            f"wgmma's K), got {self.block_n}")
        if not 1 <= self.stages <= 4:
            raise TileError(f"stages must be 1 to 4, got {self.stages}")
        _check_choices(self, (0, 1), "pingpong", "persistent", "dynamic_scheduler", "lazy_rescale", "o_buffer",
                       "q_in_registers", "o_in_v", "split_masked_steps")
        if self.o_in_v and self.o_buffer:
            raise TileError("o_in_v and o_buffer both give O a home: pick one")
        if self.o_in_v and self.block_m > self.stages * self.block_n:
            raise TileError(f"o_in_v puts O's {self.block_m} rows in V's ring of {self.stages} x {self.block_n} "
                            f"rows: they do not fit")
        if self.causal_block_m_seqlen and not self.causal_block_m:
            raise TileError("causal_block_m_seqlen picks when causal calls run causal_block_m: set causal_block_m")
        if self.dynamic_scheduler and not self.persistent:
            raise TileError("dynamic_scheduler hands out the tiles of a persistent grid: it needs persistent: 1")
        if self.causal_block_m:
            if self.causal_block_m not in (64, 128) or self.causal_block_m >= self.block_m:
                raise TileError(f"causal_block_m must be 64 or 128 and below block_m ({self.block_m}), "
                                f"got {self.causal_block_m}")
            if self.causal_block_m_seqlen < 0:
                raise TileError(f"causal_block_m_seqlen must be 0 (every causal call) or a seqlen_q, "
                                f"got {self.causal_block_m_seqlen}")
            try:
                self.causal_plan().check(hdim)
            except TileError as exc:
                raise TileError(f"the causal plan (block_m {self.causal_block_m}): {exc}") from None
        if self.pingpong and self.consumers() < 2:
            raise TileError("pingpong needs block_m of 128 or 192 (two or more consumer warpgroups)")
        # Live accumulators per consumer thread at the overlap's peak: O (64 x hdim fp32), the
        # next S (64 x block_n fp32) and this block's P (64 x block_n, two per register), over
        # 128 threads, plus about 32 for addresses, row statistics and loop state. An estimate:
        # ptxas has the last word (spills show in the build's -Xptxas=-v output).
        q = self.q_in_registers * hdim // 4   # Q as 16-bit pairs, with q_in_registers
        live = (64 * hdim + 64 * self.block_n + 32 * self.block_n) // 128 + q + 32
        budget = _SM90_CONSUMER_REGISTERS[self.consumers()]
        if live > budget:
            raise TileError(f"about {live} registers per consumer thread (O {hdim // 2}, S {self.block_n // 2}, "
                            f"P {self.block_n // 4}, Q {q}, 32 more), over the {budget} that {self.consumers()} "
                            f"consumer warpgroups get: lower block_n or block_m")

    def smem_bytes(self, hdim: int, elem_bytes: int) -> int:
        # Q, `stages` K and V tiles, O's tiles with o_buffer, and 1 KB for the pipelines' barriers
        # (FwdConfig::SharedStorage, whose 1 KB-aligned tiles round it up to that).
        return ((1 + self.o_buffer) * self.block_m + 2 * self.stages * self.block_n) * hdim * elem_bytes + 1024


@dataclass(frozen=True)
class BwdSm90Tile(_NoFallbackPlan):
    """Hopper backward, three designs:
    - warp_specialized: 1 (csrc/flashgen/sm90/bwd_ws_kernel.cuh, head dims 64, 96 and 128): a producer
      warpgroup TMA-loads K and V once and Q, dO (with their row statistics) through `stages`-deep
      rings; two consumer warpgroups of 64 keys each compute S^T and dP^T, take P^T and dS^T
      from registers into the dV and dK GEMMs, and share dQ = dS K through shared memory.
    - warp_specialized: 1, head_dim_split: 1 (csrc/flashgen/sm90/bwd_ws_split_kernel.cuh, head
      dims 128, 192 and 256): the same producer (Q through a `stages`-deep ring, dO through one
      buffer); the consumers (two; three at 192) split the keys for S and dP and the head dim for
      dK^T, dV^T and dQ (keys on every GEMM's N, so block_n 80 fits), P and dS through shared
      memory, dQ added by float4 atomics in 64-column pieces.
    - warp_specialized: 0 (csrc/flashgen/sm90/bwd_kernel.cuh, head dims 64, 128, 256): the sm80
      schedule on wgmma; two warpgroups split the columns of every GEMM; 64 x 64 tiles only."""

    block_m: int   # query rows per step
    block_n: int   # key rows per CTA
    warp_specialized: int = 0
    # warp_specialized only: Q and dO buffers each (TMA ring depth).
    stages: int = 2
    # warp_specialized only. 1: each step's dQ tile goes to shared memory and a writer warp adds
    # it to the fp32 accumulator with one bulk reduce-add while the consumers go on; 0: each
    # consumer thread adds its fragment with float4 atomics.
    dq_writer: int = 1
    # warp_specialized only. 1: the consumers split the head dim instead of the keys (the design
    # for head dim 256, whose dK and dV of 64 keys per consumer do not fit in registers).
    head_dim_split: int = 0
    # head_dim_split only. P and dS buffers in shared memory: 2 lets a consumer write step i + 1's
    # while the other still reads step i's; 1 saves block_m * block_n * 4 bytes for a barrier
    # per step.
    pds_buffers: int = 2
    # head_dim_split at head dim 256 only. 1: CTAs run in cluster pairs over key blocks 2p and
    # 2p + 1, each sending its dS to the other through distributed shared memory, so that each
    # adds dQ for half the head dim over both blocks' keys (half the fp32 reduction bytes).
    # Costs the partner's K columns (block_n x 128) and its dS buffers in shared memory.
    ds_exchange: int = 0
    # ds_exchange only. 1: a step whose query block sees none of this CTA's keys (the causal
    # diagonal inside the pair's union of query blocks; a pair's second key block past seqlen_k,
    # 1 in 8 CTAs at seqlen 512) runs only its dQ GEMM over the partner's keys and sends no dS;
    # 0: it runs the whole step on P = dS = 0.
    skip_unseen_keys: int = 0
    # warp_specialized: 0 only. 0: both warpgroups split S's and dP's columns (two 64 x 32 wgmmas
    # each); 1: warpgroup 0 computes S and warpgroup 1 dP, each one 64 x 64 wgmma (half the
    # shared-memory operand reads), handing dP - D over in a 16 KB fp32 exchange tile.
    sdp_by_warpgroup: int = 0
    # warp_specialized: 0 only. 1: the dQ GEMM goes out alone first, so its atomics drain under
    # the dV and dK GEMMs; 0: dQ is batched with dV and its atomics overlap dK only.
    dq_gemm_first: int = 0
    # warp_specialized: 1 without head_dim_split (the sm80 option's meaning). 1: dQ's GEMM goes
    # out before dK's (FlashAttention-3's order), so dQ's hand-off to the writer warp (or its
    # atomics) runs under the dK GEMM; 0: after dV, dK and dQ have all drained.
    dq_before_dk: int = 0
    # warp_specialized: 1 without head_dim_split (the sm80 option's meaning). 1: causal CTAs run
    # heaviest key block first across groups of heads whose dQ accumulators fit 32 MB of L2
    # (BackwardCta, common/mask.cuh); 0: in launch order.
    causal_head_groups: int = 0
    # warp_specialized: 1 without head_dim_split, head dim 128. 1: dQ^T = K^T dS^T instead of
    # dQ = dS K (FlashAttention-3's swapped dQ GEMM): each consumer computes 64 head dims (the
    # wgmma's M) of all block_m queries (its N), so block_m may be any multiple of 16 from 64 to
    # 128 (80: a quarter more work per step than 64 in the same registers) instead of whole
    # 64-row wgmma tiles.
    dq_transposed: int = 0
    # warp_specialized: 1 without head_dim_split. 1: each step knows before its loads and GEMMs
    # whether its tile needs a mask, and runs masked or unmasked code of its own; 0: it tests
    # after the S^T wait, where the branch held the step until its lse / D reads had landed
    # (~450 cycles a step at head dim 128, session 14's samples).
    split_masked_steps: int = 0
    # warp_specialized: 1 without head_dim_split. 1: dS is stored (queries, keys), keys contiguous,
    # by transposed stmatrix, so each consumer's 64 keys are one 128-byte swizzle atom at any
    # block_m (FA4's layout; block_m 80 otherwise gets 32-byte atoms) and the dQ GEMM reads it
    # K-major; 0: dS^T (keys, queries), queries contiguous.
    ds_keys_contiguous: int = 0

    template = "flash_bwd_sm90.cu.j2"
    features = _SM90_BWD_FEATURES

    def derived_constants(self, hdim: int) -> dict[str, int]:
        if not self.warp_specialized:
            return {}  # sm90/bwd_kernel.cuh: two warpgroups, no producer, no setmaxnreg
        # Two consumers of 64 keys (bwd_ws_kernel.cuh), or the head-dim split's count.
        return _sm90_warpgroup_constants(head_dim_split_consumers(hdim) if self.head_dim_split else 2)

    def check(self, hdim: int) -> None:
        _check_choices(self, (0, 1), "warp_specialized", "dq_writer", "sdp_by_warpgroup", "dq_gemm_first",
                       "head_dim_split", "ds_exchange", "dq_before_dk", "causal_head_groups", "dq_transposed",
                       "split_masked_steps", "skip_unseen_keys", "ds_keys_contiguous")
        if self.skip_unseen_keys and not self.ds_exchange:
            raise TileError("skip_unseen_keys skips the steps a cluster pair walks for its partner: it needs "
                            "ds_exchange: 1")
        if ((self.dq_before_dk or self.causal_head_groups or self.dq_transposed or self.split_masked_steps
             or self.ds_keys_contiguous) and (not self.warp_specialized or self.head_dim_split)):
            raise TileError("dq_before_dk, causal_head_groups, dq_transposed, split_masked_steps and "
                            "ds_keys_contiguous are options of warp_specialized: 1 without head_dim_split")
        _check_choices(self, (1, 2), "pds_buffers")
        if not self.head_dim_split and (self.ds_exchange or self.pds_buffers != 2):
            raise TileError("ds_exchange and pds_buffers are options of head_dim_split: 1")
        if self.head_dim_split:
            self._check_head_dim_split(hdim)
        elif self.warp_specialized:
            self._check_warp_specialized(hdim)
        else:
            self._check_wgmma_v1(hdim)

    def check_features(self, hdim: int, features: frozenset[str]) -> None:
        if "varlen" in features and not self.warp_specialized:
            raise TileError("the warp_specialized: 0 sm90 backward (sm90/bwd_kernel.cuh) does not implement varlen: "
                            "use warp_specialized: 1 (with head_dim_split: 1 at head dim 256), or build this head "
                            "dim's varlen backward on sm80")

    def _check_warp_specialized(self, hdim: int) -> None:
        if hdim not in (64, 96, 128):
            raise TileError(f"the warp-specialized sm90 backward keeps dK and dV of its 64 keys per warpgroup "
                            f"in registers, which fits head dim 64, 96 or 128, got {hdim} (use warp_specialized: 0)")
        if self.block_n != 128:
            raise TileError(f"block_n must be 128 (two consumer warpgroups of 64 keys), got {self.block_n}")
        if self.dq_transposed:
            if hdim != 128:
                raise TileError(f"dq_transposed gives each of the two consumers 64 head dims of dQ^T (one wgmma M): "
                                f"head dim 128, got {hdim}")
            if self.block_m % 16 or not 64 <= self.block_m <= 128:
                raise TileError(f"block_m must be a multiple of 16 from 64 to 128 with dq_transposed (the N of the "
                                f"S^T and dQ^T wgmmas, whole k steps of the dV and dK GEMMs), got {self.block_m}")
        elif self.block_m not in (64, 128):
            raise TileError(f"block_m must be 64 or 128 (the N of the S^T wgmma, whole 64-row dQ tiles; "
                            f"dq_transposed: 1 takes other multiples of 16 at head dim 128), got {self.block_m}")
        if not 1 <= self.stages <= 4:
            raise TileError(f"stages must be 1 to 4, got {self.stages}")
        if self.sdp_by_warpgroup or self.dq_gemm_first:
            raise TileError("sdp_by_warpgroup and dq_gemm_first are options of warp_specialized: 0")
        # Registers per consumer thread: dK and dV (64 x hdim fp32 each over 128 threads), S^T and
        # dP^T (64 x block_m each), about 32 more for addresses and loop state. An estimate:
        # ptxas has the last word (the build's -Xptxas=-v output shows spills).
        live = hdim + self.block_m + 32
        if live > _SM90_CONSUMER_REGISTERS[2]:
            raise TileError(f"about {live} registers per consumer thread (dK + dV {hdim}, S^T + dP^T "
                            f"{self.block_m}, 32 more), over the {_SM90_CONSUMER_REGISTERS[2]} two consumer "
                            f"warpgroups get: lower block_m")

    def _check_head_dim_split(self, hdim: int) -> None:
        if not self.warp_specialized:
            raise TileError("head_dim_split is an option of warp_specialized: 1")
        if hdim not in (128, 192, 256):
            raise TileError(f"head_dim_split gives each consumer whole 64-column dQ pieces of the head dim "
                            f"(two consumers, three at 192): head dim 128, 192 or 256, got {hdim}")
        if self.block_m != 64:
            raise TileError(f"block_m must be 64 with head_dim_split (one wgmma M of queries), got {self.block_m}")
        consumers = head_dim_split_consumers(hdim)
        key_multiple = math.lcm(16, 8 * consumers)  # whole k steps of the dQ GEMM, 8 keys per consumer's S
        if self.block_n % key_multiple or not 32 <= self.block_n <= 128:
            raise TileError(f"block_n must be a multiple of {key_multiple} from 32 to 128 with head_dim_split at "
                            f"head dim {hdim} ({consumers} consumers' S columns each a multiple of 8, whole k "
                            f"steps of the dQ GEMM), got {self.block_n}")
        if not 1 <= self.stages <= 4:
            raise TileError(f"stages must be 1 to 4, got {self.stages}")
        if not self.dq_writer or self.sdp_by_warpgroup or self.dq_gemm_first:
            raise TileError("head_dim_split adds dQ by atomics (leave dq_writer at 1, its default: it is "
                            "not read) and takes neither sdp_by_warpgroup nor dq_gemm_first")
        if self.ds_exchange and hdim != 256:
            raise TileError(f"ds_exchange gives each consumer of a pair one 64-column dQ piece of its CTA's "
                            f"head-dim half: head dim 256, got {hdim}")
        # Registers per consumer thread: dK^T and dV^T (hdim/consumers x block_n fp32 each over
        # 128 threads), then S and dP (64 x block_n/consumers each) or a dQ piece (32: never both
        # live), and about 24 more for addresses and loop state.
        live = 2 * (hdim // consumers) * self.block_n // 128 + max(self.block_n // consumers, 32) + 24
        budget = _SM90_CONSUMER_REGISTERS[consumers]
        if live > budget:
            raise TileError(f"about {live} registers per consumer thread, over the {budget} {consumers} consumer "
                            f"warpgroups get: lower block_n")

    def _check_wgmma_v1(self, hdim: int) -> None:
        if hdim not in (64, 128, 256):
            # Each warpgroup reads half of the head dim as an MN-major wgmma operand, which must
            # be whole 64-column swizzle atoms (or lie within one): 192 splits into 96 + 96.
            raise TileError(f"the sm90 backward kernel takes head dim 64, 128 or 256, got {hdim}")
        if (self.block_m, self.block_n) != (64, 64):
            raise TileError(f"the sm90 backward kernel takes 64 x 64 tiles only (one wgmma M per GEMM), "
                            f"got {self.block_m} x {self.block_n}")
        if (self.stages, self.dq_writer) != (2, 1):
            raise TileError("stages and dq_writer are options of warp_specialized: 1")

    def smem_bytes(self, hdim: int, elem_bytes: int) -> int:
        if self.head_dim_split:
            # bwd_ws_split_kernel.cuh BwdWsSplitConfig::SharedStorage: the Q ring, one dO buffer,
            # K, V, two P and two dS buffers, lse_log2 per Q stage and D, the pipelines' and K/V's
            # barriers; the 1 KB-aligned struct rounds up to 1 KB.
            # With ds_exchange (SharedStoragePair) also the partner's K columns and dS buffers and
            # their barriers, the row statistics and barriers first (in one 1 KB block), so the
            # tiles pack without padding.
            pds = self.pds_buffers * self.block_m * self.block_n
            tiles = ((self.stages + 1) * self.block_m * hdim + 2 * self.block_n * hdim
                     + 2 * pds) * elem_bytes
            row_stats = (self.stages + 1) * self.block_m * 4
            barriers = 2 * self.stages * 8 + 2 * 8 + 8
            if not self.ds_exchange:
                return -(-(tiles + row_stats + barriers) // 1024) * 1024
            tiles += (self.block_n * hdim // 2 + pds) * elem_bytes
            barriers += 8 + 2 * self.pds_buffers * 8
            return -(-(row_stats + barriers) // 1024) * 1024 + -(-tiles // 1024) * 1024
        if self.warp_specialized:
            # bwd_ws_kernel.cuh BwdWsConfig::SharedStorage: Q and dO rings, K, V, two dS^T
            # buffers, the dQ staging tile (16 bytes without dq_writer), lse_log2 and D rows per
            # stage, the pipelines' and K/V's barriers; the 1 KB-aligned struct rounds up to 1 KB.
            tiles = (2 * self.stages * self.block_m * hdim + 2 * self.block_n * hdim
                     + 2 * self.block_n * self.block_m) * elem_bytes
            dq_stage = self.block_m * hdim * 4 if self.dq_writer else 16
            row_stats = 2 * self.stages * self.block_m * 4
            barriers = 2 * (2 * self.stages * 8) + 8
            return -(-(tiles + dq_stage + row_stats + barriers) // 1024) * 1024
        # Q, dO (two buffers each), K, V tiles plus P and dS (sm90/bwd_kernel.cuh BwdConfig::kSmemBytes),
        # and the fp32 dP - D exchange tile when the warpgroups split S and dP by GEMM.
        exchange = self.sdp_by_warpgroup * self.block_m * self.block_n * 4
        return (4 * self.block_m * hdim + 2 * self.block_n * hdim + 2 * self.block_m * self.block_n) * elem_bytes + exchange


FAMILIES = {
    ("fwd", "sm80"): FwdSm80Tile,
    ("bwd", "sm80"): BwdSm80Tile,
    ("fwd", "sm90"): FwdSm90Tile,
    ("bwd", "sm90"): BwdSm90Tile,
}


def tile_field_names(tile_cls) -> list[str]:
    return [f.name for f in fields(tile_cls)]


def optional_tile_fields(tile_cls) -> set[str]:
    """Fields with a default: kernels.yaml may leave them out."""
    return {f.name for f in fields(tile_cls) if f.default is not MISSING}
