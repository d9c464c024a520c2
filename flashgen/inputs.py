"""Checks of user inputs. Each error says what is wrong and how to fix it."""
from __future__ import annotations

import math

import torch

from flashgen.dispatch import TORCH_DTYPE_NAMES

MAX_HEAD_DIM = 256
MAX_GRID_DIM = 65535  # batch and heads index CUDA grid dimensions y and z


def check_attention_inputs(q, k, v, causal, softmax_scale) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if softmax_scale is not None:
        if isinstance(softmax_scale, bool) or not isinstance(softmax_scale, (int, float)):
            raise TypeError(f"softmax_scale must be a float or None, got {type(softmax_scale).__name__}")
        if not math.isfinite(softmax_scale):
            raise ValueError(f"softmax_scale must be finite, got {softmax_scale}")
    for name, t, layout in (("q", q, "(batch, seqlen_q, nheads, head_dim)"),
                            ("k", k, "(batch, seqlen_k, nheads_kv, head_dim)"),
                            ("v", v, "(batch, seqlen_k, nheads_kv, head_dim)")):
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D {layout}, got shape {tuple(t.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    batch, seqlen_q, nheads, head_dim = q.shape
    _, seqlen_k, nheads_kv, _ = k.shape
    if k.shape[0] != batch:
        raise ValueError(f"q has batch {batch} but k and v have batch {k.shape[0]}")
    if k.shape[3] != head_dim:
        raise ValueError(f"q has head_dim {head_dim} but k and v have head_dim {k.shape[3]}")
    for label, value in (("batch", batch), ("seqlen_q", seqlen_q), ("seqlen_k", seqlen_k),
                         ("nheads", nheads), ("nheads_kv", nheads_kv), ("head_dim", head_dim)):
        if value < 1:
            raise ValueError(f"{label} must be at least 1, got {value} (q {tuple(q.shape)}, k {tuple(k.shape)})")
    if head_dim > MAX_HEAD_DIM:
        raise ValueError(f"head_dim {head_dim} is not supported: flashgen kernels go up to {MAX_HEAD_DIM}")
    if nheads % nheads_kv:
        raise ValueError(f"nheads ({nheads}) must be a multiple of nheads_kv ({nheads_kv}) for GQA/MQA")
    if batch > MAX_GRID_DIM or nheads > MAX_GRID_DIM:
        raise ValueError(f"batch ({batch}) and nheads ({nheads}) must each be at most {MAX_GRID_DIM}")
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
