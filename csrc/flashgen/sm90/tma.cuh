// The TMA view both sm90 kernels take of a (batch, seqlen, heads, head_dim) tensor: a
// (seqlen, head_dim, heads, batch) global tensor with the head dim contiguous, its copy types for
// a shared-memory tile layout, and one (batch, head)'s rows as kRows-row tiles. A varlen
// (packed) tensor is the same view with batch 1 and seqlen the total rows, and a sequence's
// tiles start at its first row (packed_row_tiles). query_tiles and key_tiles pick the view for a
// kernel's sequence-lengths type (common/seqlen.cuh).
#pragma once
#include <cute/tensor.hpp>

#include "flashgen/common/seqlen.cuh"
#include "flashgen/params.h"

namespace flashgen::sm90 {
using namespace cute;

template <class Element, int kHeadDim>
struct TmaTensors {
  using GmemShape = Shape<int32_t, Int<kHeadDim>, int32_t, int32_t>;
  using GmemStride = Stride<int64_t, _1, int64_t, int64_t>;
  using GmemTensor = decltype(make_tensor(make_gmem_ptr(static_cast<Element*>(nullptr)), GmemShape{}, GmemStride{}));
  template <class SmemLayout>
  using Load = decltype(make_tma_copy(SM90_TMA_LOAD{}, GmemTensor{}, SmemLayout{}));
  template <class SmemLayout>
  using Store = decltype(make_tma_copy(SM90_TMA_STORE{}, GmemTensor{}, SmemLayout{}));

  CUTE_HOST_DEVICE static auto shape(int seqlen, int heads, int batch) {
    return make_shape(seqlen, Int<kHeadDim>{}, heads, batch);
  }
  // `t` as the global tensor a TMA descriptor is made from (host).
  static auto tensor(const TensorArg& t, int seqlen, int heads, int batch) {
    return make_tensor(make_gmem_ptr(static_cast<Element*>(t.ptr)), shape(seqlen, heads, batch),
                       make_stride(t.row_stride, _1{}, t.head_stride, t.batch_stride));
  }
  // (kRows, head_dim, row tile) of (head, batch) in `tma`'s coordinates (device).
  template <int kRows, class Tma>
  CUTE_DEVICE static auto row_tiles(Tma const& tma, int seqlen, int heads, int batches, int head, int batch) {
    Tensor m = tma.get_tma_tensor(shape(seqlen, heads, batches));
    return local_tile(m(_, _, head, batch), Shape<Int<kRows>, Int<kHeadDim>>{}, make_coord(_, _0{}));
  }
  // (kRows, head_dim, row tile) of `head` of a packed tensor (`total` rows, batch 1), tile 0
  // starting at row `start` (a sequence's cu_seqlens entry) (device). The descriptor knows only
  // the total: a tile's rows past its sequence's end are the next sequence's (the caller masks
  // or drops them), those past the total are zero-filled.
  template <int kRows, class Tma>
  CUTE_DEVICE static auto packed_row_tiles(Tma const& tma, int total, int heads, int head, int start) {
    Tensor m = tma.get_tma_tensor(shape(total, heads, 1));
    return local_tile(domain_offset(make_coord(start, _0{}), m(_, _, head, 0)), Shape<Int<kRows>, Int<kHeadDim>>{},
                      make_coord(_, _0{}));
  }

  // A packed tensor of `total` rows as the global tensor of varlen descriptors (host): batch 1,
  // its stride never stepped but nonzero for the descriptor; at least one row, for calls whose
  // sequences are all empty (no tile loads one then).
  static auto packed_tensor(const TensorArg& t, int total, int heads) {
    const int rows = total > 1 ? total : 1;
    TensorArg packed = t;
    packed.batch_stride = int64_t(rows) * t.row_stride;
    return tensor(packed, rows, heads, 1);
  }

  // The global tensor a kernel's descriptors of q-like (keys: k-like) `t` are made from (host):
  // (seqlen, head_dim, heads, batch) with the longest lengths, or with varlen the packed tensor.
  template <bool kVarlen, class Params>
  static auto kernel_tensor(const TensorArg& t, Params const& params, bool keys) {
    const int heads = keys ? params.nheads_kv : params.nheads;
    if constexpr (kVarlen) {
      return packed_tensor(t, keys ? params.total_k : params.total_q, heads);
    } else {
      return tensor(t, keys ? params.seqlen_k : params.seqlen_q, heads, params.batch);
    }
  }

  // The query (key) rows of `head` of a batch entry as kRows-row tiles (device), in descriptors
  // made by tensor() over (batch, params.seqlen_q (seqlen_k)) tensors ...
  template <int kRows, class Tma, class Params>
  CUTE_DEVICE static auto query_tiles(Tma const& tma, Params const& params, FixedSequenceLengths const& seqlens,
                                      int head) {
    return row_tiles<kRows>(tma, params.seqlen_q, params.nheads, params.batch, head, seqlens.batch);
  }
  template <int kRows, class Tma, class Params>
  CUTE_DEVICE static auto key_tiles(Tma const& tma, Params const& params, FixedSequenceLengths const& seqlens,
                                    int head_kv) {
    return row_tiles<kRows>(tma, params.seqlen_k, params.nheads_kv, params.batch, head_kv, seqlens.batch);
  }
  // ... or, varlen, by packed_tensor() over the packed ones: tile 0 at the sequence's first row.
  template <int kRows, class Tma, class Params>
  CUTE_DEVICE static auto query_tiles(Tma const& tma, Params const& params, VarlenSequenceLengths const& seqlens,
                                      int head) {
    return packed_row_tiles<kRows>(tma, params.total_q, params.nheads, head, seqlens.start_q);
  }
  template <int kRows, class Tma, class Params>
  CUTE_DEVICE static auto key_tiles(Tma const& tma, Params const& params, VarlenSequenceLengths const& seqlens,
                                    int head_kv) {
    return packed_row_tiles<kRows>(tma, params.total_k, params.nheads_kv, head_kv, seqlens.start_k);
  }
};

}  // namespace flashgen::sm90
