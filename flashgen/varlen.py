"""flash_attn_varlen_func: attention over a batch of sequences of different lengths, packed one
after another along dim 0 (FlashAttention's varlen layout).

Where a kernel built with the varlen feature covers the call (flashgen.dispatch.choose_kernel
with features {"varlen", ...}: the sm80 family, the sm90 forward and the sm90 warp-specialized
backwards build them, bench/tuning/varlen.yaml; each direction's kernel is chosen on its own, so
on a Hopper without the sm90 varlen backward the sm90 forward pairs with the sm80 backward), the whole batch runs in one launch per direction through
the flashgen::varlen_fwd / varlen_bwd ops (flashgen/ops.py). Otherwise it loops over the sequences on the host: it runs each sequence
through the fixed-length kernels (flashgen::fwd, batch 1) and concatenates the outputs, warning
once with the command that builds the varlen kernel. Both read cu_seqlens on the host (a sync:
input checks and the window's normalization), so torch.compile breaks the graph there.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from flashgen import ops
from flashgen.errors import KernelNotBuiltError
from flashgen.inputs import check_flash_attn_options, check_varlen_inputs, mask_args, sequence_lengths
from flashgen.ops import default_scale

_warned_loop = False  # the looping fallback warns once per process


class SequenceRows(NamedTuple):
    """One sequence's rows in the packed q and in the packed k and v."""
    q: slice
    k: slice


def cu_seqlens_of(lengths, device) -> torch.Tensor:
    """FlashAttention's int32 offsets of sequences packed one after another: (0, n0, n0 + n1, ...)."""
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    return torch.tensor(offsets, dtype=torch.int32, device=device)


def sequence_rows(cu_seqlens_q: list[int], cu_seqlens_k: list[int]) -> list[SequenceRows]:
    """Sequence i is rows cu_seqlens_q[i]:cu_seqlens_q[i+1] of q and cu_seqlens_k[i]:cu_seqlens_k[i+1]
    of k and v. The offsets are checked already (flashgen.inputs.check_offsets)."""
    return [SequenceRows(slice(q_start, q_end), slice(k_start, k_end))
            for q_start, q_end, k_start, k_end in zip(cu_seqlens_q, cu_seqlens_q[1:], cu_seqlens_k, cu_seqlens_k[1:])]


def longest(offsets: list[int]) -> int:
    return max(sequence_lengths(offsets))


def rows_without_keys(q_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the kernels give queries that see no key: zero output rows and lse +inf. The zeros are
    a torch.where over q (never true), so they stay in autograd's graph with a zero gradient even
    when no sequence has keys; q * 0 would turn an inf in q into a NaN."""
    out = torch.where(torch.zeros_like(q_seq, dtype=torch.bool), q_seq, 0.0)
    lse = torch.full((q_seq.shape[1], q_seq.shape[0]), float("inf"), dtype=torch.float32, device=q_seq.device)
    return out, lse


def attention_per_sequence(q, k, v, rows: list[SequenceRows], causal: bool, softmax_scale: float,
                           arch, deterministic: bool, window_left: int = -1, window_right: int = -1,
                           softcap: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The looped varlen: out (total_q, nheads, head_dim) and lse (nheads, total_q) of each
    sequence's attention, concatenated. causal and the window are bottom-right aligned per
    sequence (each call sees only its own sequence and lengths); softcap caps every sequence's
    scores. Autograd flows through the slices, the op calls and the cat."""
    outs, lses = [], []
    for seq in rows:
        q_seq, k_seq, v_seq = q[seq.q], k[seq.k], v[seq.k]
        if q_seq.shape[0] == 0 or k_seq.shape[0] == 0:
            # Nothing to launch (the kernels need a row and a key): an empty query sequence adds
            # no rows, queries with no key get the kernels' result for such rows.
            out, lse = rows_without_keys(q_seq)
        else:
            out, lse = ops.fwd(q_seq[None], k_seq[None], v_seq[None], causal, softmax_scale,
                                              arch, deterministic, window_left, window_right, softcap)
            out, lse = out[0], lse[0]
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs, dim=0), torch.cat(lses, dim=1)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=False, return_attn_probs=False, *, arch=None):
    """Attention over sequences of different lengths packed along dim 0; a drop-in for
    FlashAttention 2's `flash_attn_varlen_func` (the same arguments in the same order).

    q: (total_q, nheads, head_dim); k, v: (total_k, nheads_kv, head_dim), nheads a multiple of
    nheads_kv. cu_seqlens_q, cu_seqlens_k: int32 (batch + 1,) offsets on q's device: sequence i
    is q[cu_seqlens_q[i]:cu_seqlens_q[i+1]] attending to k and v rows
    cu_seqlens_k[i]:cu_seqlens_k[i+1]. Empty sequences are allowed: an empty query sequence
    adds no rows, queries of a sequence with no keys get zero rows and lse +inf.
    max_seqlen_q, max_seqlen_k: at least the longest query and key sequence. causal and
    window_size are bottom-right aligned per sequence (on that sequence's own lengths). The other
    arguments (softcap included) and what is not supported yet are as in flashgen.flash_attn_func.

    Returns out (total_q, nheads, head_dim), or with return_attn_probs=True
    (out, softmax_lse, None), softmax_lse float32 (nheads, total_q) as in FlashAttention 2.

    With a varlen kernel built (the sm80 family, the sm90 forward and backward; python build.py --catalog
    bench/tuning/varlen.yaml, or compiled on first use) the batch runs in one launch per
    direction; otherwise one fixed-length kernel call per sequence, with a warning (once). Either
    way cu_seqlens is read on the host (a sync), and torch.compile breaks the graph there.
    """
    check_flash_attn_options(dropout_p, softcap, alibi_slopes, deterministic, return_attn_probs)
    offsets_q, offsets_k = check_varlen_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                               causal, softmax_scale)
    # One normalized window for every sequence, judged by the longest ones: a side that reaches
    # every key of the longest sequences reaches every key of all of them. Each call applies the
    # bounds to its own sequence's lengths.
    causal, window_left, window_right = mask_args(causal, window_size, seqlen_q=longest(offsets_q),
                                                  seqlen_k=longest(offsets_k))
    scale = default_scale(softmax_scale, q.shape[-1])
    if q.shape[0] == 0 or k.shape[0] == 0:
        # No query rows or no keys in the whole batch: no kernel has work (nor a tensor for its
        # TMA descriptors to address); the loop gives each sequence its empty result.
        out, lse = attention_per_sequence(q, k, v, sequence_rows(offsets_q, offsets_k), causal, scale, arch,
                                          deterministic, window_left, window_right, float(softcap))
    elif varlen_kernels_built(q, k, v, arch, window_left, window_right, float(softcap)):
        out, lse = ops.varlen_fwd(q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q),
                                                 int(max_seqlen_k), causal, scale, arch, deterministic, window_left,
                                                 window_right, float(softcap))
    else:
        out, lse = attention_per_sequence(q, k, v, sequence_rows(offsets_q, offsets_k), causal, scale, arch,
                                          deterministic, window_left, window_right, float(softcap))
    return (out, lse, None) if return_attn_probs else out


def varlen_kernels_built(q, k, v, arch, window_left: int, window_right: int, softcap: float) -> bool:
    """Whether varlen kernels run the call: a forward one, and a backward one when autograd will
    need it (choose_kernel finds them built, or compiles them on first use). If not, warns once
    that the call loops over the sequences, with the build command KernelNotBuiltError names."""
    global _warned_loop
    features = ops.required_features(window_left, window_right, softcap, varlen=True)
    capability = torch.cuda.get_device_capability(q.device)
    directions = ["fwd"]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        directions.append("bwd")
    try:
        for direction in directions:
            ops.choose_kernel(direction, q.shape[-1], q.dtype, capability, arch, features)
    except KernelNotBuiltError as error:
        if not _warned_loop:
            _warned_loop = True
            warnings.warn("flash_attn_varlen_func loops over the sequences (one fixed-length kernel call each): "
                          f"no varlen kernel is built for this call. {error}", stacklevel=3)
        return False
    return True
