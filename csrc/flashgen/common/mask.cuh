// Attention masks applied to a score tile in (rows, cols) view. One rule, used by every kernel:
// key j is visible to query i iff j < seqlen_k and, when causal, j <= i + seqlen_k - seqlen_q
// (the causal diagonal aligned to the bottom-right corner, as FlashAttention 2.1+).
#pragma once
#include <cute/tensor.hpp>

namespace flashgen {
using namespace cute;

struct AttentionMask {
  int seqlen_q, seqlen_k;
  bool causal;

  // Last visible key (exclusive bound) for query row `row`.
  CUTE_HOST_DEVICE int key_limit(int row) const {
    return causal ? min(seqlen_k, row + 1 + seqlen_k - seqlen_q) : seqlen_k;
  }

  // Key blocks of block_n columns that some row of [row0, row0 + block_m) sees: all, or
  // (causal) those left of the last row's diagonal. At most 0 when no row sees a key.
  CUTE_HOST_DEVICE int visible_key_blocks(int row0, int block_m, int block_n) const {
    const int all = ceil_div(seqlen_k, block_n);
    return causal ? min(all, ceil_div(row0 + block_m + seqlen_k - seqlen_q, block_n)) : all;
  }

  // The key blocks [first, end) that rows [row0, row0 + block_m) visit; empty when no row sees a
  // key. Kernels walk them from end - 1 down to first, so the blocks that need masking (the
  // ragged last one, the causal diagonal) come first.
  struct KeyBlocks {
    int first, end;
  };
  CUTE_HOST_DEVICE KeyBlocks key_blocks(int row0, int block_m, int block_n) const {
    return {0, visible_key_blocks(row0, block_m, block_n)};
  }

  // Does the (block_m x block_n) tile at (row0, col0) contain any masked element?
  __device__ __forceinline__ bool tile_needs_mask(int row0, int col0, int block_n) const {
    return col0 + block_n > key_limit(row0);
  }

  // Set masked scores to -inf. `coords` holds each element's (row, col) inside the tile.
  template <class Scores, class Coords>
  CUTE_HOST_DEVICE void apply(Scores& scores, Coords const& coords, int row0,
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

  // The same for a transposed tile (rows are keys, cols are queries; the sm90 backward's S^T):
  // `coords` holds each element's (key, query) inside the tile at (key0, query0).
  template <class Scores, class Coords>
  CUTE_HOST_DEVICE void apply_transposed(Scores& scores, Coords const& coords, int key0, int query0) const {
    CUTE_UNROLL
    for (int ni = 0; ni < size<1>(scores); ++ni) {
      const int limit = key_limit(query0 + get<1>(coords(0, ni)));
      CUTE_UNROLL
      for (int mi = 0; mi < size<0>(scores); ++mi) {
        if (key0 + get<0>(coords(mi, ni)) >= limit) scores(mi, ni) = -INFINITY;
      }
    }
  }
};

// The query blocks a backward CTA of key block n_block visits, step by step: those that see
// any of its keys (causal query i sees key j iff i >= j - (seqlen_k - seqlen_q), so from the
// block of the first such row on). Causal: in order. Non-causal: all of them, starting at
// n_block mod m_blocks and wrapping, so the CTAs of one head add into different dQ tiles at
// any moment instead of into tile 0, then 1, ... in lockstep.
struct QueryBlockOrder {
  int m_blocks;  // query blocks in all
  int first;     // the step-0 block
  int steps;     // blocks visited (0: no query sees these keys)

  CUTE_HOST_DEVICE QueryBlockOrder(int seqlen_q, int seqlen_k, int block_m, int block_n, int n_block, bool causal) {
    m_blocks = ceil_div(seqlen_q, block_m);
    const int first_row = causal ? max(0, n_block * block_n - (seqlen_k - seqlen_q)) : 0;
    const int m_block_min = min(first_row / block_m, m_blocks);
    steps = m_blocks - m_block_min;
    first = causal ? m_block_min : n_block % m_blocks;
  }

  CUTE_HOST_DEVICE int at(int step) const {
    return first + step < m_blocks ? first + step : first + step - m_blocks;
  }
};

// Which (key block, head, batch) a backward CTA computes, from its block index (x, y, z) in a
// grid of (key_blocks, heads, batches). As launched (x = key block), the CTAs running at once
// share one head's Q, dO and dQ accumulator in L2. With heavy_first_groups (for causal: key
// block n sees at least as many query blocks as n + 1, so as launched each head's heavy CTAs
// come first but the last head's still start late and run alone at the end), CTAs go heaviest
// first across a group of heads whose dQ accumulators (dq_bytes_per_head each) together fit
// kL2GroupBytes, so the last wave is the light CTAs of several heads. Measured on the H100
// (docs/perf.md, session 4): +3-4% for the sm80 backward at head dim 128, causal; nothing or
// -3% for the sm90 one at 256, which keeps the launch order.
struct BackwardCta {
  static constexpr int64_t kL2GroupBytes = 32ll << 20;
  int n_block_local;  // key block within this launch (deterministic mode adds n_block_offset)
  int head, batch;

  CUTE_HOST_DEVICE BackwardCta(int x, int y, int z, int key_blocks, int heads, int batches, int64_t dq_bytes_per_head,
                               bool heavy_first_groups) {
    if (!heavy_first_groups) {
      n_block_local = x, head = y, batch = z;
      return;
    }
    const int all_heads = heads * batches;
    const int group = int(max(int64_t(1), min(int64_t(all_heads), kL2GroupBytes / max(int64_t(1), dq_bytes_per_head))));
    const int linear = x + key_blocks * (y + heads * z);
    const int first_head = linear / (group * key_blocks) * group;  // of this CTA's group
    const int group_heads = min(group, all_heads - first_head);    // the last group may be short
    const int within = linear - first_head * key_blocks;
    n_block_local = within / group_heads;
    const int head_index = first_head + within % group_heads;
    head = head_index % heads;
    batch = head_index / heads;
  }
};

}  // namespace flashgen
