#!/usr/bin/env python3
"""One small call of every built kernel (forward, and backward where built), ragged seqlens,
GQA, causal and not: the workload for compute-sanitizer on the GPU machine. A feature variant
runs with the features it was built for (a window, softcap, a packed batch with an empty
sequence), so its own code paths are what the sanitizer sees.

    compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/sanitize.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/sanitize.py hdim256_bf16
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import flashgen  # noqa: E402
from flashgen.dispatch import TORCH_DTYPES  # noqa: E402
from flashgen.naming import KernelKey  # noqa: E402
from flashgen.varlen import cu_seqlens_of  # noqa: E402

# (seqlen_q, seqlen_k) per call: ragged ends; keys within one block with more queries (the 256
# backward's cluster pair then has a key block past seqlen_k: skip_unseen_keys' path at every
# step); 200 x 200 (causal: a pair's second block unseen on the diagonal, then seen).
SEQLENS = [(77, 133), (200, 40), (200, 200)]
NHEADS, NHEADS_KV = 2, 1
# Packed lengths for a varlen variant: an empty query sequence, one with no keys, ragged ends.
VARLEN_Q, VARLEN_K = [5, 0, 77, 40], [133, 9, 0, 70]


def call(key: KernelKey, causal: bool, with_backward: bool, seqlens: tuple[int, int]) -> list[torch.Tensor]:
    """Run `key`'s kernel (forward, then backward if built) once; return out and the gradients."""
    options = {"causal": causal, "arch": key.arch}
    if "window" in key.features:
        options["window_size"] = (48, 16)
    if "softcap" in key.features:
        options["softcap"] = 30.0
    varlen = "varlen" in key.features
    lengths = (VARLEN_Q, VARLEN_K) if varlen else ([seqlens[0]], [seqlens[1]])
    shapes = ((sum(lengths[0]), NHEADS), (sum(lengths[1]), NHEADS_KV), (sum(lengths[1]), NHEADS_KV))
    q, k, v = (torch.randn(1, n, h, key.hdim, device="cuda", dtype=TORCH_DTYPES[key.dtype],
                           requires_grad=with_backward) for n, h in shapes)
    if varlen:
        cu_q, cu_k = (cu_seqlens_of(n, "cuda") for n in lengths)
        out = flashgen.flash_attn_varlen_func(q[0], k[0], v[0], cu_q, cu_k, max(lengths[0]), max(lengths[1]),
                                              **options)
    else:
        out = flashgen.flash_attn_func(q, k, v, **options)
    if with_backward:
        out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
    return [out] + ([q.grad, k.grad, v.grad] if with_backward else [])


def main() -> int:
    only = sys.argv[1:]  # optional substrings: run only kernels whose name contains one
    built = {n for n in flashgen.available_kernels() if not only or any(o in n for o in only)}
    forwards = sorted(n for n in built if KernelKey.parse(n).direction == "fwd")
    if not forwards:
        # Kernels run forward first (a backward with its forward): a selection without a forward
        # name ran nothing, which the sanitizer reports only as an early exit.
        print(f"sanitize.py: no built forward kernel matches {only or 'any name'}; select forward "
              f"names (e.g. hdim128_bf16_sm90), whose backward runs with them", file=sys.stderr)
        return 2
    for name in forwards:
        key = KernelKey.parse(name)
        with_backward = name.replace("flash_fwd_", "flash_bwd_") in built
        # A varlen variant runs its packed batch (which has both cases) once per causal.
        for seqlens in SEQLENS[:1] if "varlen" in key.features else SEQLENS:
            for causal in (False, True):
                results = call(key, causal, with_backward, seqlens)
                assert all(torch.isfinite(t).all() for t in results), (name, seqlens, causal)
        print(f"ran {name}{' and its backward' if with_backward else ''}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
