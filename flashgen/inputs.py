"""Checks of user inputs. Each error says what is wrong and how to fix it.

The checks read shapes, dtypes, devices, strides and plain Python values, never tensor data, so
they run on CPU and meta tensors and inside torch.compile(fullgraph=True) without a graph break.
The one exception is the varlen offsets (cu_seqlens), which the looped varlen reads on the host
anyway (flashgen/varlen.py).

Errors: TypeError for a wrong type or dtype, ValueError for a bad value, NotImplementedError for
a FlashAttention argument whose feature the kernels do not have yet (dropout, ALiBi).
"""
from __future__ import annotations

import math
import operator
import weakref

import torch

from flashgen.dispatch import TORCH_DTYPE_NAMES

MAX_HEAD_DIM = 256
MAX_GRID_DIM = 65535  # batch and heads index CUDA grid dimensions y and z

# The shapes q, k and v must have, as error messages spell them: (rank, {name: layout}).
FIXED_LAYOUTS = (4, {"q": "(batch, seqlen_q, nheads, head_dim)", "k": "(batch, seqlen_k, nheads_kv, head_dim)",
                     "v": "(batch, seqlen_k, nheads_kv, head_dim)"})
VARLEN_LAYOUTS = (3, {"q": "(total_q, nheads, head_dim)", "k": "(total_k, nheads_kv, head_dim)",
                      "v": "(total_k, nheads_kv, head_dim)"})


# --- flash_attn_func ---------------------------------------------------------------------------

def check_attention_inputs(q, k, v, causal, softmax_scale) -> None:
    """q, k, v of flash_attn_func (4-D), and the causal and softmax_scale arguments."""
    _check_tensors(q=q, k=k, v=v)
    _check_causal_and_scale(causal, softmax_scale)
    _check_ranks(q, k, v, FIXED_LAYOUTS)
    batch, seqlen_q, nheads, head_dim = q.shape
    _, seqlen_k, nheads_kv, _ = k.shape
    if k.shape[0] != batch:
        raise ValueError(f"q has batch {batch} but k and v have batch {k.shape[0]}")
    if k.shape[3] != head_dim:
        raise ValueError(f"q has head_dim {head_dim} but k and v have head_dim {k.shape[3]}")
    # Plain comparisons first (under torch.compile the same guards as the loop's); the loop, which
    # builds its pairs on every call, only names the first size that is wrong.
    if batch < 1 or seqlen_q < 1 or seqlen_k < 1 or nheads < 1 or nheads_kv < 1 or head_dim < 1:
        for label, value in (("batch", batch), ("seqlen_q", seqlen_q), ("seqlen_k", seqlen_k),
                             ("nheads", nheads), ("nheads_kv", nheads_kv), ("head_dim", head_dim)):
            if value < 1:
                raise ValueError(f"{label} must be at least 1, got {value} (q {tuple(q.shape)}, k {tuple(k.shape)})")
    _check_heads(nheads, nheads_kv, head_dim)
    if batch > MAX_GRID_DIM or nheads > MAX_GRID_DIM:
        raise ValueError(f"batch ({batch}) and nheads ({nheads}) must each be at most {MAX_GRID_DIM}")
    _check_dtypes_devices_strides(q, k, v)


def check_flash_attn_options(dropout_p, softcap, alibi_slopes, deterministic, return_attn_probs,
                             return_lse=False) -> None:
    """FlashAttention's arguments beyond q, k, v, causal, softmax_scale and window_size: bad values
    raise ValueError/TypeError, features the kernels lack raise NotImplementedError."""
    _check_dropout(dropout_p)
    _check_softcap(softcap)
    if alibi_slopes is not None:
        raise NotImplementedError(f"alibi_slopes={_describe(alibi_slopes)} is not supported yet: flashgen's "
                                  f"kernels add no ALiBi bias; supported: alibi_slopes=None")
    for name, flag in (("deterministic", deterministic), ("return_attn_probs", return_attn_probs),
                       ("return_lse", return_lse)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    if return_attn_probs and return_lse:
        raise ValueError("return_lse=True and return_attn_probs=True both ask for the log-sum-exp: pass one "
                         "(return_attn_probs=True returns (out, softmax_lse, None), return_lse=True (out, softmax_lse))")


def _check_dropout(dropout_p) -> None:
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)):
        hint = (": causal is the 6th positional argument (FlashAttention's order), pass it as causal=..."
                if isinstance(dropout_p, bool) else "")
        raise TypeError(f"dropout_p must be a float, got {type(dropout_p).__name__} {dropout_p!r}{hint}")
    if not 0.0 <= dropout_p < 1.0:  # also refuses NaN
        raise ValueError(f"dropout_p must be in [0, 1) (the probability of dropping an attention weight), "
                         f"got {dropout_p}")
    if dropout_p > 0.0:
        raise NotImplementedError(f"dropout_p={dropout_p} is not supported yet: flashgen's kernels have no "
                                  f"attention dropout; supported: dropout_p=0.0")


def _check_softcap(softcap) -> None:
    if isinstance(softcap, bool) or not isinstance(softcap, (int, float)):
        raise TypeError(f"softcap must be a float, got {type(softcap).__name__} {softcap!r}")
    # Comparisons only (they refuse NaN too): a softcap torch.compile made dynamic (SymFloat) passes.
    if not 0.0 <= softcap < math.inf:
        raise ValueError(f"softcap must be a finite number >= 0 (0.0 means no capping), got {softcap}")


def _describe(value) -> str:
    """A short description of an argument's value for an error message (a tensor by its shape)."""
    if isinstance(value, torch.Tensor):
        return f"<tensor of shape {tuple(value.shape)}, {value.dtype}>"
    return repr(value)


# --- window_size and causal --------------------------------------------------------------------

def mask_args(causal, window_size, seqlen_q: int, seqlen_k: int) -> tuple[bool, int, int]:
    """The mask the kernels run for FlashAttention's (causal, window_size) pair, as
    (causal, window_left, window_right), normalized.

    FlashAttention's rule: query i sees key j (0 <= j < seqlen_k) iff
    i + seqlen_k - seqlen_q - left <= j <= i + seqlen_k - seqlen_q + right (bottom-right aligned;
    -1 is unbounded on that side), and causal=True sets right to 0: causal is the window (-1, 0).
    Normalized, exactly (the same mask): a left side that reaches every key for every query
    (left >= seqlen_k - 1) becomes -1, and so does a right side > 0 that does
    (right >= seqlen_q - 1); a right side of 0 is the causal flag (window_right -1). A call needs
    the kernels' window feature iff a bound is >= 0 afterwards (window_feature). seqlen_q and
    seqlen_k are the call's lengths, or the longest sequences of a varlen call (a side that
    reaches every key of those reaches every key of all)."""
    left, right = _check_window_size(window_size)
    if causal:
        right = 0
    # Only a bounded side is compared with a length: the default window and causal compare no
    # shape, so under torch.compile with dynamic shapes they add no guard.
    if left >= 0 and left >= seqlen_k - 1:
        left = -1
    if right > 0 and right >= seqlen_q - 1:
        right = -1
    if right == 0:
        return True, left, -1
    return False, left, right


def window_feature(window_left: int, window_right: int) -> bool:
    """Whether a call with these normalized bounds (mask_args) needs kernels built with windows."""
    return window_left >= 0 or window_right >= 0


def _check_window_size(window_size) -> tuple[int, int]:
    is_pair = isinstance(window_size, (tuple, list)) and len(window_size) == 2
    if not is_pair or not all(isinstance(w, int) and not isinstance(w, bool) for w in window_size):
        raise ValueError(f"window_size must be a pair of ints (left, right), got {window_size!r}: "
                         f"use (-1, -1) for no window")
    left, right = window_size
    if left < -1 or right < -1:
        raise ValueError(f"window_size entries must be -1 (unbounded) or >= 0, got {tuple(window_size)}")
    return left, right


# --- flash_attn_varlen_func --------------------------------------------------------------------

def check_varlen_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                        softmax_scale) -> tuple[list[int], list[int]]:
    """q, k, v of flash_attn_varlen_func (3-D, sequences packed along dim 0), their offsets and
    longest lengths, and the causal and softmax_scale arguments. Returns cu_seqlens_q and
    cu_seqlens_k as lists: reading them is a host sync, which the looped varlen needs anyway."""
    _check_tensors(q=q, k=k, v=v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k)
    _check_causal_and_scale(causal, softmax_scale)
    _check_varlen_shapes(q, k, v)
    offsets = _checked_offsets(q, k, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    _check_dtypes_devices_strides(q, k, v)
    return offsets


def _check_varlen_shapes(q, k, v) -> None:
    _check_ranks(q, k, v, VARLEN_LAYOUTS)
    _, nheads, head_dim = q.shape
    _, nheads_kv, _ = k.shape
    if k.shape[2] != head_dim:
        raise ValueError(f"q has head_dim {head_dim} but k and v have head_dim {k.shape[2]}")
    for label, value in (("nheads", nheads), ("nheads_kv", nheads_kv), ("head_dim", head_dim)):
        if value < 1:
            raise ValueError(f"{label} must be at least 1, got {value} (q {tuple(q.shape)}, k {tuple(k.shape)})")
    _check_heads(nheads, nheads_kv, head_dim)
    if nheads > MAX_GRID_DIM:
        raise ValueError(f"nheads ({nheads}) must be at most {MAX_GRID_DIM}")


def _checked_offsets(q, k, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k) -> tuple[list[int], list[int]]:
    """cu_seqlens_q and cu_seqlens_k, checked, as lists."""
    for name, cu_seqlens in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        _check_cu_seqlens_tensor(name, cu_seqlens, q.device)
    if cu_seqlens_q.shape != cu_seqlens_k.shape:
        batch_q, batch_k = cu_seqlens_q.shape[0] - 1, cu_seqlens_k.shape[0] - 1
        raise ValueError(f"cu_seqlens_q has {batch_q + 1} entries (batch {batch_q}) but cu_seqlens_k has "
                         f"{batch_k + 1} (batch {batch_k}): both must describe the same sequences")
    for name, max_seqlen in (("max_seqlen_q", max_seqlen_q), ("max_seqlen_k", max_seqlen_k)):
        if isinstance(max_seqlen, bool) or not isinstance(max_seqlen, int):
            raise TypeError(f"{name} must be an int, got {type(max_seqlen).__name__}")
    offsets_q, offsets_k = offsets_on_host(cu_seqlens_q), offsets_on_host(cu_seqlens_k)
    check_offsets("cu_seqlens_q", offsets_q, "q", q.shape[0], "max_seqlen_q", max_seqlen_q)
    check_offsets("cu_seqlens_k", offsets_k, "k", k.shape[0], "max_seqlen_k", max_seqlen_k)
    return offsets_q, offsets_k


# cu_seqlens tensor id -> (a weak reference to it, its version, its values): each tensor is copied
# to the host once per version, not on every call (see offsets_on_host).
_HOST_OFFSETS: dict[int, tuple[weakref.ref, int, list[int]]] = {}


def offsets_on_host(cu_seqlens: torch.Tensor) -> list[int]:
    """cu_seqlens's values as a list (read only). Copying them from the GPU waits for the GPU to
    finish everything queued before (the host then cannot run ahead, and CUDA-graph capture
    fails), so a tensor is copied once and its values kept while it lives and is not modified in
    place (torch bumps a tensor's version on every in-place write): a model that passes the same
    cu_seqlens to every layer, forward and backward, waits once."""
    entry = _HOST_OFFSETS.get(id(cu_seqlens))
    if entry is not None and entry[0]() is cu_seqlens and entry[1] == cu_seqlens._version:
        return entry[2]
    offsets = cu_seqlens.tolist()
    key = id(cu_seqlens)
    _HOST_OFFSETS[key] = (weakref.ref(cu_seqlens, lambda _ref, key=key: _HOST_OFFSETS.pop(key, None)),
                          cu_seqlens._version, offsets)
    return offsets


def _check_cu_seqlens_tensor(name: str, cu_seqlens: torch.Tensor, device: torch.device) -> None:
    """cu_seqlens holds batch + 1 int32 offsets, on q's device as FlashAttention requires."""
    if cu_seqlens.dtype != torch.int32:
        raise TypeError(f"{name} has dtype {cu_seqlens.dtype}; it must be torch.int32 (FlashAttention's "
                        f"cumulative sequence lengths): convert with {name}.to(torch.int32)")
    if cu_seqlens.dim() != 1:
        raise ValueError(f"{name} must be 1-D (batch + 1,), got shape {tuple(cu_seqlens.shape)}")
    if cu_seqlens.device != device:
        raise ValueError(f"{name} is on {cu_seqlens.device} but q is on {device}: move it with {name}.to(q.device)")


def check_offsets(name: str, offsets: list[int], tensor: str, total: int, max_name: str, max_seqlen: int) -> None:
    """The values of one cu_seqlens, as a list: they start at 0, never decrease, end at the
    tensor's row count, and no sequence is longer than max_seqlen. Empty sequences are allowed."""
    if len(offsets) < 2:
        raise ValueError(f"{name} must hold batch + 1 >= 2 offsets, got {offsets}")
    if offsets[0] != 0:
        raise ValueError(f"{name} must start at 0, got {name}[0] = {offsets[0]}")
    lengths = sequence_lengths(offsets)
    if min(lengths) < 0:
        i = next(j for j, n in enumerate(lengths) if n < 0) + 1  # the first decrease, for the message
        raise ValueError(f"{name} must be non-decreasing (sequence i is rows {name}[i]:{name}[i+1]), but "
                         f"{name}[{i}] = {offsets[i]} < {name}[{i - 1}] = {offsets[i - 1]}")
    if offsets[-1] != total:
        raise ValueError(f"{name} ends at {offsets[-1]} but {tensor} has {total} rows: its last entry must be "
                         f"the total length {tensor}.shape[0]")
    longest = max(lengths)
    if max_seqlen < longest:
        i = lengths.index(longest)
        raise ValueError(f"{max_name} = {max_seqlen} is smaller than sequence {i}'s length {longest} "
                         f"({name}[{i}:{i + 2}] = {offsets[i:i + 2]}): pass at least the longest length")


def sequence_lengths(offsets: list[int]) -> list[int]:
    """offsets[i + 1] - offsets[i] for each sequence, computed in C (map), not a Python loop: a
    varlen call reads them for batch-long lists on every call."""
    return list(map(operator.sub, offsets[1:], offsets[:-1]))


# --- shared by both layouts --------------------------------------------------------------------

def _check_tensors(**tensors) -> None:
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def _check_causal_and_scale(causal, softmax_scale) -> None:
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if softmax_scale is not None:
        if isinstance(softmax_scale, bool) or not isinstance(softmax_scale, (int, float)):
            raise TypeError(f"softmax_scale must be a float or None, got {type(softmax_scale).__name__}")
        if not math.isfinite(softmax_scale):
            raise ValueError(f"softmax_scale must be finite, got {softmax_scale}")


def _check_ranks(q, k, v, layouts: tuple[int, dict]) -> None:
    rank, layout = layouts
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != rank:
            raise ValueError(f"{name} must be {rank}-D {layout[name]}, got shape {tuple(t.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")


def _check_heads(nheads: int, nheads_kv: int, head_dim: int) -> None:
    if head_dim > MAX_HEAD_DIM:
        raise ValueError(f"head_dim {head_dim} is not supported: flashgen kernels go up to {MAX_HEAD_DIM}")
    if nheads % nheads_kv:
        raise ValueError(f"nheads ({nheads}) must be a multiple of nheads_kv ({nheads_kv}) for GQA/MQA")


def _check_dtypes_devices_strides(q, k, v) -> None:
    # Valid inputs pass this one test; the loops below, which name the first thing wrong, run
    # only when it fails.
    device = q.device
    if (q.dtype in TORCH_DTYPE_NAMES and q.dtype == k.dtype == v.dtype and device.type == "cuda"
            and device == k.device == v.device and q.stride(-1) == 1 and k.stride(-1) == 1 and v.stride(-1) == 1):
        return
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dtype not in TORCH_DTYPE_NAMES:
            raise TypeError(f"{name} has dtype {t.dtype}; flashgen supports torch.float16 and torch.bfloat16: "
                            f"convert with {name}.to(torch.bfloat16)")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.device.type != "cuda":
            raise ValueError(f"{name} is on {t.device}; flashgen runs on CUDA GPUs: move it with {name}.cuda()")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device}, {v.device}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must have a contiguous last dimension (stride 1), got strides "
                             f"{tuple(t.stride())}: pass {name}.contiguous()")
