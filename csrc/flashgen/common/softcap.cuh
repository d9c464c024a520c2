// Logit softcapping (Gemma 2): scores become softcap * tanh(scores * scale / softcap) before the
// softmax. Kernels built with the softcap feature (kernels.yaml `features`, the plan's kSoftcap)
// replace each raw score S by t = tanh(S * params.softcap_scale) before masking, and the host
// sets the softmax's scale to softcap (params.h), so the online softmax and the LSE stay as
// they are. The backward multiplies dS by dt/dx = 1 - t^2 (x = S * scale), so dQ and dK keep
// their softmax_scale factor.
#pragma once
#include <type_traits>

#include <cute/tensor.hpp>

namespace flashgen {
using namespace cute;

template <class Plan, class = void>
struct SoftcapFeature : std::false_type {};
template <class Plan>
struct SoftcapFeature<Plan, std::void_t<decltype(Plan::kSoftcap)>> : std::bool_constant<Plan::kSoftcap != 0> {};
template <class Plan>
constexpr bool has_softcap_feature() { return SoftcapFeature<Plan>::value; }

// tanh in one MUFU instruction, relative error about 2^-11. The exponent multiplies it by
// softcap, so a probability can be off by about softcap * 2^-11 relative (1.5% at 30, 2.4% at
// 50): FlashAttention 2/3 use the same instruction, and a same-dtype (bf16) computation of
// the capped scores errs more. The forward and the backward use the same, so the backward's
// recomputed probabilities match the forward's LSE.
__device__ __forceinline__ float fast_tanh(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// scores <- tanh(scores * softcap_scale), element by element (any register layout).
template <class Scores>
__device__ __forceinline__ void apply_softcap(Scores& scores, float softcap_scale) {
  CUTE_UNROLL
  for (int i = 0; i < size(scores); ++i) scores(i) = fast_tanh(scores(i) * softcap_scale);
}

// The same, keeping 1 - t^2 (the tanh's derivative) in `derivative` (same layout) for dS.
template <class Scores, class Derivative>
__device__ __forceinline__ void apply_softcap(Scores& scores, float softcap_scale, Derivative& derivative) {
  CUTE_UNROLL
  for (int i = 0; i < size(scores); ++i) {
    const float t = fast_tanh(scores(i) * softcap_scale);
    scores(i) = t;
    derivative(i) = 1.f - t * t;
  }
}

// d tanh(x) / dx = 1 - t^2 for t = tanh(x); 0 for a masked score (t = -inf, whose P is 0: the
// clamp keeps 0 * inf from making dS NaN).
__device__ __forceinline__ float softcap_derivative(float t) { return fmaxf(1.f - t * t, 0.f); }

// Registers for the tanh's derivative: shaped like `scores` with softcap, one unused float without.
template <bool kSoftcap, class Scores>
__device__ __forceinline__ auto softcap_derivative_like(Scores const& scores) {
  if constexpr (kSoftcap) return make_tensor<float>(scores.layout());
  else return make_tensor<float>(Layout<_1>{});
}

// A kernel built with softcap may run a call without it (the dispatch takes the cheapest built
// kernel that covers a call): softcap_scale 0 means off, and these helpers then do nothing.

// The forward's score transform: scores <- tanh(scores * softcap_scale).
template <bool kSoftcap, class Scores>
__device__ __forceinline__ void softcap_scores(Scores& scores, float softcap_scale) {
  if constexpr (kSoftcap) {
    if (softcap_scale != 0.f) apply_softcap(scores, softcap_scale);
  }
}

// The backward's: the same, keeping the derivative for softcap_score_grads.
template <bool kSoftcap, class Scores, class Derivative>
__device__ __forceinline__ void softcap_scores(Scores& scores, float softcap_scale, Derivative& derivative) {
  if constexpr (kSoftcap) {
    if (softcap_scale != 0.f) apply_softcap(scores, softcap_scale, derivative);
  }
}

// dS <- dS * (1 - t^2) (the chain rule through the tanh).
template <bool kSoftcap, class Grads, class Derivative>
__device__ __forceinline__ void softcap_score_grads(Grads& grads, Derivative const& derivative, float softcap_scale) {
  if constexpr (kSoftcap) {
    if (softcap_scale != 0.f) {
      CUTE_UNROLL
      for (int i = 0; i < size(grads); ++i) grads(i) *= derivative(i);
    }
  }
}

}  // namespace flashgen
