// The TMA view both sm90 kernels take of a (batch, seqlen, heads, head_dim) tensor: a
// (seqlen, head_dim, heads, batch) global tensor with the head dim contiguous, its copy types for
// a shared-memory tile layout, and one (batch, head)'s rows as kRows-row tiles.
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
};

}  // namespace flashgen::sm90
