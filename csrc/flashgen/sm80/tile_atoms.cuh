// Building blocks every sm80 kernel shares: the tensor-core atom per dtype and the swizzled
// shared-memory atom per head dim. (The 16-byte global-memory copies: common/copies.cuh.)
#pragma once
#include <cute/tensor.hpp>
#include <cutlass/numeric_types.h>

#include "flashgen/common/copies.cuh"

namespace flashgen::sm80 {
using namespace cute;

template <class Element> struct MmaAtomFor;
template <> struct MmaAtomFor<cutlass::half_t> {
  using type = MMA_Atom<SM80_16x8x16_F32F16F16F32_TN>;
};
template <> struct MmaAtomFor<cutlass::bfloat16_t> {
  using type = MMA_Atom<SM80_16x8x16_F32BF16BF16F32_TN>;
};

// A (rows, kHeadDim) tile of 16-bit elements lives in shared memory as 8-row atoms of 64
// (or 32, when the width is not a multiple of 64) columns, XOR-swizzled so that ldmatrix
// reads of 8 rows hit 8 different 16-byte bank groups. (The backward also keeps its
// (block_m, block_n) P and dS tiles this way: there "head dim" is block_n.)
template <int kHeadDim>
struct SmemTile {
  static_assert(kHeadDim % 32 == 0, "sm80 kernels need head_dim (and bwd block_n) to be a multiple of 32");
  static constexpr int kAtomCols = kHeadDim % 64 == 0 ? 64 : 32;
  static constexpr int kSwizzleBits = kAtomCols == 64 ? 3 : 2;
  using Atom = decltype(composition(Swizzle<kSwizzleBits, 3, 3>{},
                                    Layout<Shape<_8, Int<kAtomCols>>, Stride<Int<kAtomCols>, _1>>{}));
  template <int kRows>
  using Layout = decltype(tile_to_shape(Atom{}, Shape<Int<kRows>, Int<kHeadDim>>{}));
  // The same tile read as its transpose (head_dim, rows): the V of P·V, the Q, dO, P, dS
  // of the backward's transposed GEMMs (read with ldmatrix.trans).
  template <int kRows>
  using TransposedLayout = decltype(composition(
      Layout<kRows>{}, make_layout(Shape<Int<kHeadDim>, Int<kRows>>{}, GenRowMajor{})));
  template <int kRows>
  using TransposedLayoutPlain = decltype(get_nonswizzle_portion(TransposedLayout<kRows>{}));
};

using SmemLoadAtom = SM75_U32x4_LDSM_N;            // ldmatrix.x4
using SmemLoadTransposedAtom = SM75_U16x8_LDSM_T;  // ldmatrix.x4.trans

}  // namespace flashgen::sm80
