// Device helpers of the sm80 kernels: the register GEMM loops (ldmatrix one k-slice ahead) and
// the m16n8 fragment layout conversions. (Global row tiles and predicated copies: common/copies.cuh.)
#pragma once
#include <cute/tensor.hpp>
#include <cutlass/array.h>
#include <cutlass/numeric_conversion.h>

#include "flashgen/common/copies.cuh"
#include "flashgen/common/utils.cuh"
#include "flashgen/params.h"

namespace flashgen::sm80 {
using namespace cute;

// acc += A·B with both operands in shared memory, streamed to registers one k-slice ahead.
template <class TiledMma, class Acc, class FragA, class FragB, class SmemA, class SmemB,
          class CopyA, class CopyB>
__device__ __forceinline__ void gemm_smem_smem(TiledMma& mma, Acc& acc, FragA& frag_a, FragB& frag_b,
                                               SmemA const& smem_a, SmemB const& smem_b,
                                               CopyA const& copy_a, CopyB const& copy_b, int tidx) {
  auto thr_copy_a = copy_a.get_thread_slice(tidx);
  auto thr_copy_b = copy_b.get_thread_slice(tidx);
  Tensor frag_a_view = thr_copy_a.retile_D(frag_a);
  Tensor frag_b_view = thr_copy_b.retile_D(frag_b);
  constexpr int kSteps = decltype(size<2>(frag_a))::value;
  cute::copy(copy_a, smem_a(_, _, 0), frag_a_view(_, _, 0));
  cute::copy(copy_b, smem_b(_, _, 0), frag_b_view(_, _, 0));
  CUTE_UNROLL
  for (int k = 0; k < kSteps; ++k) {
    if (k + 1 < kSteps) {
      cute::copy(copy_a, smem_a(_, _, k + 1), frag_a_view(_, _, k + 1));
      cute::copy(copy_b, smem_b(_, _, k + 1), frag_b_view(_, _, k + 1));
    }
    cute::gemm(mma, frag_a(_, _, k), frag_b(_, _, k), acc);
  }
}

// acc += A·B with A already in registers (e.g. the probabilities P) and B in shared memory.
template <class TiledMma, class Acc, class FragA, class FragB, class SmemB, class CopyB>
__device__ __forceinline__ void gemm_reg_smem(TiledMma& mma, Acc& acc, FragA const& frag_a,
                                              FragB& frag_b, SmemB const& smem_b,
                                              CopyB const& copy_b, int tidx) {
  auto thr_copy_b = copy_b.get_thread_slice(tidx);
  Tensor frag_b_view = thr_copy_b.retile_D(frag_b);
  constexpr int kSteps = decltype(size<2>(frag_a))::value;
  cute::copy(copy_b, smem_b(_, _, 0), frag_b_view(_, _, 0));
  CUTE_UNROLL
  for (int k = 0; k < kSteps; ++k) {
    if (k + 1 < kSteps) cute::copy(copy_b, smem_b(_, _, k + 1), frag_b_view(_, _, k + 1));
    cute::gemm(mma, frag_a(_, _, k), frag_b(_, _, k), acc);
  }
}

// An m16n8 accumulator fragment ((2,2), MMA_M, MMA_N) viewed as (rows, cols) of this thread:
// ((2, MMA_M), (2, MMA_N)). Row reductions (softmax) and masks read it this way.
template <class Layout>
CUTE_HOST_DEVICE auto accumulator_as_rows_cols(Layout const& acc) {
  auto l = logical_divide(acc, Shape<_2>{});
  return make_layout(make_layout(get<0, 1>(l), get<1>(l)), make_layout(get<0, 0>(l), get<2>(l)));
}

// Two n-adjacent m16n8 accumulators hold exactly the registers of one m16n8k16 A operand:
// ((2,2), MMA_M, MMA_N) -> ((2,2,2), MMA_M, MMA_N/2). This lets P feed the next MMA directly.
template <class Layout>
CUTE_HOST_DEVICE auto accumulator_as_operand_a(Layout const& acc) {
  auto l = logical_divide(acc, Shape<Underscore, Underscore, _2>{});
  return make_layout(make_layout(get<0>(l), get<2, 0>(l)), get<1>(l), get<2, 1>(l));
}


}  // namespace flashgen::sm80
