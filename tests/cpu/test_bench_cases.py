"""bench's cases without a GPU: the visible-pair count against brute force, the FLOPs rows
count, Case's JSON round trip (old result rows included), the default grid pinned as it was,
the features grid's rows, the CLI's grid selection, the peers' Unavailable reasons and the
report's variant column."""
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from bench import impls, report
from bench.cases import (LONG_SEQLEN, Case, case_flops, case_pairs, default_grid, features_grid, packed_lengths,
                         visible_pairs, window_bounded)
from bench.run import parse_args, select_cases
from bench.timing import attention_flops

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"

WINDOWS = [None, (-1, -1), (0, 0), (2, 0), (0, 2), (1, 3), (-1, 2), (3, -1), (0, -1), (-1, 0), (10, 10), (5, 1)]
SHAPES = [(1, 1), (1, 6), (6, 1), (5, 5), (4, 9), (9, 4), (7, 8), (8, 3)]


def brute_mask(seqlen_q, seqlen_k, causal, window):
    """The (i, j) pairs FlashAttention's rule lets through, one by one."""
    left, right = window if window is not None else (-1, -1)
    if causal:
        right = 0
    shift = seqlen_k - seqlen_q
    return {(i, j) for i in range(seqlen_q) for j in range(seqlen_k)
            if (left < 0 or j >= i + shift - left) and (right < 0 or j <= i + shift + right)}


@pytest.mark.parametrize("seqlen_q,seqlen_k", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_visible_pairs_match_brute_force(seqlen_q, seqlen_k, causal):
    for window in WINDOWS:
        expected = len(brute_mask(seqlen_q, seqlen_k, causal, window))
        assert visible_pairs(seqlen_q, seqlen_k, causal, window) == expected, (window, causal)


def test_visible_pairs_of_plain_and_causal_attention():
    assert visible_pairs(7, 7) == 49
    assert visible_pairs(7, 7, causal=True) == 7 * 8 // 2
    assert visible_pairs(3, 5, causal=True) == 3 + 4 + 5        # bottom-right aligned
    assert visible_pairs(5, 3, causal=True) == 0 + 0 + 1 + 2 + 3  # the first queries see no key


@pytest.mark.parametrize("seqlen_q,seqlen_k", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_window_bounded_iff_the_mask_is_neither_full_nor_causal(seqlen_q, seqlen_k, causal):
    plain = (brute_mask(seqlen_q, seqlen_k, False, None), brute_mask(seqlen_q, seqlen_k, True, None))
    for window in WINDOWS:
        if window is None:
            continue
        expected = brute_mask(seqlen_q, seqlen_k, causal, window) not in plain
        assert window_bounded(causal, window, seqlen_q, seqlen_k) == expected, (window, causal)


def test_the_32k_window_row_counts_only_its_visible_pairs():
    window_row, = [c for c in features_grid() if c.window and c.direction == "fwd" and c.head_dim == 128]
    # Query i sees keys i - 4096 .. i: 1, 2, ..., 4096 for the first 4096 queries, 4097 after.
    pairs = 4096 * 4097 // 2 + (LONG_SEQLEN - 4096) * 4097
    assert case_pairs(window_row) == pairs
    assert case_flops(window_row) == 4.0 * pairs * window_row.nheads * 128
    bwd = Case("bwd", 128, True, "bf16", 1, LONG_SEQLEN, window=(4096, 0))
    assert case_flops(bwd) == 2.5 * case_flops(window_row)


def test_plain_rows_count_flops_as_before():
    for case in default_grid(False) + [c for c in features_grid() if not c.window and not c.varlen]:
        assert case_flops(case) == attention_flops(case.batch, case.seqlen, case.seqlen, case.nheads, case.head_dim,
                                                   case.causal, case.direction)


def test_varlen_and_padded_rows_count_the_real_tokens_pairs():
    packed, = [c for c in features_grid() if c.packed and c.direction == "fwd"]
    padded, = [c for c in features_grid() if c.padded and c.direction == "fwd"]
    pairs = sum(n * (n + 1) // 2 for n in packed.varlen)
    assert case_pairs(packed) == case_pairs(padded) == pairs
    assert case_flops(packed) == case_flops(padded) == 4.0 * pairs * 16 * 128


# --- Case in result rows -----------------------------------------------------------------------

CASES = [Case("fwd", 128, False, "bf16", 2, 8192),
         Case("bwd", 256, False, "bf16", 4, 4096, sweep=True),
         Case("fwd", 128, True, "bf16", 1, 32768, window=(4096, 0)),
         Case("bwd", 256, True, "bf16", 2, 8192, softcap=30.0),
         Case("fwd", 128, True, "bf16", 3, 300, varlen=(200, 300, 128)),
         Case("bwd", 128, True, "bf16", 3, 300, varlen=(200, 300, 128), padded=True)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.variant or "plain")
def test_case_json_round_trip(case):
    row = json.loads(json.dumps(asdict(case) | {"impl": "flashgen", "nheads": case.nheads, "ms": 1.0}))
    assert Case.from_row(row) == case
    assert hash(Case.from_row(row)) == hash(case)


def test_rows_from_before_the_feature_fields_read_as_plain_cases():
    row = {"direction": "bwd", "head_dim": 256, "causal": False, "dtype": "bf16", "batch": 2, "seqlen": 8192,
           "sweep": False, "impl": "flashgen", "nheads": 8, "ms": 13.5, "tflops": 200.0, "error": None}
    case = Case.from_row(row)
    assert case == Case("bwd", 256, False, "bf16", 2, 8192)
    assert (case.window, case.softcap, case.varlen, case.padded, case.variant) == (None, 0.0, None, False, "")


def test_every_committed_result_row_reads_as_a_case():
    files = [p for p in sorted(RESULTS.glob("*.json")) if "ceilings" in json.loads(p.read_text())["meta"]]
    assert files
    for path in files:
        for row in json.loads(path.read_text())["rows"]:
            # A features-grid row names its variant; a plain row (older files have no feature
            # fields at all) reads as the plain case.
            has_feature = bool(row.get("window") or row.get("softcap") or row.get("varlen"))
            assert (Case.from_row(row).variant != "") == has_feature, (path.name, row)


def test_case_rejects_a_varlen_shape_that_is_not_its_packing():
    with pytest.raises(ValueError, match="3 x 300"):
        Case("fwd", 128, True, "bf16", 1, 628, varlen=(200, 300, 128))
    with pytest.raises(ValueError, match="padded needs varlen"):
        Case("fwd", 128, True, "bf16", 2, 8192, padded=True)


# --- the grids ---------------------------------------------------------------------------------

# The default grid as it was before the feature fields (written from bench/run.py at 71f368f):
# (direction, head_dim, causal, dtype, batch, seqlen, sweep), in order.
DEFAULT_GRID = [
    ('fwd', 64, False, 'bf16', 2, 8192, False),
    ('fwd', 64, False, 'bf16', 8, 2048, False),
    ('fwd', 64, False, 'bf16', 32, 512, False),
    ('fwd', 64, True, 'bf16', 2, 8192, False),
    ('fwd', 64, True, 'bf16', 8, 2048, False),
    ('fwd', 64, True, 'bf16', 32, 512, False),
    ('fwd', 128, False, 'bf16', 2, 8192, False),
    ('fwd', 128, False, 'bf16', 8, 2048, False),
    ('fwd', 128, False, 'bf16', 32, 512, False),
    ('fwd', 128, True, 'bf16', 2, 8192, False),
    ('fwd', 128, True, 'bf16', 8, 2048, False),
    ('fwd', 128, True, 'bf16', 32, 512, False),
    ('fwd', 256, False, 'bf16', 2, 8192, False),
    ('fwd', 256, False, 'bf16', 8, 2048, False),
    ('fwd', 256, False, 'bf16', 32, 512, False),
    ('fwd', 256, True, 'bf16', 2, 8192, False),
    ('fwd', 256, True, 'bf16', 8, 2048, False),
    ('fwd', 256, True, 'bf16', 32, 512, False),
    ('fwd', 256, False, 'fp16', 2, 8192, False),
    ('fwd', 256, False, 'fp16', 8, 2048, False),
    ('fwd', 256, False, 'fp16', 32, 512, False),
    ('fwd', 256, True, 'fp16', 2, 8192, False),
    ('fwd', 256, True, 'fp16', 8, 2048, False),
    ('fwd', 256, True, 'fp16', 32, 512, False),
    ('bwd', 64, False, 'bf16', 2, 8192, False),
    ('bwd', 64, False, 'bf16', 8, 2048, False),
    ('bwd', 64, False, 'bf16', 32, 512, False),
    ('bwd', 64, True, 'bf16', 2, 8192, False),
    ('bwd', 64, True, 'bf16', 8, 2048, False),
    ('bwd', 64, True, 'bf16', 32, 512, False),
    ('bwd', 128, False, 'bf16', 2, 8192, False),
    ('bwd', 128, False, 'bf16', 8, 2048, False),
    ('bwd', 128, False, 'bf16', 32, 512, False),
    ('bwd', 128, True, 'bf16', 2, 8192, False),
    ('bwd', 128, True, 'bf16', 8, 2048, False),
    ('bwd', 128, True, 'bf16', 32, 512, False),
    ('bwd', 256, False, 'bf16', 2, 8192, False),
    ('bwd', 256, False, 'bf16', 8, 2048, False),
    ('bwd', 256, False, 'bf16', 32, 512, False),
    ('bwd', 256, True, 'bf16', 2, 8192, False),
    ('bwd', 256, True, 'bf16', 8, 2048, False),
    ('bwd', 256, True, 'bf16', 32, 512, False),
    ('bwd', 256, False, 'fp16', 2, 8192, False),
    ('bwd', 256, False, 'fp16', 8, 2048, False),
    ('bwd', 256, False, 'fp16', 32, 512, False),
    ('bwd', 256, True, 'fp16', 2, 8192, False),
    ('bwd', 256, True, 'fp16', 8, 2048, False),
    ('bwd', 256, True, 'fp16', 32, 512, False),
    ('fwd', 256, False, 'bf16', 32, 512, True),
    ('fwd', 256, False, 'bf16', 16, 1024, True),
    ('fwd', 256, False, 'bf16', 8, 2048, True),
    ('fwd', 256, False, 'bf16', 4, 4096, True),
    ('fwd', 256, False, 'bf16', 2, 8192, True),
    ('fwd', 256, False, 'bf16', 1, 16384, True),
    ('bwd', 256, False, 'bf16', 32, 512, True),
    ('bwd', 256, False, 'bf16', 16, 1024, True),
    ('bwd', 256, False, 'bf16', 8, 2048, True),
    ('bwd', 256, False, 'bf16', 4, 4096, True),
    ('bwd', 256, False, 'bf16', 2, 8192, True),
    ('bwd', 256, False, 'bf16', 1, 16384, True),
]
DEFAULT_GRID_QUICK = [
    ('fwd', 128, False, 'bf16', 2, 8192, False),
    ('fwd', 128, True, 'bf16', 2, 8192, False),
    ('fwd', 256, False, 'bf16', 2, 8192, False),
    ('fwd', 256, True, 'bf16', 2, 8192, False),
    ('bwd', 128, False, 'bf16', 2, 8192, False),
    ('bwd', 128, True, 'bf16', 2, 8192, False),
    ('bwd', 256, False, 'bf16', 2, 8192, False),
    ('bwd', 256, True, 'bf16', 2, 8192, False),
    ('fwd', 256, False, 'bf16', 16, 1024, True),
    ('fwd', 256, False, 'bf16', 4, 4096, True),
    ('fwd', 256, False, 'bf16', 1, 16384, True),
    ('bwd', 256, False, 'bf16', 16, 1024, True),
    ('bwd', 256, False, 'bf16', 4, 4096, True),
    ('bwd', 256, False, 'bf16', 1, 16384, True),
]


def _plain(cases):
    return [(c.direction, c.head_dim, c.causal, c.dtype, c.batch, c.seqlen, c.sweep) for c in cases]


def test_the_default_grid_is_unchanged():
    for quick, pinned in ((False, DEFAULT_GRID), (True, DEFAULT_GRID_QUICK)):
        cases = default_grid(quick)
        assert _plain(cases) == pinned
        assert all(c.variant == "" and c.window is None and not c.softcap and c.varlen is None for c in cases)


def test_the_cli_runs_the_default_grid_by_default():
    assert select_cases(parse_args([])) == default_grid(False)
    assert select_cases(parse_args(["--quick"])) == default_grid(True)


PACKED = (2468, 261, 1884, 2104, 2495, 188, 972, 2022, 3990)


def test_packed_lengths_are_pinned_and_within_bounds():
    assert packed_lengths() == PACKED
    assert sum(PACKED) == 16384 and all(128 <= n <= 4096 for n in PACKED)
    for seed in range(50):
        lengths = packed_lengths(seed=seed)
        assert sum(lengths) == 16384 and all(128 <= n <= 4096 for n in lengths), seed


def test_the_features_grid_rows():
    rows = [(c.direction, c.head_dim, c.causal, c.batch, c.seqlen, c.variant) for c in features_grid()]
    per_direction = [
        (128, True, 1, 32768, ""), (128, True, 1, 32768, "window (4096, 0)"),
        (256, True, 1, 32768, ""), (256, True, 1, 32768, "window (4096, 0)"),
        (256, False, 2, 8192, ""), (256, False, 2, 8192, "softcap 30"),
        (256, True, 2, 8192, ""), (256, True, 2, 8192, "softcap 30"),
        (128, True, 9, 3990, "padded to 3990: 9 seqs, 16384 tokens"),
        (128, True, 9, 3990, "varlen: 9 seqs, 16384 tokens"),
    ]
    assert rows == [(d, *r) for d in ("fwd", "bwd") for r in per_direction]
    assert all(c.dtype == "bf16" and not c.sweep for c in features_grid())
    assert {c.varlen for c in features_grid() if c.varlen} == {PACKED}
    assert features_grid(True) == features_grid(False)


def test_the_head_dims_grid_rows():
    from bench.cases import head_dims_grid
    rows = head_dims_grid()
    assert len(rows) == 2 * 2 * 2 * 3 and all(c.dtype == "bf16" and not c.sweep for c in rows)
    assert {(c.head_dim, c.nheads) for c in rows} == {(96, 21), (192, 10)}
    assert {(c.batch, c.seqlen) for c in head_dims_grid(True)} == {(2, 8192)}
    chosen = select_cases(parse_args(["--grid", "head_dims", "--hdim", "96", "--direction", "bwd"]))
    assert [(c.causal, c.batch) for c in chosen] == [(False, 2), (False, 8), (False, 32), (True, 2), (True, 8), (True, 32)]


def test_the_cli_selects_grids_and_filters_them():
    assert select_cases(parse_args(["--grid", "features"])) == features_grid()
    assert select_cases(parse_args(["--grid", "default,features", "--quick"])) == default_grid(True) + features_grid()
    assert select_cases(parse_args(["--features"])) == default_grid(False) + features_grid()
    assert select_cases(parse_args(["--features", "--grid", "features"])) == features_grid()
    chosen = select_cases(parse_args(["--grid", "features", "--direction", "fwd", "--hdim", "128"]))
    assert [c.variant for c in chosen] == ["", "window (4096, 0)", "padded to 3990: 9 seqs, 16384 tokens",
                                           "varlen: 9 seqs, 16384 tokens"]
    with pytest.raises(SystemExit):
        parse_args(["--grid", "nope"])


# --- peers that cannot run a row say why -------------------------------------------------------

def _qkv(shape=(1, 16, 2, 64)):
    return tuple(torch.zeros(shape) for _ in range(3))


@pytest.mark.parametrize("options,why", [({"window": (4096, 0)}, "no sliding window"),
                                         ({"softcap": 30.0}, "no softcap"),
                                         ({"seqlens": (8, 8)}, "no packed varlen")])
def test_sdpa_is_unavailable_for_windows_softcap_and_varlen(options, why):
    for backend in ("sdpa_flash", "sdpa_cudnn", "sdpa_efficient"):
        with pytest.raises(impls.Unavailable, match=why):
            impls.IMPLS[backend](*_qkv(), True, "fwd", **options)


def test_fa4_options_follow_its_signature():
    def flash_attn_func(q, k, v, softmax_scale=None, causal=False, window_size=(None, None), softcap=0.0):
        pass

    def old_flash_attn_func(q, k, v, softmax_scale=None, causal=False):
        pass

    assert impls._fa4_options(flash_attn_func, (4096, 0), 0.0) == {"window_size": (4096, 0)}
    assert impls._fa4_options(flash_attn_func, (4096, -1), 30.0) == {"window_size": (4096, None), "softcap": 30.0}
    assert impls._fa4_options(flash_attn_func, None, 0.0) == {}
    assert impls._fa4_options(old_flash_attn_func, (-1, -1), 0.0) == {}
    with pytest.raises(impls.Unavailable, match="old_flash_attn_func takes no window_size"):
        impls._fa4_options(old_flash_attn_func, (4096, 0), 0.0)
    with pytest.raises(impls.Unavailable, match="takes no softcap"):
        impls._fa4_options(old_flash_attn_func, None, 30.0)


@pytest.fixture
def fake_flashgen(monkeypatch):
    """flashgen's two entry points and dispatch replaced by recorders, so the calls the bench
    makes can be read on a CPU."""
    import flashgen
    import flashgen.dispatch
    calls = []

    def flash_attn_func(q, k, v, **options):
        calls.append(("flash_attn_func", q.shape, options))
        return q + k + v

    def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, **options):
        calls.append(("flash_attn_varlen_func", q.shape, cu_seqlens_q.tolist(), cu_seqlens_k.tolist(), max_seqlen_q,
                      max_seqlen_k, options))
        return q + k + v

    class Key:
        def __init__(self, features):
            self.name = "kernel_" + "_".join(sorted(features))

    monkeypatch.setattr(flashgen, "flash_attn_func", flash_attn_func, raising=False)
    monkeypatch.setattr(flashgen, "flash_attn_varlen_func", flash_attn_varlen_func, raising=False)
    monkeypatch.setattr(flashgen.dispatch, "choose_kernel",
                        lambda direction, hdim, dtype, capability, arch, features=frozenset(): Key(features))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    return calls


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_flashgen_gets_the_rows_features(fake_flashgen, direction):
    make = impls.IMPLS["flashgen"]
    fn = make(*_qkv(), True, direction)
    assert fake_flashgen[-1] == ("flash_attn_func", (1, 16, 2, 64), {"causal": True, "arch": None})  # as before
    assert fn.kernel == "kernel_"
    fn = make(*_qkv(), True, direction, window=(4, 0), softcap=30.0)
    assert fake_flashgen[-1][2] == {"causal": True, "arch": None, "window_size": (4, 0), "softcap": 30.0}
    assert fn.kernel == "kernel_softcap_window"
    fn = make(*_qkv(), True, direction, window=(15, 0))    # reaches every key: plain causal kernels
    assert fn.kernel == "kernel_"
    fn = impls.IMPLS["flashgen@sm90"](*_qkv((10, 2, 64)), True, direction, seqlens=(3, 7))
    assert fake_flashgen[-1] == ("flash_attn_varlen_func", (10, 2, 64), [0, 3, 10], [0, 3, 10], 7, 7,
                                 {"causal": True, "arch": "sm90"})
    fn()


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_flashgen_ops_times_the_op_path_and_restores_the_eager_one(monkeypatch, fake_flashgen, direction):
    import flashgen
    from flashgen import ops
    seen = []
    plain = flashgen.flash_attn_func

    def recording(q, k, v, **options):
        seen.append(ops._DIRECT_DEVICE)   # what _plain_eager compares the tensors' device with
        return plain(q, k, v, **options)
    monkeypatch.setattr(flashgen, "flash_attn_func", recording, raising=False)
    fn = impls.IMPLS["flashgen_ops"](*_qkv(), True, direction)
    fn()
    assert seen and all(device not in ("cuda", "cpu") for device in seen)   # setup and timed call: no direct path
    assert ops._DIRECT_DEVICE == "cuda" and fn.kernel == "kernel_"
    from bench.run import parse_args
    assert "flashgen_ops" not in parse_args([]).impl and "flashgen" in parse_args([]).impl


def test_flashgen_refusals_are_unavailable(monkeypatch, fake_flashgen):
    import flashgen

    def refuse(q, k, v, **options):
        raise NotImplementedError("flash_attn_func: sliding windows are not supported yet. More text")
    monkeypatch.setattr(flashgen, "flash_attn_func", refuse, raising=False)
    with pytest.raises(impls.Unavailable, match="^flash_attn_func: sliding windows are not supported yet$"):
        impls.IMPLS["flashgen"](*_qkv(), True, "fwd", window=(4, 0))


@pytest.fixture
def fake_fa4(monkeypatch):
    """A stand-in flash_attn.cute with FA4's signatures; its backward asserts softcap == 0 as FA4's does."""
    import sys
    import types
    calls = []

    class Capped(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, softcap):
            ctx.softcap = softcap
            return q + k + v

        @staticmethod
        def backward(ctx, grad):
            assert ctx.softcap == 0.0
            return grad, grad, grad, None

    def flash_attn_func(q, k, v, softmax_scale=None, causal=False, window_size=(None, None), learnable_sink=None,
                        softcap=0.0):
        calls.append(("flash_attn_func", causal, window_size, softcap))
        return Capped.apply(q, k, v, softcap), None

    def flash_attn_varlen_func(q, k, v, cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=None, max_seqlen_k=None,
                               seqused_q=None, seqused_k=None, softmax_scale=None, causal=False):
        calls.append(("flash_attn_varlen_func", cu_seqlens_q.tolist(), max_seqlen_q, causal))
        return Capped.apply(q, k, v, 0.0), None

    cute = types.ModuleType("flash_attn.cute")
    cute.flash_attn_func, cute.flash_attn_varlen_func = flash_attn_func, flash_attn_varlen_func
    package = types.ModuleType("flash_attn")
    package.cute = cute
    monkeypatch.setitem(sys.modules, "flash_attn", package)
    monkeypatch.setitem(sys.modules, "flash_attn.cute", cute)
    return calls


def test_fa4_gets_windows_softcap_and_varlen(fake_fa4):
    impls.fa4_impl(*_qkv(), True, "fwd", window=(4, 0))
    assert fake_fa4[-1] == ("flash_attn_func", True, (4, 0), 0.0)
    impls.fa4_impl(*_qkv(), False, "fwd", softcap=30.0)
    assert fake_fa4[-1] == ("flash_attn_func", False, (None, None), 30.0)
    impls.fa4_impl(*_qkv((10, 2, 64)), True, "bwd", seqlens=(3, 7))()
    assert fake_fa4[-1] == ("flash_attn_varlen_func", [0, 3, 10], 7, True)
    # FA4's bare assert has no message: the reason is its line (pytest rewrites the stand-in's into a message).
    with pytest.raises(impls.Unavailable, match="^FA4 bwd: AssertionError assert .*== 0.0$"):
        impls.fa4_impl(*_qkv(), False, "bwd", softcap=30.0)
    with pytest.raises(impls.Unavailable, match="flash_attn_varlen_func takes no window_size"):
        impls.fa4_impl(*_qkv((10, 2, 64)), True, "fwd", window=(4, 0), seqlens=(3, 7))


def test_cu_seqlens_are_flash_attentions_offsets():
    # The helper the benchmark's varlen rows (and the varlen tests, the sanitizer workload) use.
    from flashgen.varlen import cu_seqlens_of
    cu = cu_seqlens_of((3, 5, 2), "cpu")
    assert cu.dtype == torch.int32 and cu.tolist() == [0, 3, 8, 10]


# --- the report --------------------------------------------------------------------------------

META = {"gpu": "GPU", "date": "2026-12-01", "torch": "x", "command": "python -m bench --grid features",
        "ceilings": {"matmul_bf16_tflops": 800.0, "copy_gb_per_s": 3000.0}}


def _rows(cases, impl_ms):
    rows = []
    for case in cases:
        for impl, ms in impl_ms.items():
            ms = ms(case) if callable(ms) else ms
            rows.append(asdict(case) | {"impl": impl, "nheads": case.nheads, "ms": ms, "error": None if ms else "no",
                                        "tflops": case_flops(case) / ms / 1e9 if ms else None, "kernel": None})
    return rows


def test_report_shows_the_variant_column_and_flashgen_ms_only_with_features():
    plain = report.markdown(META, _rows(default_grid(True), {"flashgen": 2.0, "sdpa_cudnn": 4.0}))
    assert "| dir | hdim | dtype | causal | batch x seqlen | flashgen | sdpa_cudnn | flashgen/best |\n" in plain
    assert "variant" not in plain and "flashgen ms" not in plain and "visible" not in plain

    window_rows = [c for c in features_grid() if c.head_dim == 128 and c.direction == "fwd" and c.seqlen == 32768]
    table = report.markdown(META, _rows(window_rows, {"flashgen": lambda c: 2.0 if c.window else 16.0,
                                                      "sdpa_cudnn": lambda c: None if c.window else 20.0}))
    assert ("| dir | hdim | dtype | causal | batch x seqlen | variant | flashgen | sdpa_cudnn | flashgen/best |"
            " flashgen ms |") in table
    assert "| fwd | 128 | bf16 | yes | 1 x 32768 | - | 275 (34%) | 220 (27%) | 1.25 | 16.000 |" in table
    assert "| fwd | 128 | bf16 | yes | 1 x 32768 | window (4096, 0) | 516 (64%) | n/a | n/a | 2.000 |" in table
    assert "count only the (query, key) pairs" in table


def test_report_keeps_varlen_and_padded_rows_apart():
    rows = _rows([c for c in features_grid() if c.varlen and c.direction == "bwd"], {"flashgen": 3.0})
    lines = [line for line in report.markdown(META, rows).splitlines() if line.startswith("| bwd")]
    assert len(lines) == 2
    assert "padded to 3990: 9 seqs, 16384 tokens" in lines[0] and "| varlen: 9 seqs, 16384 tokens |" in lines[1]
