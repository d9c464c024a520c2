// Global-memory tiles and the plain 16-byte copies between global and shared memory that the
// kernels of both families use where they do not use TMA: a (batch, head)'s rows as tiles,
// predicated copies of a ragged last tile (zero-filled rows in, skipped rows out), and the
// copy layouts (cp.async in, 16-byte stores out).
#pragma once
#include <cute/tensor.hpp>

#include "flashgen/params.h"

namespace flashgen {
using namespace cute;

// The (seqlen, kHeadDim) rows of one head of a tensor whose batch entry starts at element
// row_base (a sequence-lengths object's q_row_base/k_row_base, common/seqlen.cuh).
template <class Element, int kHeadDim>
__device__ __forceinline__ auto head_rows_at(const TensorArg& t, int64_t row_base, int head, int seqlen) {
  Element* base = static_cast<Element*>(t.ptr) + row_base + head * t.head_stride;
  return make_tensor(make_gmem_ptr(base), make_shape(seqlen, Int<kHeadDim>{}), make_stride(t.row_stride, _1{}));
}

// Those rows cut into (kRows, kHeadDim) tiles: tile `block`, or with `_` all of them
// ((kRows, kHeadDim, blocks)).
template <class Element, int kRows, int kHeadDim, class Block>
__device__ __forceinline__ auto head_row_tiles_at(const TensorArg& t, int64_t row_base, int head, int seqlen,
                                                  Block block) {
  return local_tile(head_rows_at<Element, kHeadDim>(t, row_base, head, seqlen), Shape<Int<kRows>, Int<kHeadDim>>{},
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

// Global <-> shared copies move 16 bytes per thread; a row of one smem atom is read by
// kThreadsPerRow consecutive threads, so each warp's accesses are coalesced.
// kRowCols: the columns one pass covers per row, 0 for the atom width below; a tile whose rows
// are no multiple of the rows per pass that gives (block_m 80 at 256 threads) takes kHeadDim.
template <class Element, int kHeadDim, int kNThreads, int kRowCols = 0>
struct GmemCopies {
  static constexpr int kElemsPerAccess = sizeof(cute::uint128_t) / sizeof(Element);
  // A row of 64 columns (32 where the head dim is no multiple of 64): the width of the sm80
  // shared-memory atom (sm80/tile_atoms.cuh SmemTile) and of most sm90 swizzle atoms (the sm90
  // warp-specialized backward's at head dim 96 are 16 columns wide for K, V and the dQ staging
  // tile: a 64-byte row read then spans two atoms, a 2-way bank conflict, correct all the same).
  static constexpr int kAtomCols = kRowCols != 0 ? kRowCols : kHeadDim % 64 == 0 ? 64 : 32;
  static constexpr int kThreadsPerRow = kAtomCols / kElemsPerAccess;
  static constexpr int kRowsPerPass = kNThreads / kThreadsPerRow;
  using ThreadLayout = Layout<Shape<Int<kRowsPerPass>, Int<kThreadsPerRow>>,
                              Stride<Int<kThreadsPerRow>, _1>>;
  using ValueLayout = Layout<Shape<_1, Int<kElemsPerAccess>>>;
  using AsyncLoad = decltype(make_tiled_copy(
      Copy_Atom<SM80_CP_ASYNC_CACHEGLOBAL<cute::uint128_t>, Element>{}, ThreadLayout{}, ValueLayout{}));
  using Store = decltype(make_tiled_copy(
      Copy_Atom<UniversalCopy<cute::uint128_t>, Element>{}, ThreadLayout{}, ValueLayout{}));
};

// kThreads threads copy the (rows, kHeadDim) tile `smem` (shared memory, any layout whose
// 8-element row pieces are contiguous: the sm90 swizzled tiles too) to the global tile `out` by
// 16-byte stores straight from shared memory, skipping rows at or past rows_left (varlen: they
// belong to the next sequence, which a TMA store of the whole tile would overwrite). The caller
// syncs the threads around it (the tile's writes landed before; its reads done after).
template <class Element, int kHeadDim, int kThreads, class Smem, class Out>
__device__ __forceinline__ void store_tile_rows_from_smem(Smem const& smem, Out&& out, int rows_left, int tidx) {
  typename GmemCopies<Element, kHeadDim, kThreads>::Store gmem_store;
  auto thr_store = gmem_store.get_thread_slice(tidx);
  store_rows(gmem_store, thr_store.partition_S(smem), thr_store.partition_D(out),
             thr_store.partition_D(make_identity_tensor(shape(out))), rows_left);
}

}  // namespace flashgen
