"""Timing with CUDA events: warm up, then the median of many timed batches of calls.

Implementations compared in one row are timed side by side: each round times a batch of every
one in turn, so a slow stretch of the GPU (clocks, a neighbour on the machine) falls on all of
them alike instead of on whichever happened to be timed then. Session 11 saw why: the same
build's backward at 32 x 512 read 0.43 and 0.60 ms in two runs a minute apart.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


class CudaClock:
    """GPU time of what is enqueued between start() and stop(), by CUDA events."""

    def __init__(self):
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        torch.cuda.synchronize()   # also work a call left on other streams: the next batch starts on an idle GPU
        return self._start.elapsed_time(self._end)

    @staticmethod
    def sync() -> None:
        torch.cuda.synchronize()


@dataclass
class Timing:
    ms: float       # median over the rounds of the mean GPU time per call in a batch
    spread: float   # interquartile range of the rounds over ms: how steady they were (one odd round does not count)
    host_ms: float  # median host time per call, waits inside the call included: near ms, the host set the pace
    # Median host time per call over each round's first IDLE_CALLS calls, enqueued on an idle GPU
    # with an empty launch queue: the calls' own host cost, without any wait for queue room.
    host_idle_ms: float | None = None


# Calls per round whose enqueueing host_idle_ms times (few enough that the launch queue never fills).
IDLE_CALLS = 8


def _spread(values: list[float], median: float) -> float:
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / median


def _is_sticky_cuda_error(exc: BaseException) -> bool:
    """An error after which this process's CUDA context is unusable (an illegal address, a trap):
    every later call fails with it, whichever implementation makes the call."""
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in (
        "illegal memory access", "illegal instruction", "unspecified launch failure", "device-side assert",
        "misaligned address", "an illegal", "context is destroyed"))


def time_side_by_side(fns: dict[str, Callable], warmup: int = 5, rounds: int = 15, round_ms: float = 20.0,
                      clock=None) -> dict[str, Timing | Exception]:
    """Each fn's Timing (or the exception it raised; it then leaves the later rounds).

    Calls are enqueued without synchronizing in between, so the GPU runs ahead of the host as
    in real use: host-side overhead (argument checks, dispatch) stays out of kernel timings as
    long as it is shorter than the kernel, and host_ms says when it is not. Each fn's batch lasts
    about `round_ms` and starts on an idle GPU (the clock synchronizes); round r starts with the
    (r mod n)-th fn, so which fn ran just before another rotates (a hot or throttled GPU after a
    heavy fn falls on each in turn). A CUDA error that leaves the context unusable ends the
    timing with a RuntimeError naming the fn that raised it (the others' calls would fail too).
    """
    rounds = max(1, rounds)
    clock = clock or CudaClock()
    batches, failed = {}, {}
    for name, fn in fns.items():
        try:
            for _ in range(warmup):
                fn()
            clock.sync()
            clock.start()
            fn()
            batches[name] = max(1, min(200, int(round_ms / max(clock.stop(), 1e-3))))
        except Exception as exc:  # noqa: BLE001 - one implementation failing must not end the row
            _raise_if_sticky(name, exc)
            failed[name] = exc
    names = list(batches)
    per_call = {name: [] for name in names}
    host = {name: [] for name in names}
    host_idle = {name: [] for name in names}
    for r in range(rounds if names else 0):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if name in failed:
                continue
            fn, batch = fns[name], batches[name]
            try:
                clock.start()
                idle_calls = min(batch, IDLE_CALLS)
                began = time.perf_counter()
                for i in range(batch):
                    fn()
                    if i == idle_calls - 1:
                        idle_enqueued = time.perf_counter() - began
                enqueued = time.perf_counter() - began
                per_call[name].append(clock.stop() / batch)
                host[name].append(enqueued * 1e3 / batch)
                host_idle[name].append(idle_enqueued * 1e3 / idle_calls)
            except Exception as exc:  # noqa: BLE001
                _raise_if_sticky(name, exc)
                failed[name] = exc
    result: dict[str, Timing | Exception] = dict(failed)
    for name in names:
        if name not in failed:
            ms = statistics.median(per_call[name])
            result[name] = Timing(ms=ms, spread=_spread(per_call[name], ms), host_ms=statistics.median(host[name]),
                                  host_idle_ms=statistics.median(host_idle[name]))
    return result


def _raise_if_sticky(name: str, exc: BaseException) -> None:
    if _is_sticky_cuda_error(exc):
        raise RuntimeError(f"{name}: {exc} (a CUDA error that ends this process's use of the GPU: "
                           "nothing more can be timed in it)") from exc


def median_ms(fn, warmup: int = 5, rounds: int = 15, round_ms: float = 20.0) -> float:
    """One fn's median time per call (time_side_by_side of it alone); raises what fn raises."""
    timing = time_side_by_side({"fn": fn}, warmup, rounds, round_ms)["fn"]
    if isinstance(timing, Exception):
        raise timing
    return timing.ms


def attention_flops(batch, seqlen_q, seqlen_k, nheads, head_dim, causal, direction) -> float:
    """FlashAttention's convention: forward 4*b*sq*sk*h*d (halved when causal), backward 2.5x."""
    flops = 4.0 * batch * seqlen_q * seqlen_k * nheads * head_dim
    if causal:
        flops /= 2
    return flops * (2.5 if direction == "bwd" else 1.0)


def ceilings() -> dict:
    """The two roofs measured in this run: a large bf16 matmul and a device-to-device copy."""
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b)
    matmul_tflops = 2 * n**3 / ms / 1e9
    src = torch.empty(2**28, device="cuda", dtype=torch.float32).uniform_()   # 1 GiB
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    copy_gbs = 2 * src.numel() * 4 / ms / 1e6   # bytes read + written
    return {"matmul_bf16_tflops": matmul_tflops, "copy_gb_per_s": copy_gbs}
