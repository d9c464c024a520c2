"""Issue 12: a Gemma-2-style model (head dim 256, attention softcap, sliding-window layers
alternating with global ones, GQA) trains through transformers' attention interface on flashgen
and matches eager attention by flashgen's error rule.

The model, the adapter and the comparisons are tests/gpu/gemma_style.py. What runs:
- float32 eager attention: the reference;
- bf16 eager attention: the baseline (mixed precision: float32 master weights, autocast bf16);
- bf16 flashgen ("fgen" in transformers' AttentionInterface), the same way;
from the same initial weights and tokens: the untrained logits, then 3 SGD steps (momentum 0.9)
on one batch, comparing the per-token losses before each step and after the last, the first
step's gradients and the final parameters, tensor by tensor:
max|flashgen - reference| <= 2 x max|bf16 eager - reference| + 1e-5, no NaN/Inf
(flashgen.reference.check_against_reference). The issue words the bound against SDPA's distance
from eager; transformers' "sdpa" attention drops `softcap` (5.17.0: sdpa_attention_forward takes it
in **kwargs and ignores it; test_sdpa_is_no_softcap_baseline), so SDPA computes another function
here, and bf16 eager against a float32 eager reference stands in for it: the project's rule.
Two models (gemma_style.SPECS): Gemma 2's caps (attention 50, where these logits barely reach the
cap) and attention softcap 10, where dropping the cap would fail the check.

Without transformers the module skips. The CPU tests check the adapter itself with
flashgen.reference standing in for the kernels: the window and softcap conventions against eager,
the refusal of a padded batch, the comparison run end to end (an ideal kernel passes it), and that
it fails a window one key too wide, a dropped softcap and a backward without the softcap's
derivative. tests/conftest.py skips everything under tests/gpu on a machine without a GPU (its
"gpu" keyword matches the folder's name), these too; to run them there:

    python -m pytest --noconftest tests/gpu/test_gemma_style.py -k "not trains_like"

The GPU tests need the head-dim-256 bf16 kernels with softcap (global layers) and softcap + window
(sliding layers), forward and backward, and skip when this build lacks them (the suites run with
FLASHGEN_JIT=0):

    python build.py --catalog bench/tuning/features.yaml --build-dir build_features \\
        --hdim 256 --features softcap --features softcap,window
    FLASHGEN_BUILD_DIR=build_features python -m pytest tests/gpu/test_gemma_style.py
"""
import dataclasses
import functools

import pytest
import torch

pytest.importorskip("transformers")

import flashgen  # noqa: E402
from flashgen import dispatch, ops  # noqa: E402
from flashgen.errors import ExtensionNotBuiltError  # noqa: E402
from flashgen.inputs import mask_args  # noqa: E402
from tests.gpu import gemma_style as gs  # noqa: E402

BF16 = torch.bfloat16


# The CPU tests' batches: the GPU specs' at half the length (128 tokens, still twice the window), to
# stay quick where they also run, in the GPU suite (tests/conftest.py skips everything under
# tests/gpu without a GPU). The models are the same.
CPU_SPECS = {name: dataclasses.replace(spec, seq_len=spec.seq_len // 2) for name, spec in gs.SPECS.items()}


@pytest.fixture(scope="module")
def reference_calls():
    """The adapter over flashgen.reference, registered as gs.REFERENCE_NAME; the list collects its calls."""
    calls = []
    gs.register(gs.REFERENCE_NAME, gs.reference_kernel, calls)
    return calls


@pytest.fixture(scope="module")
def base_models():
    """spec name -> the float32 model with its initial weights (on the CPU), built once (the
    length does not change the weights: CPU_SPECS share them)."""
    return {name: gs.build_model(spec) for name, spec in gs.SPECS.items()}


# --- the adapter on a CPU, over flashgen.reference ------------------------------------------------

def test_adapter_matches_eager_in_float32(reference_calls, base_models):
    """In float32 the adapter (over the reference) computes what eager attention computes: the
    window convention (a sliding_window W is the query and W - 1 keys before it), softcap, the
    scale, GQA, the layout, forward and backward through 3 training steps."""
    spec, base = CPU_SPECS["gemma2"], base_models["gemma2"]
    reference_calls.clear()
    got = gs.results(base, gs.REFERENCE_NAME, spec, "cpu")
    want = gs.results(base, "eager", spec, "cpu")
    for name in want:
        err = gs.distance(got[name], want[name])
        assert err <= 1e-4 * max(1.0, want[name].abs().max().item()), f"{name}: {err:.3e}"
    first_pass = reference_calls[:spec.layers]
    assert [c["layer_idx"] for c in first_pass] == list(range(spec.layers))
    for call in first_pass:
        sliding = call["layer_idx"] % 2 == 0   # Gemma2Config: layers 0, 2, ... slide
        assert call["window_size"] == ((spec.sliding_window - 1,) * 2 if sliding else (-1, -1)), call
        assert call["causal"] is True and call["softcap"] == spec.attn_softcap, call
        assert call["softmax_scale"] == spec.head_dim ** -0.5, call
        assert call["shape"] == (spec.batch, spec.seq_len, spec.heads, spec.head_dim), call
        assert call["kv_shape"] == (spec.batch, spec.seq_len, spec.kv_heads, spec.head_dim), call


def test_window_normalizes_as_flash_attention():
    """transformers' (W - 1, W - 1) with causal is FlashAttention's (W - 1, 0): the kernels get
    causal with a left bound of W - 1 (flashgen.inputs.mask_args: right 0 is the causal flag), and
    no window when the keys are no more than W."""
    assert gs.window_size_for(64, 256) == (63, 63)
    assert mask_args(True, gs.window_size_for(64, 256), 256, 256) == (True, 63, -1)
    assert gs.window_size_for(64, 64) == (-1, -1)
    assert gs.window_size_for(None, 256) == (-1, -1)


def test_rule_catches_a_wrong_window_and_a_dropped_softcap(reference_calls, base_models):
    """The logits check of the GPU tests fails an adapter whose window is one key too wide, and
    (on the softcap-10 model) one that drops the softcap: the bound is tight enough to see them."""
    def wider(q, k, v, window_size=(-1, -1), **kw):
        left, right = window_size
        return gs.reference_kernel(q, k, v, window_size=(left + 1 if left >= 0 else left, right), **kw)

    def uncapped(q, k, v, softcap=0.0, **kw):
        return gs.reference_kernel(q, k, v, softcap=0.0, **kw)

    gs.register("fgen_wider_window", wider)
    gs.register("fgen_uncapped", uncapped)
    for spec_name, broken in (("gemma2", "fgen_wider_window"), ("softcap10", "fgen_wider_window"),
                              ("softcap10", "fgen_uncapped")):
        spec, base = CPU_SPECS[spec_name], base_models[spec_name]
        reference = {"logits": gs.logits(gs.with_attention(base, "eager"), spec, "cpu")}
        baseline = {"logits": gs.logits(gs.with_attention(base, "eager"), spec, "cpu", BF16)}
        got = {"logits": gs.logits(gs.with_attention(base, broken), spec, "cpu", BF16)}
        [row] = gs.compare(got, reference, baseline)
        assert not row["ok"] and row["ratio"] > 4, f"{spec_name}, {broken}: {row}"


class _CappedForwardUncappedBackward(torch.autograd.Function):
    """The reference's attention with the softcap, differentiated as if it had none: a kernel whose
    backward forgot the softcap's derivative."""

    @staticmethod
    def forward(ctx, q, k, v, options):
        ctx.save_for_backward(q, k, v)
        ctx.options = options
        return gs.reference_kernel(q, k, v, **options)

    @staticmethod
    def backward(ctx, dout):
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_() for t in ctx.saved_tensors]
            out = gs.reference_kernel(*leaves, **{**ctx.options, "softcap": 0.0})
            return (*torch.autograd.grad(out, leaves, dout), None)


def test_rule_catches_a_wrong_softcap_gradient(reference_calls, base_models):
    """The gradient and parameter checks of the GPU tests fail a kernel whose forward is right but
    whose backward drops the softcap's derivative (softcap-10 model, one step): by ~20x on a CPU."""
    gs.register("fgen_uncapped_backward", lambda q, k, v, **options: _CappedForwardUncappedBackward.apply(
        q, k, v, options))
    spec, base = CPU_SPECS["softcap10"], base_models["softcap10"]
    reference = gs.results(base, "eager", spec, "cpu", steps=1)
    baseline = gs.results(base, "eager", spec, "cpu", BF16, steps=1)
    rows = gs.compare(gs.results(base, "fgen_uncapped_backward", spec, "cpu", BF16, steps=1), reference, baseline)
    by_name = {r["name"]: r for r in rows}
    assert by_name["logits"]["ok"], gs.table(rows)
    bad = by_name["grad model.layers.0.self_attn.q_proj.weight"]
    assert not bad["ok"] and bad["ratio"] > 4, gs.table(rows)


def test_padded_batch_is_refused(reference_calls, base_models):
    """A padding mask reaches the adapter (transformers' FlashAttention mask function, registered
    with it) and is refused; an all-ones mask is no mask."""
    spec, base = CPU_SPECS["gemma2"], base_models["gemma2"]
    model = gs.with_attention(base, gs.REFERENCE_NAME).eval()
    ids = gs.tokens(spec, "cpu")[:, :32]
    mask = torch.ones_like(ids)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
        mask[0, :4] = 0
        with pytest.raises(NotImplementedError, match="padded batch"):
            model(input_ids=ids, attention_mask=mask)


def test_sdpa_is_no_softcap_baseline():
    """transformers' SDPA attention ignores softcap in this version, so it is no baseline for a
    softcap model (the module docstring). Should it start applying it, the issue's literal bound
    (twice SDPA's distance from eager) becomes usable: this skip says so."""
    if gs.sdpa_honours_softcap():
        pytest.skip("transformers' sdpa attention applies softcap now: it could serve as the issue's baseline")


def test_rule_holds_for_the_reference_kernel_on_cpu(reference_calls, base_models):
    """The GPU tests' comparison end to end on a CPU (bf16 autocast), with flashgen.reference's
    float32 attention standing in for the kernels: an ideal kernel passes it."""
    spec, base = CPU_SPECS["gemma2"], base_models["gemma2"]
    reference = gs.results(base, "eager", spec, "cpu")
    baseline = gs.results(base, "eager", spec, "cpu", BF16)
    rows = gs.compare(gs.results(base, gs.REFERENCE_NAME, spec, "cpu", BF16), reference, baseline)
    assert all(r["ok"] for r in rows), "\n" + gs.table(rows)


# --- flashgen on the GPU ----------------------------------------------------------------------------

def kernels_or_skip(spec: gs.ModelSpec, arch):
    """Skip unless this build holds the forward and backward kernels every layer needs: head dim
    256, bf16, softcap (global layers) and softcap + window (sliding layers)."""
    capability = torch.cuda.get_device_capability()
    for window in ((-1, -1), gs.window_size_for(spec.sliding_window, spec.seq_len)):
        _, left, right = mask_args(True, window, spec.seq_len, spec.seq_len)
        features = ops.required_features(left, right, spec.attn_softcap)
        for direction in ("fwd", "bwd"):
            try:
                dispatch.choose_kernel(direction, spec.head_dim, BF16, capability, arch, features)
            except (flashgen.KernelNotBuiltError, ExtensionNotBuiltError) as exc:
                pytest.skip(f"{arch or 'auto'}: {str(exc).split('. ')[0]}")


@pytest.fixture(scope="module")
def gpu_runs(base_models, reference_calls):
    """spec name -> the float32 eager reference, the bf16 eager baseline and, for the report, the
    bf16 run over flashgen.reference (an ideal kernel) on the GPU; computed once per spec."""
    cache = {}

    def get(name):
        if name not in cache:
            spec, base = gs.SPECS[name], base_models[name]   # reference_calls registered REFERENCE_NAME
            precision = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision("highest")   # no TF32 in the float32 reference
            try:
                reference = gs.results(base, "eager", spec, "cuda")
            finally:
                torch.set_float32_matmul_precision(precision)
            baseline = gs.results(base, "eager", spec, "cuda", BF16)
            ideal = gs.results(base, gs.REFERENCE_NAME, spec, "cuda", BF16)
            cache[name] = reference, baseline, ideal
        return cache[name]

    return get


@pytest.mark.gpu
@pytest.mark.parametrize("spec_name", list(gs.SPECS))
def test_gemma2_trains_like_eager(spec_name, arch, base_models, gpu_runs):
    """flashgen in a Gemma-2-style model through transformers, bf16: the untrained logits, the
    per-token losses of 3 SGD steps and after them, the first gradients and the final parameters,
    each within twice bf16 eager attention's distance from the float32 eager reference."""
    spec, base = gs.SPECS[spec_name], base_models[spec_name]
    kernels_or_skip(spec, arch)
    calls = []
    gs.register(gs.NAME, functools.partial(gs.flash_attn_kernel, arch=arch), calls)
    reference, baseline, ideal = gpu_runs(spec_name)
    got = gs.results(base, gs.NAME, spec, "cuda", BF16)

    # flashgen ran every layer, with the window on the sliding ones and the softcap on all
    windows = {c["layer_idx"]: c["window_size"] for c in calls}
    assert sorted(windows) == list(range(spec.layers))
    assert all(windows[i] == ((spec.sliding_window - 1,) * 2 if i % 2 == 0 else (-1, -1)) for i in windows), windows
    assert all(c["softcap"] == spec.attn_softcap and c["dtype"] == BF16 for c in calls)
    for name, tensors in (("reference", reference), ("bf16 eager", baseline)):
        bad = [n for n, t in tensors.items() if not torch.isfinite(t).all()]
        assert not bad, f"{name} has NaN/Inf in {bad}"

    rows = gs.compare(got, reference, baseline)
    ideal_rows = gs.compare(ideal, reference, baseline)
    losses = {n: t[-1].mean().item() for n, t in (("reference", reference["token losses"]),
                                                  ("bf16 eager", baseline["token losses"]),
                                                  ("flashgen", got["token losses"]))}
    report = (f"{spec_name}, {arch or 'auto'}: mean loss after the steps {losses}\n"
              f"flashgen, worst ratios to bf16 eager's error:\n{gs.table(rows)}\n"
              f"flashgen.reference's attention in bf16 (an ideal kernel), the same:\n{gs.table(ideal_rows, 4)}")
    print(report)
    failed = [r["message"] for r in rows if not r["ok"]]
    assert not failed, "\n".join(failed[:10]) + "\n" + report
