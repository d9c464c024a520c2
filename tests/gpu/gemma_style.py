"""flashgen as a transformers attention implementation, and a small Gemma-2-style model to run it in
(issue 12; the tests are tests/gpu/test_gemma_style.py).

`register()` adds flashgen (as "fgen": NAME says why not "flashgen") to transformers'
AttentionInterface (the function each attention layer calls) and to its AttentionMaskInterface
with transformers' own FlashAttention mask function, which hands the layers no mask when there is
no padding and the 2D padding mask otherwise, so a padded batch reaches the adapter and is refused
there instead of being dropped silently (an implementation with no mask function gets no mask). Then
`model.set_attn_implementation("fgen")` (or `attn_implementation="fgen"` at load time) runs
every attention layer on `flashgen.flash_attn_func`.

The adapter follows transformers' FlashAttention 2 integration (transformers/integrations/
flash_attention.py and modeling_flash_attention_utils._process_flash_attention_kwargs, read in
transformers 5.17.0, the version on the GPU machine's image) exactly:
- q, k, v arrive as (batch, heads, seq, head_dim) and go to the kernel as (batch, seq, heads,
  head_dim); the output goes back as (batch, seq, heads, head_dim), which the layer reshapes;
- causal from the `is_causal` keyword, else `module.is_causal`;
- a layer's `sliding_window` W (the window's total length: the query and the W - 1 keys before
  it, transformers' mask `kv_idx > q_idx - W`) becomes `window_size=(W - 1, W - 1)` with causal
  (FlashAttention's inclusive bounds; causal cuts the right side to 0), and only when the keys
  outnumber W (a window reaching every key is no window);
- `softcap` and `scaling` go through as `softcap` and `softmax_scale`;
- float32 q/k/v (autocast: the rotary embedding upcasts q and k) are cast to the autocast dtype.

`kernel` swaps flash_attn_func for a stand-in with its signature (`reference_kernel`: flashgen's
float32 reference), so the adapter's conventions are checked on a CPU against eager attention.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

# Not "flashgen": transformers (5.17.0, modeling_utils._check_and_adjust_attn_implementation) takes
# any implementation name containing "flash" for a FlashAttention kernel and tries to load it from
# the Hub's kernels when set_attn_implementation / attn_implementation= names it, which fails
# ("Could not find the currently requested flash attention implementation at `flashgen`").
NAME = "fgen"
REFERENCE_NAME = "fgen_reference"   # the same adapter over flashgen.reference (runs on a CPU)


def flash_attn_kernel(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                      softcap=0.0, arch=None):
    """flashgen.flash_attn_func; arch forces a kernel family (None: dispatch's choice)."""
    import flashgen
    return flashgen.flash_attn_func(q, k, v, dropout_p, softmax_scale, causal, window_size, softcap, arch=arch)


def reference_kernel(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                     softcap=0.0):
    """flash_attn_func's semantics in plain PyTorch (flashgen.reference: float32 math, output in
    q's dtype), differentiable: the adapter's stand-in on a CPU, and an ideal kernel."""
    from flashgen.reference import attention_reference
    if dropout_p:
        raise NotImplementedError("dropout")
    with torch.autocast(q.device.type, enabled=False):   # else its einsums would run in bf16
        out, _ = attention_reference(q, k, v, causal=causal, softmax_scale=softmax_scale, upcast=True,
                                     window_size=window_size, softcap=softcap)
    return out


def _target_dtype(query: torch.Tensor, module) -> torch.dtype | None:
    """transformers' get_target_dtype: a float32 query runs in the autocast dtype, else in the
    dtype of the model's Linear weights."""
    if query.dtype != torch.float32:
        return None
    if torch.is_autocast_enabled(query.device.type):
        return torch.get_autocast_dtype(query.device.type)
    return next(m for m in module.modules() if isinstance(m, torch.nn.Linear)).weight.dtype


def window_size_for(sliding_window: int | None, key_length: int) -> tuple[int, int]:
    """transformers' FlashAttention window for a layer's sliding_window (total length W: the query
    and W - 1 keys before it): (W - 1, W - 1) with causal when the keys outnumber W, else none."""
    if sliding_window is not None and key_length > sliding_window:
        return (sliding_window - 1, sliding_window - 1)
    return (-1, -1)


def make_attention_forward(kernel=flash_attn_kernel, calls: list | None = None):
    """An AttentionInterface function running `kernel` (flash_attn_func's signature). `calls`,
    if given, collects each call's (layer_idx, causal, window_size, softcap, softmax_scale, dtype)."""

    def attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                          sliding_window=None, softcap=None, is_causal=None, **kwargs):
        if attention_mask is not None:
            raise NotImplementedError(
                "flashgen adapter: got an attention mask, i.e. a padded batch (transformers' FlashAttention "
                "mask function passes none for a plain causal batch); padding needs the varlen path")
        for name in ("cu_seq_lens_q", "cu_seq_lens_k", "s_aux"):
            if kwargs.get(name) is not None:
                raise NotImplementedError(f"flashgen adapter: {name} (packed sequences / sinks) is not wired")
        if kwargs.get("output_attentions", False):
            raise NotImplementedError("flashgen adapter: output_attentions")
        causal = is_causal if is_causal is not None else module.is_causal
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))
        target = _target_dtype(q, module)
        if target is not None:
            q, k, v = (t.to(target) for t in (q, k, v))
        elif k.dtype != q.dtype or v.dtype != q.dtype:
            k, v = k.to(q.dtype), v.to(q.dtype)
        window = window_size_for(sliding_window, k.shape[1])
        cap = float(softcap) if softcap is not None else 0.0
        if calls is not None:
            calls.append(dict(layer_idx=getattr(module, "layer_idx", None), causal=causal, window_size=window,
                              softcap=cap, softmax_scale=scaling, dtype=q.dtype, shape=tuple(q.shape),
                              kv_shape=tuple(k.shape)))
        out = kernel(q, k, v, dropout_p=dropout, softmax_scale=scaling, causal=causal, window_size=window,
                     softcap=cap)
        return out, None

    return attention_forward


def register(name: str = NAME, kernel=flash_attn_kernel, calls: list | None = None) -> str:
    """Register the adapter as `name` in transformers' attention and attention-mask interfaces
    (global, idempotent: a later call replaces the function). Returns name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask
    AttentionInterface.register(name, make_attention_forward(kernel, calls))
    AttentionMaskInterface.register(name, flash_attention_mask)
    return name


# --- the model ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """A small Gemma 2: head dim 256 (its real one), GQA 4:2, attention softcap 50, final-logit
    softcap 30, layers alternating sliding-window (even layers, window 64 < seq_len) and global, as
    Gemma2Config lays them out; query_pre_attn_scalar = head_dim (scale 1/16).

    qk_gain scales the initial q_proj and k_proj weights so the attention is not near-uniform: at
    the default init (0.02) layer 0's scaled logits have std 0.2, softcap 50 is the identity to
    1e-5 and a wrong window barely shows. Measured on a CPU (float32, seed 0): qk_gain 3 gives
    logit std 1.8, where an off-by-one window moves the logits by 1.5 against bf16 eager's 0.065
    from float32, but dropping the softcap only by 0.03 (Gemma's cap 50 is far above these
    logits); qk_gain 4 with softcap 10 (SPECS["softcap10"]) gives std 3.3, where dropping the cap
    moves the logits by 1.4 against bf16 eager's 0.13. At qk_gain 6 (std 7) bf16 training drifts
    chaotically (bf16 logits 17% off float32), which hides everything."""
    layers: int = 4
    hidden_size: int = 512
    intermediate_size: int = 1024
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 256
    vocab: int = 512
    sliding_window: int = 64
    attn_softcap: float = 50.0
    final_softcap: float = 30.0
    qk_gain: float = 3.0
    batch: int = 2
    seq_len: int = 256
    seed: int = 0

    def config(self):
        from transformers import Gemma2Config
        config = Gemma2Config(
            vocab_size=self.vocab, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.layers, num_attention_heads=self.heads, num_key_value_heads=self.kv_heads,
            head_dim=self.head_dim, query_pre_attn_scalar=self.head_dim, sliding_window=self.sliding_window,
            attn_logit_softcapping=self.attn_softcap, final_logit_softcapping=self.final_softcap,
            max_position_embeddings=max(self.seq_len, 512), attention_dropout=0.0, use_cache=False,
            pad_token_id=0, bos_token_id=2, eos_token_id=1)
        config._attn_implementation = "eager"
        return config


def build_model(spec: ModelSpec):
    """The model in float32 with eager attention, initialized from spec.seed (CPU generator, so the
    weights are the same on any device), on the CPU."""
    from transformers import Gemma2ForCausalLM
    torch.manual_seed(spec.seed)
    model = Gemma2ForCausalLM(spec.config()).float()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(spec.qk_gain)
            layer.self_attn.k_proj.weight.mul_(spec.qk_gain)
    return model


def with_attention(model, implementation: str, device=None):
    """A copy of model (same weights) whose attention layers run `implementation`."""
    model = copy.deepcopy(model)
    model.set_attn_implementation(implementation)
    assert model.config._attn_implementation == implementation, model.config._attn_implementation
    return model.to(device) if device is not None else model


def tokens(spec: ModelSpec, device) -> torch.Tensor:
    """(batch, seq_len) random token ids past the special ones (no padding), the same on any device."""
    gen = torch.Generator().manual_seed(spec.seed + 1)
    return torch.randint(3, spec.vocab, (spec.batch, spec.seq_len), generator=gen).to(device)


def _autocast(device, dtype):
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def logits(model, spec: ModelSpec, device, autocast_dtype=None) -> torch.Tensor:
    """The untrained model's float32 logits on the spec's batch."""
    ids = tokens(spec, device)
    model.eval()
    with torch.no_grad(), _autocast(device, autocast_dtype):
        return model(input_ids=ids).logits.float()


def token_losses(model, ids: torch.Tensor) -> torch.Tensor:
    """(batch, seq_len - 1) float32 cross-entropy of each next-token prediction; their mean is the
    model's loss (labels = ids, no padding). Compared per token: a single mean can sit close to
    the reference by cancellation, which makes a 2x bound on it a coin toss."""
    logits = model(input_ids=ids).logits.float()
    return torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")


@dataclass
class Run:
    losses: torch.Tensor                        # (steps + 1, batch, seq_len - 1): before each step, after the last
    params: dict = field(default_factory=dict)        # name -> float32 parameter after the steps
    grads: dict = field(default_factory=dict)         # name -> float32 gradient of the first step


def train(model, spec: ModelSpec, device, steps: int = 3, lr: float = 0.1, autocast_dtype=None) -> Run:
    """`steps` SGD steps (momentum 0.9) on the spec's batch, then the losses once more. The weights
    stay float32 (master weights); autocast_dtype (torch.bfloat16) runs the matmuls and the
    attention in it, as mixed-precision training does; None runs all in float32 (the reference).
    SGD rather than Adam: an Adam step is about lr x sign(grad) per element, which hides how far
    two gradients differ; an SGD step is lr x grad."""
    ids = tokens(spec, device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses, first_grads = [], {}
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, autocast_dtype):
            per_token = token_losses(model, ids)
        per_token.mean().backward()
        if step == 0:
            first_grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters()
                           if p.grad is not None}
        losses.append(per_token.detach())
        optimizer.step()
    with torch.no_grad(), _autocast(device, autocast_dtype):
        losses.append(token_losses(model, ids))
    params = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    return Run(torch.stack(losses), params, first_grads)


SPECS = {
    "gemma2": ModelSpec(),                                    # Gemma 2's caps (50, 30)
    "softcap10": ModelSpec(qk_gain=4.0, attn_softcap=10.0),  # a cap the logits reach
}


# --- comparisons -------------------------------------------------------------------------------

def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def compare(got, reference, baseline, atol: float = 1e-5) -> list[dict]:
    """Each compared tensor by flashgen's rule (flashgen.reference.check_against_reference):
    max|got - reference| <= 2 x max|baseline - reference| + atol, NaN/Inf never passing.
    got, reference, baseline: {name: tensor} (the same names). Returns one row per name: name,
    error, baseline error, tolerance, ratio (error / baseline error), ok, and the rule's message
    when it fails."""
    from flashgen.reference import NumericsError, check_against_reference, error_tolerance
    rows = []
    for name in reference:
        tolerance, base = error_tolerance(reference[name], baseline[name], atol)
        row = dict(name=name, error=float("nan"), baseline=base, tolerance=tolerance, ok=True, message="")
        try:
            row["error"] = check_against_reference(name, got[name], reference[name], baseline[name], atol)["max_error"]
        except NumericsError as exc:
            row.update(ok=False, message=str(exc))
            if torch.isfinite(got[name]).all():
                row["error"] = distance(got[name], reference[name])
        row["ratio"] = row["error"] / base if base > 0 else (0.0 if row["error"] == 0 else float("inf"))
        rows.append(row)
    return rows


def run_tensors(run: Run, logits_: torch.Tensor) -> dict:
    """What compare() checks of one implementation's results: the untrained logits, the
    per-token losses before each step and after the last, the first step's gradients and the
    parameters after the steps, one entry per tensor."""
    tensors = {"logits": logits_, "token losses": run.losses}
    tensors.update({f"grad {n}": g for n, g in run.grads.items()})
    tensors.update({f"param {n}": p for n, p in run.params.items()})
    return tensors


def results(base_model, implementation: str, spec: ModelSpec, device, autocast_dtype=None, steps: int = 3,
            lr: float = 0.1) -> dict:
    """run_tensors() of base_model's copy running `implementation` on `device`: its untrained
    logits, then `steps` training steps (train())."""
    model = with_attention(base_model, implementation, device)
    untrained = logits(model, spec, device, autocast_dtype)
    return run_tensors(train(model, spec, device, steps, lr, autocast_dtype), untrained)


def table(rows: list[dict], top: int = 8) -> str:
    """The rows with the largest error / baseline ratio first, one line each."""
    worst = sorted(rows, key=lambda r: -r["ratio"] if r["ratio"] == r["ratio"] else -float("inf"))[:top]
    return "\n".join(f"  {'ok  ' if r['ok'] else 'FAIL'} {r['name']}: error {r['error']:.3e}, baseline "
                     f"{r['baseline']:.3e} (ratio {r['ratio']:.2f}), tolerance {r['tolerance']:.3e}" for r in worst)


def sdpa_honours_softcap() -> bool:
    """Does transformers' "sdpa" attention apply `softcap`? (5.17.0's sdpa_attention_forward takes
    it in **kwargs and drops it, so SDPA computes uncapped attention there and is no baseline
    for a softcap model.) A tiny CPU probe against the eager formula."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    class Module(torch.nn.Module):
        is_causal = True
        num_key_value_groups = 1

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 8, 4, generator=gen) * 4 for _ in range(3))
    softcap, scale = 1.0, 0.5
    out, _ = sdpa_attention_forward(Module(), q, k, v, None, dropout=0.0, scaling=scale, softcap=softcap,
                                    is_causal=True)
    scores = torch.tanh(q @ k.transpose(-1, -2) * scale / softcap) * softcap
    scores = scores.masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), float("-inf"))
    want = (scores.softmax(-1) @ v).transpose(1, 2)
    return torch.allclose(out, want, atol=1e-4)

