// The TMA view both sm90 kernels take of a (batch, seqlen, heads, head_dim) tensor: a
// (seqlen, head_dim, heads, batch) global tensor with the head dim contiguous, its copy types for
// a shared-memory tile layout, and one (batch, head)'s rows as kRows-row tiles. A varlen
// (packed) tensor is the same view with batch 1 and seqlen the total rows, and a sequence's
// tiles start at its first row (packed_row_tiles).
#pragma once
#include <cute/tensor.hpp>

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
};

}  // namespace flashgen::sm90
