"""flash_attn_varlen_func: attention over a batch of sequences of different lengths, packed one
after another along dim 0 (FlashAttention's varlen layout).

This first version loops over the sequences on the host: it reads cu_seqlens (a host sync) and
runs each sequence through the fixed-length kernels (flashgen::fwd, batch 1), then concatenates
the outputs. It is correct and differentiable, but launches a kernel per sequence, so it is not
fast for many short sequences, and torch.compile cannot trace it in one graph. A kernel-level
varlen (one launch for the whole batch) is planned.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from flashgen.inputs import check_flash_attn_options, check_varlen_inputs, mask_args
from flashgen.ops import default_scale


class SequenceRows(NamedTuple):
    """One sequence's rows in the packed q and in the packed k and v."""
    q: slice
    k: slice


def sequence_rows(cu_seqlens_q: list[int], cu_seqlens_k: list[int]) -> list[SequenceRows]:
    """Sequence i is rows cu_seqlens_q[i]:cu_seqlens_q[i+1] of q and cu_seqlens_k[i]:cu_seqlens_k[i+1]
    of k and v. The offsets are checked already (flashgen.inputs.check_offsets)."""
    return [SequenceRows(slice(q_start, q_end), slice(k_start, k_end))
            for q_start, q_end, k_start, k_end in zip(cu_seqlens_q, cu_seqlens_q[1:], cu_seqlens_k, cu_seqlens_k[1:])]


def longest(offsets: list[int]) -> int:
    return max(end - start for start, end in zip(offsets, offsets[1:]))


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
            out, lse = torch.ops.flashgen.fwd(q_seq[None], k_seq[None], v_seq[None], causal, softmax_scale,
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

    Not fast yet: this version reads cu_seqlens on the host (a sync) and runs one fixed-length
    kernel call per sequence (flashgen/varlen.py); a kernel-level varlen is planned. It runs in
    eager mode: torch.compile breaks the graph at the host read.
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
    out, lse = attention_per_sequence(q, k, v, sequence_rows(offsets_q, offsets_k), causal, scale, arch,
                                      deterministic, window_left, window_right, float(softcap))
    return (out, lse, None) if return_attn_probs else out
