// Attention masks applied to a score tile in (rows, cols) view. One rule, used by every kernel
// (FlashAttention's): with the diagonal aligned to the bottom-right corner, query i sits at key
// position i + seqlen_k - seqlen_q, and sees key j iff j < seqlen_k and
//   i + seqlen_k - seqlen_q - window_left <= j <= i + seqlen_k - seqlen_q + window_right,
// a window bound of -1 meaning unbounded on that side; causal is the window (-1, 0).
#pragma once
#include <type_traits>

#include <cute/tensor.hpp>

namespace flashgen {
using namespace cute;

struct AttentionMask {
  int seqlen_q, seqlen_k;
  bool causal;
  int window_left = -1, window_right = -1;  // -1: unbounded; kernels built without windows leave them

  // Query i's key position (the diagonal's column in its row).
  CUTE_HOST_DEVICE int diagonal(int row) const { return row + seqlen_k - seqlen_q; }
  CUTE_HOST_DEVICE int right_bound() const { return causal ? 0 : window_right; }

  // First visible key of query row `row` (keys before it are masked).
  CUTE_HOST_DEVICE int key_start(int row) const {
    return window_left >= 0 ? max(0, diagonal(row) - window_left) : 0;
  }
  // Last visible key (exclusive bound) for query row `row`; at most key_start when it sees none.
  CUTE_HOST_DEVICE int key_limit(int row) const {
    return right_bound() >= 0 ? min(seqlen_k, diagonal(row) + right_bound() + 1) : seqlen_k;
  }

  // The key blocks [first, end) that rows [row0, row0 + block_m) visit; empty when no row sees a
  // key. Rows only move their bounds right, so the first row has the earliest start and the last
  // the latest limit. Kernels walk them from end - 1 down to first, so the blocks that need
  // masking (the ragged last one, the causal diagonal) come first.
  struct KeyBlocks {
    int first, end;
  };
  CUTE_HOST_DEVICE KeyBlocks key_blocks(int row0, int block_m, int block_n) const {
    const int end = ceil_div(key_limit(row0 + block_m - 1), block_n);
    const int first = min(key_start(row0) / block_n, max(end, 0));
    return {first, max(end, first)};
  }

  // Does the (block_m x block_n) tile at (row0, col0) contain any masked element? (Its first
  // row has the earliest limit, its last row the latest start.)
  CUTE_HOST_DEVICE bool tile_needs_mask(int row0, int block_m, int col0, int block_n) const {
    return col0 + block_n > key_limit(row0) || (window_left >= 0 && col0 < key_start(row0 + block_m - 1));
  }

  CUTE_HOST_DEVICE bool visible(int row, int col) const { return col >= key_start(row) && col < key_limit(row); }

  // Set masked scores to -inf. `coords` holds each element's (row, col) inside the tile. (The
  // start test is guarded by window_left >= 0 so that kernels without windows, where it is a
  // compile-time -1, do not compare every column against 0.)
  template <class Scores, class Coords>
  CUTE_HOST_DEVICE void apply(Scores& scores, Coords const& coords, int row0, int col0) const {
    CUTE_UNROLL
    for (int mi = 0; mi < size<0>(scores); ++mi) {
      const int row = row0 + get<0>(coords(mi, 0));
      const int start = key_start(row), limit = key_limit(row);
      CUTE_UNROLL
      for (int ni = 0; ni < size<1>(scores); ++ni) {
        const int col = col0 + get<1>(coords(mi, ni));
        if ((window_left >= 0 && col < start) || col >= limit) scores(mi, ni) = -INFINITY;
      }
    }
  }

  // The same for a transposed tile (rows are keys, cols are queries; the sm90 backward's S^T):
  // `coords` holds each element's (key, query) inside the tile at (key0, query0).
  template <class Scores, class Coords>
  CUTE_HOST_DEVICE void apply_transposed(Scores& scores, Coords const& coords, int key0, int query0) const {
    CUTE_UNROLL
    for (int ni = 0; ni < size<1>(scores); ++ni) {
      const int query = query0 + get<1>(coords(0, ni));
      const int start = key_start(query), limit = key_limit(query);
      CUTE_UNROLL
      for (int mi = 0; mi < size<0>(scores); ++mi) {
        const int key = key0 + get<0>(coords(mi, ni));
        if ((window_left >= 0 && key < start) || key >= limit) scores(mi, ni) = -INFINITY;
      }
    }
  }
};

// How a mainloop step masks its score tile: tests the tile at run time, or is one of a loop's
// steps that knows (the forward's masked and unmasked loops).
enum class MaskStep { kMaskIfNeeded, kMasked, kUnmasked };
template <MaskStep kStep>
using MaskStepConstant = std::integral_constant<MaskStep, kStep>;
inline constexpr MaskStepConstant<MaskStep::kMaskIfNeeded> kMaskIfNeededStep{};
inline constexpr MaskStepConstant<MaskStep::kMasked> kMaskedStep{};
inline constexpr MaskStepConstant<MaskStep::kUnmasked> kUnmaskedStep{};

// Whether a kernel's plan (its generated tile struct) is built with sliding windows: the
// `window` feature of kernels.yaml renders kWindow = 1. Plans without the constant have none.
template <class Plan, class = void>
struct WindowFeature : std::false_type {};
template <class Plan>
struct WindowFeature<Plan, std::void_t<decltype(Plan::kWindow)>> : std::bool_constant<Plan::kWindow != 0> {};
template <class Plan>
constexpr bool has_window_feature() { return WindowFeature<Plan>::value; }

// A batch entry's mask: its sequence lengths, causal, and (kernels built with windows) the call's
// window bounds; kernels without windows leave the bounds unbounded at compile time.
template <bool kWindow, class SequenceLengths, class Params>
CUTE_HOST_DEVICE AttentionMask make_mask(SequenceLengths const& seqlens, bool causal, Params const& params) {
  if constexpr (kWindow) return AttentionMask{seqlens.seqlen_q, seqlens.seqlen_k, causal, params.window_left, params.window_right};
  else return AttentionMask{seqlens.seqlen_q, seqlens.seqlen_k, causal};
}

// The query blocks a backward CTA of key block n_block visits, step by step: those with a row
// that sees any of its keys (query i sees key j iff diagonal(i) - left <= j <= diagonal(i) +
// right, so rows [c0 - right - d, c1 - 1 + left - d] for keys [c0, c1) and d = seqlen_k -
// seqlen_q). With a bound (causal, windows): in order. Without: all of them, starting at n_block
// mod m_blocks and wrapping, so the CTAs of one head add into different dQ tiles at any moment
// instead of into tile 0, then 1, ... in lockstep. key_blocks > 1: the blocks that see any of
// key blocks [n_block, n_block + key_blocks), for CTAs that walk them together (a cluster pair
// of the sm90 backward, n_block its first block; a block that sees none of one CTA's keys runs
// fully masked there).
struct QueryBlockOrder {
  int m_blocks;  // query blocks in all
  int first;     // the step-0 block
  int steps;     // blocks visited (0: no query sees these keys)

  CUTE_HOST_DEVICE QueryBlockOrder(AttentionMask const& mask, int block_m, int block_n, int n_block,
                                   int key_blocks = 1) {
    m_blocks = ceil_div(mask.seqlen_q, block_m);
    const int key0 = n_block * block_n, key_end = min(key0 + key_blocks * block_n, mask.seqlen_k);
    const int shift = mask.seqlen_k - mask.seqlen_q;  // diagonal(i) = i + shift
    const int right = mask.right_bound(), left = mask.window_left;
    const int first_row = right >= 0 ? max(0, key0 - right - shift) : 0;
    const int end_row = left >= 0 ? min(mask.seqlen_q, key_end - 1 + left - shift + 1) : mask.seqlen_q;
    const int m_first = min(first_row / block_m, m_blocks);
    const int m_end = key_end > key0 && end_row > first_row ? max(m_first, ceil_div(end_row, block_m)) : m_first;
    steps = m_end - m_first;
    const bool unbounded = right < 0 && left < 0;
    first = unbounded && m_blocks > 0 ? n_block % m_blocks : m_first;
  }

  CUTE_HOST_DEVICE int at(int step) const {
    return first + step < m_blocks ? first + step : first + step - m_blocks;
  }

  // Whether query block m_block is one of the visited (some row of it sees one of the keys): all
  // of them, or the contiguous run from `first` (a bounded mask's, which never wraps), or none.
  CUTE_HOST_DEVICE bool visits(int m_block) const {
    return steps == m_blocks || (m_block >= first && m_block < first + steps);
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
