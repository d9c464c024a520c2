// Device helpers of the sm80 kernels (the sm90 backward uses some too): global row tiles,
// predicated tile copies, the register GEMM loops and the m16n8 fragment layout conversions.
#pragma once
#include <cute/tensor.hpp>
#include <cutlass/array.h>
#include <cutlass/numeric_conversion.h>

#include "flashgen/common/utils.cuh"
#include "flashgen/params.h"

namespace flashgen::sm80 {
using namespace cute;

// The (seqlen, kHeadDim) rows of one (batch, head) of a (batch, seqlen, heads, head_dim) tensor.
template <class Element, int kHeadDim>
__device__ __forceinline__ auto head_rows(const TensorArg& t, int batch, int head, int seqlen) {
  Element* base = static_cast<Element*>(t.ptr) + batch * t.batch_stride + head * t.head_stride;
  return make_tensor(make_gmem_ptr(base), make_shape(seqlen, Int<kHeadDim>{}), make_stride(t.row_stride, _1{}));
}

// Those rows cut into (kRows, kHeadDim) tiles: tile `block`, or with `_` all of them
// ((kRows, kHeadDim, blocks)).
template <class Element, int kRows, int kHeadDim, class Block>
__device__ __forceinline__ auto head_row_tiles(const TensorArg& t, int batch, int head, int seqlen, Block block) {
  return local_tile(head_rows<Element, kHeadDim>(t, batch, head, seqlen), Shape<Int<kRows>, Int<kHeadDim>>{},
                    make_coord(block, 0));
}

// Copy a (CPY, CPY_ROWS, CPY_COLS) partition of a kRows-row tile. Rows at or past `rows_left`
// are zero-filled instead of read, so a ragged last tile never feeds garbage (or NaN) to the
// MMAs. Full tiles (the common case, uniform across the CTA) take an unpredicated path.
template <int kRows, class TiledCopy, class Src, class Dst, class Coord>
__device__ __forceinline__ void copy_rows_or_zero(TiledCopy const& tiled_copy, Src const& src,
                                                  Dst&& dst, Coord const& coord, int rows_left) {
  if (rows_left >= kRows) {
    cute::copy(tiled_copy, src, dst);
    return;
  }
  CUTE_UNROLL
  for (int m = 0; m < size<1>(src); ++m) {
    if (get<0>(coord(0, m, 0)) < rows_left) {
      CUTE_UNROLL
      for (int k = 0; k < size<2>(src); ++k) cute::copy(tiled_copy, src(_, m, k), dst(_, m, k));
    } else {
      cute::clear(dst(_, m, _));
    }
  }
}

// Store only the rows below `rows_left` (the output's ragged last tile).
template <class TiledCopy, class Src, class Dst, class Coord>
__device__ __forceinline__ void store_rows(TiledCopy const& tiled_copy, Src const& src, Dst&& dst,
                                           Coord const& coord, int rows_left) {
  CUTE_UNROLL
  for (int m = 0; m < size<1>(src); ++m) {
    if (get<0>(coord(0, m, 0)) < rows_left) {
      CUTE_UNROLL
      for (int k = 0; k < size<2>(src); ++k) cute::copy(tiled_copy, src(_, m, k), dst(_, m, k));
    }
  }
}

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
