// Attention masks applied to a score tile in (rows, cols) view. One rule, used by every kernel:
// key j is visible to query i iff j < seqlen_k and, when causal, j <= i + seqlen_k - seqlen_q
// (the causal diagonal aligned to the bottom-right corner, as FlashAttention 2.1+).
#pragma once
#include <cute/tensor.hpp>

namespace flashgen::sm80 {
using namespace cute;

struct AttentionMask {
  int seqlen_q, seqlen_k;
  bool causal;

  // Last visible key (exclusive bound) for query row `row`.
  __device__ __forceinline__ int key_limit(int row) const {
    return causal ? min(seqlen_k, row + 1 + seqlen_k - seqlen_q) : seqlen_k;
  }

  // Key blocks of block_n columns that some row of [row0, row0 + block_m) sees: all, or
  // (causal) those left of the last row's diagonal. At most 0 when no row sees a key.
  __device__ __forceinline__ int visible_key_blocks(int row0, int block_m, int block_n) const {
    const int all = ceil_div(seqlen_k, block_n);
    return causal ? min(all, ceil_div(row0 + block_m + seqlen_k - seqlen_q, block_n)) : all;
  }

  // Does the (block_m x block_n) tile at (row0, col0) contain any masked element?
  __device__ __forceinline__ bool tile_needs_mask(int row0, int col0, int block_n) const {
    return col0 + block_n > key_limit(row0);
  }

  // Set masked scores to -inf. `coords` holds each element's (row, col) inside the tile.
  template <class Scores, class Coords>
  __device__ __forceinline__ void apply(Scores& scores, Coords const& coords, int row0,
                                        int col0) const {
    CUTE_UNROLL
    for (int mi = 0; mi < size<0>(scores); ++mi) {
      const int limit = key_limit(row0 + get<0>(coords(mi, 0)));
      CUTE_UNROLL
      for (int ni = 0; ni < size<1>(scores); ++ni) {
        if (col0 + get<1>(coords(mi, ni)) >= limit) scores(mi, ni) = -INFINITY;
      }
    }
  }
};

}  // namespace flashgen::sm80
