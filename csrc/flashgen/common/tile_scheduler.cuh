// Which (query block, head, batch) tiles a forward CTA computes.
//
// Tiles are numbered head-major: the query blocks of one head are consecutive, so the CTAs that
// run at the same time share that head's K and V in L2. Causal query blocks further down see
// more keys: they come first within their head, so the light ones fill the last wave.
// One tile per CTA (grid = tiles), or persistent: a GPU-full of CTAs, CTA b taking tiles
// b, b + grid, b + 2 grid, ... so that one tile's epilogue overlaps the next one's loads; or
// persistent with dynamic hand-out: CTA b takes tile b first, then whichever tile an atomic
// counter gives it next (grid + 0, grid + 1, ... in this order), so a CTA that drew short
// (causal) tiles takes more of them.
#pragma once
#include <cute/config.hpp>

namespace flashgen {

struct ForwardTile {
  int m_block, head, batch;
};

struct ForwardTileOrder {
  int m_blocks, heads, batches;
  bool causal;

  CUTE_HOST_DEVICE int num_tiles() const { return m_blocks * heads * batches; }

  CUTE_HOST_DEVICE ForwardTile at(int tile) const {
    const int within = tile % m_blocks;
    const int head_index = tile / m_blocks;
    return {causal ? m_blocks - 1 - within : within, head_index % heads, head_index / heads};
  }
};

}  // namespace flashgen
