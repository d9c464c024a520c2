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
// With section_heads > 1 (the dynamic scheduler's causal calls) the tiles of section_heads heads
// at a time interleave, query block by query block, longest first: heaviest blocks of every head
// of the section, then the next ones, ..., so the tiles drawn last are the light ones of several
// heads, not the heavy ones of the last head; a section's K and V fit in L2 together
// (causal_section_heads).
// Varlen: the order covers every sequence with the longest one's query blocks; the tiles past a
// sequence's own rows (all of an empty one's) hold no query and are skipped (has_query_rows).
#pragma once
#include <cstdint>

#include <cute/config.hpp>

namespace flashgen {

struct ForwardTile {
  int m_block, head, batch;
};

struct ForwardTileOrder {
  int m_blocks, heads, batches;
  bool causal;
  int section_heads = 1;  // heads whose tiles interleave (1: each head's tiles consecutive)

  CUTE_HOST_DEVICE int num_tiles() const { return m_blocks * heads * batches; }

  CUTE_HOST_DEVICE ForwardTile at(int tile) const {
    const int section_tiles = m_blocks * section_heads;
    const int first_head = tile / section_tiles * section_heads;
    const int heads_left = heads * batches - first_head;
    const int heads_here = section_heads < heads_left ? section_heads : heads_left;  // the last section may be short
    const int index = tile % section_tiles;
    const int within = index / heads_here;
    const int head_index = first_head + index % heads_here;
    return {causal ? m_blocks - 1 - within : within, head_index % heads, head_index / heads};
  }
};

// section_heads for a causal order: as many heads as keep their K and V (keys_bytes_per_head
// each) in about 32 MB of L2, at least 1, at most every head.
CUTE_HOST_DEVICE int causal_section_heads(int heads, int batches, int64_t keys_bytes_per_head) {
  constexpr int64_t kL2SectionBytes = 32ll << 20;
  const int64_t fit = kL2SectionBytes / (keys_bytes_per_head > 0 ? keys_bytes_per_head : 1);
  return int(fit < 1 ? 1 : fit < int64_t(heads) * batches ? fit : int64_t(heads) * batches);
}

// Whether a tile of block_m-row query blocks starts inside its sequence's seqlen_q rows.
CUTE_HOST_DEVICE bool has_query_rows(ForwardTile const& tile, int block_m, int seqlen_q) {
  return tile.m_block * block_m < seqlen_q;
}

}  // namespace flashgen
