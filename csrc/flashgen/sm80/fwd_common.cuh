// What the forward kernels (sm80 and sm90) share around their main loops: the global tiles of
// one query block, the rows that see no key, and the output tile and its log-sum-exp leaving
// through shared memory.
#pragma once
#include <cute/tensor.hpp>

#include "flashgen/params.h"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/sm80/utils.cuh"

namespace flashgen::sm80 {
using namespace cute;

// Query block m_block of head `head`, batch `batch`: its Q and output tiles (kBlockM, head_dim),
// every key block of K and V ((kBlockN, head_dim, n_block) tiles of its kv head), and its
// rows' lse.
template <class QTile, class KeyTiles>
struct ForwardBlock {
  QTile q, out;
  KeyTiles k, v;
  float* lse_rows;
};

// seqlens: the batch entry's lengths and offsets (common/seqlen.cuh).
template <class Cfg, class SequenceLengths>
__device__ __forceinline__ auto forward_block(const FwdParams& params, SequenceLengths const& seqlens, int m_block,
                                              int head) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  const int head_kv = kv_head_of(params, head);
  auto query_tile = [&](const TensorArg& t) {
    return head_row_tiles_at<Element, kBlockM, kHeadDim>(t, seqlens.q_row_base(t), head, seqlens.seqlen_q_of(params), m_block);
  };
  auto key_tiles = [&](const TensorArg& t) {
    return head_row_tiles_at<Element, kBlockN, kHeadDim>(t, seqlens.k_row_base(t), head_kv, seqlens.seqlen_k_of(params), _);
  };
  return ForwardBlock<decltype(query_tile(params.q)), decltype(key_tiles(params.k))>{
      query_tile(params.q), query_tile(params.out), key_tiles(params.k), key_tiles(params.v),
      params.lse + seqlens.lse_offset(params, head)};
}

// Causal with seqlen_q > seqlen_k: the tile's rows see no key. Output 0, lse +inf.
template <class Gmem, int kBlockM, int kNThreads, class OutTile>
__device__ __forceinline__ void store_rows_without_keys(OutTile&& gO, float* lse_rows, int row0, int rows_left,
                                                        int tidx) {
  typename Gmem::Store gmem_store;
  auto thr_store = gmem_store.get_thread_slice(tidx);
  Tensor tOgO = thr_store.partition_D(gO);
  Tensor zeros = make_fragment_like(tOgO);
  clear(zeros);
  store_rows(gmem_store, zeros, tOgO, thr_store.partition_D(make_identity_tensor(shape(gO))), rows_left);
  for (int r = tidx; r < kBlockM && r < rows_left; r += kNThreads) lse_rows[row0 + r] = INFINITY;
}

// The normalized accumulator acc_o of `mma`, in the input dtype, out to gO through the shared
// tile sO (free when called) as 16-byte row stores; each row's lse[] (coords: this thread's
// (rows, cols) view of the tile) written by the thread that holds its column 0.
template <class Gmem, class Mma, class Acc, class SmemO, class OutTile, class Coords, int kRows>
__device__ __forceinline__ void store_output_and_lse(Mma const& mma, Acc const& acc_o, SmemO&& sO, OutTile&& gO,
                                                     Coords const& coords, const float (&lse)[kRows],
                                                     float* lse_rows, int row0, int rows_left, int tidx) {
  using Element = typename std::remove_reference_t<SmemO>::value_type;
  auto smem_copy_o = make_tiled_copy_C(Copy_Atom<AutoVectorizingCopyWithAssumedAlignment<32>, Element>{}, mma);
  auto thr_copy_o = smem_copy_o.get_thread_slice(tidx);
  Tensor o = convert_fragment<Element>(acc_o);
  cute::copy(smem_copy_o, thr_copy_o.retile_S(o), thr_copy_o.partition_D(sO));
  if (get<1>(coords(0, 0)) == 0) {
    CUTE_UNROLL
    for (int mi = 0; mi < kRows; ++mi) {
      const int row = get<0>(coords(mi, 0));
      if (row < rows_left) lse_rows[row0 + row] = lse[mi];
    }
  }
  __syncthreads();
  typename Gmem::Store gmem_store;
  auto thr_store = gmem_store.get_thread_slice(tidx);
  Tensor tOgO = thr_store.partition_D(gO);
  Tensor tOrO = make_fragment_like(tOgO);
  cute::copy(gmem_store, thr_store.partition_S(sO), tOrO);
  store_rows(gmem_store, tOrO, tOgO, thr_store.partition_D(make_identity_tensor(shape(gO))), rows_left);
}

}  // namespace flashgen::sm80
