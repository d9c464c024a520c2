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
// Varlen: the order covers every sequence with the longest one's query blocks; the tiles past a
// sequence's own rows (all of an empty one's) hold no query and are skipped (has_query_rows).
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

// Whether a tile of block_m-row query blocks starts inside its sequence's seqlen_q rows.
CUTE_HOST_DEVICE bool has_query_rows(ForwardTile const& tile, int block_m, int seqlen_q) {
  return tile.m_block * block_m < seqlen_q;
}

}  // namespace flashgen
