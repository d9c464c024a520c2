// Online softmax over key blocks (FlashAttention): running row max and row sum in fp32, the
// output accumulator rescaled when the max grows. Scores stay unscaled; exp2 takes
// score * scale * log2(e) - max * scale * log2(e) as one FFMA.
#pragma once
#include <cute/tensor.hpp>

#include "flashgen/common/utils.cuh"

namespace flashgen {
using namespace cute;

// A row's max or sum over this thread's columns in FLASHGEN_ROW_CHAINS independent chains,
// combined at the end. One serial chain (the default) measured faster than four on the sm90
// forward (H200, session 12: four lost 2-5% at head dim 64 and 256 non-causal, even at 128),
// though each FMNMX / FADD of one chain waits out the last one's latency. Kept for A/Bs:
// FLASHGEN_NVCC_FLAGS=-DFLASHGEN_ROW_CHAINS=4.
#ifdef FLASHGEN_ROW_CHAINS
constexpr int kRowChains = FLASHGEN_ROW_CHAINS;
#else
constexpr int kRowChains = 1;
#endif
static_assert(kRowChains >= 1, "FLASHGEN_ROW_CHAINS: at least one chain");

template <class Scores, class Op>
__device__ __forceinline__ float reduce_row(Scores const& scores, int mi, Op op) {
  constexpr int kCols = decltype(size<1>(scores))::value;
  constexpr int kChains = kCols < kRowChains ? kCols : kRowChains;
  float chain[kChains];
  CUTE_UNROLL
  for (int c = 0; c < kChains; ++c) chain[c] = scores(mi, c);
  CUTE_UNROLL
  for (int ni = kChains; ni < kCols; ++ni) chain[ni % kChains] = op(chain[ni % kChains], scores(mi, ni));
  // Pairwise: each pass folds the upper half (rounded up) onto the lower, for any count.
  CUTE_UNROLL
  for (int live = kChains; live > 1; live = (live + 1) / 2) {
    CUTE_UNROLL
    for (int c = 0; c < live / 2; ++c) chain[c] = op(chain[c], chain[c + (live + 1) / 2]);
  }
  return chain[0];
}

template <int kRows>
struct OnlineSoftmax {
  float row_max[kRows];
  float row_sum[kRows];  // this thread's partial sum; the quad's total is formed in finish()

  // Turn `scores` (rows, cols) into probabilities relative to the running max, and rescale
  // `out` (rows, head_dim cols) for the new max. kFirst: no previous block to rescale.
  template <bool kFirst, class Scores, class Out>
  __device__ __forceinline__ void update(Scores& scores, Out& out, float scale_log2) {
    CUTE_UNROLL
    for (int mi = 0; mi < kRows; ++mi) {
      const float correction = update_row<kFirst>(scores, mi, scale_log2);
      if (!kFirst) {
        CUTE_UNROLL
        for (int di = 0; di < size<1>(out); ++di) out(mi, di) *= correction;
      }
    }
  }

  // update() in two halves, for kernels whose output accumulator is still being written by an
  // MMA while the next scores are exponentiated: exponentiate() leaves each row's rescaling
  // factor in `correction` (1 for kFirst), rescale() applies it once the accumulator is free.
  // kLazy: a row keeps its running max until a block's max exceeds it by more than
  // kLazyRescaleLog2 (in exp2 units), so probabilities stay below 2^kLazyRescaleLog2 and most
  // blocks of a long row need no rescaling at all; rescale() then skips the rows of a warp
  // whose factors are all 1. Sums and the output stay relative to the same max, so the result
  // is the same up to rounding.
  static constexpr float kLazyRescaleLog2 = 8.f;

  template <bool kFirst, bool kLazy = false, class Scores>
  __device__ __forceinline__ void exponentiate(Scores& scores, float scale_log2, float (&correction)[kRows]) {
    CUTE_UNROLL
    for (int mi = 0; mi < kRows; ++mi) correction[mi] = update_row<kFirst, kLazy>(scores, mi, scale_log2);
  }

  template <bool kLazy = false, class Out>
  __device__ __forceinline__ void rescale(Out& out, const float (&correction)[kRows]) const {
    CUTE_UNROLL
    for (int mi = 0; mi < kRows; ++mi) {
      if (kLazy && !__any_sync(0xffffffff, correction[mi] != 1.f)) continue;  // the warp's rows kept their max
      CUTE_UNROLL
      for (int di = 0; di < size<1>(out); ++di) out(mi, di) *= correction[mi];
    }
  }

  // Normalize `out` by the row sums; return each row's log-sum-exp (natural log) in `lse`.
  // Rows that saw no visible key get out = 0 and lse = +inf.
  template <class Out>
  __device__ __forceinline__ void finish(Out& out, float softmax_scale, float (&lse)[kRows]) {
    CUTE_UNROLL
    for (int mi = 0; mi < kRows; ++mi) {
      const float sum = quad_sum(row_sum[mi]);
      const bool empty = sum == 0.f || sum != sum;
      const float inv = empty ? 1.f : 1.f / sum;
      lse[mi] = empty ? INFINITY : row_max[mi] * softmax_scale + __logf(sum);
      CUTE_UNROLL
      for (int di = 0; di < size<1>(out); ++di) out(mi, di) *= inv;
    }
  }

 private:
  // Row mi of `scores`: the new running max, exp2 of the scaled scores relative to it, the running
  // sum; returns the factor that moves values relative to the old max to the new one.
  template <bool kFirst, bool kLazy = false, class Scores>
  __device__ __forceinline__ float update_row(Scores& scores, int mi, float scale_log2) {
    const float block_max = reduce_row(scores, mi, [](float a, float b) { return fmaxf(a, b); });
    float new_max = quad_max(kFirst ? block_max : fmaxf(row_max[mi], block_max));
    // (A -inf running max always moves: its difference is +inf or NaN, never <= the threshold.)
    if (!kFirst && kLazy && (new_max - row_max[mi]) * scale_log2 <= kLazyRescaleLog2) new_max = row_max[mi];
    // A row that has seen only masked keys keeps max -inf; subtract 0 so exp2 gives 0, not NaN.
    const float max_scaled = new_max == -INFINITY ? 0.f : new_max * scale_log2;
    CUTE_UNROLL
    for (int ni = 0; ni < size<1>(scores); ++ni) scores(mi, ni) = exp2f(scores(mi, ni) * scale_log2 - max_scaled);
    const float block_sum = reduce_row(scores, mi, [](float a, float b) { return a + b; });
    float correction = 1.f;
    if (kFirst) {
      row_sum[mi] = block_sum;
    } else {
      correction = exp2f(row_max[mi] * scale_log2 - max_scaled);
      row_sum[mi] = row_sum[mi] * correction + block_sum;
    }
    row_max[mi] = new_max;
    return correction;
  }
};

}  // namespace flashgen
