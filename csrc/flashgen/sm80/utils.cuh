// Small device helpers for the sm80 kernels: predicated tile copies, the register GEMM loops,
// fragment layout conversions, and type conversion.
#pragma once
#include <cute/tensor.hpp>
#include <cutlass/array.h>
#include <cutlass/numeric_conversion.h>

#include "flashgen/params.h"

namespace flashgen::sm80 {
using namespace cute;

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

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

// The K/V head that query head `head` reads (GQA/MQA: nheads / nheads_kv query heads share one).
template <class Params>
__device__ __forceinline__ int kv_head_of(const Params& params, int head) {
  return head / (params.nheads / params.nheads_kv);
}

// Dynamic shared memory one CTA may opt into on the current device.
inline int device_smem_optin() {
  int device = 0, bytes = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  return bytes;
}

// Launch `kernel` with `smem_bytes` of dynamic shared memory, opting in above the 48 KB default.
template <class Kernel, class Params>
cudaError_t launch_with_smem(Kernel kernel, dim3 grid, int threads, int smem_bytes, cudaStream_t stream,
                             const Params& params) {
  if (smem_bytes > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, threads, smem_bytes, stream>>>(params);
  return cudaGetLastError();
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

template <class To, class Engine, class Layout>
__device__ __forceinline__ auto convert_fragment(Tensor<Engine, Layout> const& src) {
  using From = typename Engine::value_type;
  constexpr int kN = decltype(size(src))::value;
  Tensor dst = make_tensor<To>(src.layout());
  cutlass::NumericArrayConverter<To, From, kN> convert;
  *reinterpret_cast<cutlass::Array<To, kN>*>(dst.data()) =
      convert(*reinterpret_cast<cutlass::Array<From, kN> const*>(src.data()));
  return dst;
}

// Reductions over the 4 threads (a "quad") that share a row of an m16n8 accumulator.
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 2);
  return x + __shfl_xor_sync(0xffffffff, x, 1);
}

}  // namespace flashgen::sm80
