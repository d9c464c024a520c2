"""bench.timing's side-by-side rounds, on a fake clock (no GPU): each implementation is timed in
every round, in rotating order, and one that raises leaves without ending the others."""
import pytest

from bench import report
from bench.timing import Timing, time_side_by_side


class FakeClock:
    """GPU time = the calls' costs since start(); the host's time is not modelled."""

    def __init__(self):
        self.elapsed, self.order = 0.0, []

    def start(self):
        self.elapsed = 0.0

    def stop(self):
        return self.elapsed

    def sync(self):
        pass


def fake_fn(clock, name, costs):
    """A call that costs the next of `costs` ms (the last one repeating) and logs its name."""
    calls = iter(costs)
    last = [costs[-1]]

    def fn():
        last[0] = next(calls, last[0])
        clock.elapsed += last[0]
        clock.order.append(name)
    return fn


def test_each_fn_is_timed_every_round_in_rotating_order():
    clock = FakeClock()
    fns = {"a": fake_fn(clock, "a", [1.0]), "b": fake_fn(clock, "b", [4.0])}
    timings = time_side_by_side(fns, warmup=1, rounds=4, round_ms=8.0, clock=clock)
    assert timings["a"].ms == pytest.approx(1.0) and timings["b"].ms == pytest.approx(4.0)
    assert timings["a"].spread == 0.0
    # Batches: 8 calls of a, 2 of b; rounds start with a, b, a, b.
    timed = clock.order[4:]   # after the warmup and calibration calls (1 + 1 each)
    firsts = [timed[0], timed[10], timed[20], timed[30]]
    assert firsts == ["a", "b", "a", "b"]


def test_the_spread_is_of_the_middle_rounds_so_one_odd_round_does_not_count():
    def timed(round_costs):   # warm-up and calibration at 1 ms (batches of 5), then 5 calls per round
        clock = FakeClock()
        costs = [1.0, 1.0] + [c for r in round_costs for c in [r] * 5]
        return time_side_by_side({"a": fake_fn(clock, "a", costs)}, warmup=1, rounds=len(round_costs), round_ms=5.0,
                                 clock=clock)["a"]
    one_odd = timed([1.0, 1.0, 1.0, 1.0, 3.0])
    assert one_odd.ms == pytest.approx(1.0) and one_odd.spread == 0.0
    bimodal = timed([1.0, 2.0, 1.0, 2.0])
    assert bimodal.ms == pytest.approx(1.5) and bimodal.spread == pytest.approx(1.0 / 1.5)


def test_a_cuda_error_that_poisons_the_process_ends_the_timing_naming_the_fn():
    def crashes():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(RuntimeError, match="^bad: CUDA error: an illegal memory access"):
        time_side_by_side({"bad": crashes, "good": fake_fn(FakeClock(), "good", [1.0])}, warmup=1, rounds=2,
                          clock=FakeClock())


def test_a_fn_that_raises_is_reported_and_the_others_still_timed():
    clock = FakeClock()

    def broken():
        raise RuntimeError("peer refuses the case")
    timings = time_side_by_side({"bad": broken, "good": fake_fn(clock, "good", [2.0])}, warmup=1, rounds=3,
                                clock=clock)
    assert isinstance(timings["bad"], RuntimeError)
    assert isinstance(timings["good"], Timing) and timings["good"].ms == pytest.approx(2.0)


def test_report_marks_unsteady_and_host_bound_cells():
    meta = {"gpu": "GPU", "date": "2026-12-03", "torch": "x", "command": "python -m bench",
            "ceilings": {"matmul_bf16_tflops": 800.0, "copy_gb_per_s": 3000.0}}
    case = {"direction": "bwd", "head_dim": 128, "dtype": "bf16", "causal": True, "batch": 32, "seqlen": 512,
            "sweep": False, "nheads": 16, "error": None, "kernel": None}
    rows = [dict(case, impl="flashgen", ms=0.5, tflops=160.0, spread=0.3, host_ms=0.45),
            dict(case, impl="fa4", ms=0.36, tflops=240.0, spread=0.02, host_ms=0.1),
            dict(case, impl="sdpa_cudnn", ms=0.4, tflops=210.0)]   # a row from before the fields
    table = report.markdown(meta, rows)
    assert "| 160 (20%) ~h | 240 (30%) | 210 (26%) |" in table
    assert "`h`: host-bound" in table


def test_host_idle_ms_times_only_each_rounds_first_calls(monkeypatch):
    # A host clock the calls advance: 0.5 ms per call while the (modelled) launch queue has room,
    # 2 ms per call once it is full after 8 calls of a round, as a blocked enqueue would.
    from bench import timing
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0] / 1e3)
    clock = FakeClock()
    in_round = [0]
    start = clock.start

    def start_round():
        in_round[0] = 0
        start()
    clock.start = start_round

    def fn():
        clock.elapsed += 1.0
        now[0] += 0.5 if in_round[0] < timing.IDLE_CALLS else 2.0
        in_round[0] += 1
    result = time_side_by_side({"a": fn}, warmup=1, rounds=3, round_ms=20.0, clock=clock)["a"]
    assert result.host_idle_ms == pytest.approx(0.5)
    assert result.host_ms == pytest.approx((8 * 0.5 + 12 * 2.0) / 20)
