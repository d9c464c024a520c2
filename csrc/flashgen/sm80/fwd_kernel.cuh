// sm80 forward attention (FlashAttention-2 structure), for Ampere and later GPUs.
//
// One CTA per (query block, head, batch). Each warp owns 16-row slices of the query block, so
// the softmax needs no cross-warp reduction. Key/value blocks stream through shared memory with
// cp.async: K[j] and V[j] are loaded while the previous GEMM runs. Causal CTAs visit only key
// blocks left of their diagonal, last block first (that is where masking happens).
#pragma once
#include <cuda_runtime.h>

#include <cute/tensor.hpp>

#include "flashgen/params.h"
#include "flashgen/sm80/fwd_common.cuh"
#include "flashgen/common/mask.cuh"
#include "flashgen/common/softcap.cuh"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/common/softmax.cuh"
#include "flashgen/sm80/tile_atoms.cuh"
#include "flashgen/sm80/utils.cuh"

namespace flashgen::sm80 {
using namespace cute;

// Compile-time plan of one forward kernel. Plan is the named tile struct a generated file renders
// from kernels.yaml (templates/tile_struct.j2); its kSmemBytes is the generator's own count of
// the shared memory this plan takes, and must match the kernel's (one formula would otherwise drift).
template <class Plan>
struct FwdConfig {
  using Element = typename Plan::Element;
  static constexpr int kHeadDim = Plan::kHeadDim;
  static constexpr int kBlockM = Plan::kBlockM;
  static constexpr int kBlockN = Plan::kBlockN;
  static constexpr bool kWindow = has_window_feature<Plan>();  // sliding-window masks (params' bounds)
  static constexpr bool kSoftcap = has_softcap_feature<Plan>();  // tanh-capped scores (common/softcap.cuh)
  static constexpr bool kVarlen = has_varlen_feature<Plan>();  // packed sequences (common/seqlen.cuh)
  static constexpr int kNWarps = Plan::kWarps;
  static constexpr int kNThreads = kNWarps * 32;
  static_assert(kBlockM % (16 * kNWarps) == 0, "block_m must be a multiple of 16 * warps");
  static_assert(kBlockN % 16 == 0, "block_n must be a multiple of 16");

  // Warps tile the M dimension; an N (and K) tile of 16 lets ldmatrix.x4 feed two n8 MMAs.
  using TiledMma = TiledMMA<typename MmaAtomFor<Element>::type, Layout<Shape<Int<kNWarps>, _1, _1>>,
                            Tile<Int<16 * kNWarps>, _16, _16>>;
  using Smem = SmemTile<kHeadDim>;
  using SmemLayoutQ = typename Smem::template Layout<kBlockM>;
  using SmemLayoutKV = typename Smem::template Layout<kBlockN>;
  using SmemLayoutVt = typename Smem::template TransposedLayout<kBlockN>;
  using SmemLayoutVtPlain = typename Smem::template TransposedLayoutPlain<kBlockN>;
  using Gmem = GmemCopies<Element, kHeadDim, kNThreads>;
  static_assert(kBlockM % Gmem::kRowsPerPass == 0 && kBlockN % Gmem::kRowsPerPass == 0,
                "a tile must be a whole number of copy passes");

  // Q, K and V tiles; the output tile reuses Q's space after the last key block.
  static constexpr int kSmemBytes =
      int(cosize(SmemLayoutQ{}) + 2 * cosize(SmemLayoutKV{})) * int(sizeof(Element));
  static_assert(kSmemBytes == Plan::kSmemBytes,
                "gen/resources.py's shared-memory count disagrees with this kernel's");
};

template <class Cfg, bool kCausal>
__global__ void __launch_bounds__(Cfg::kNThreads) fwd_kernel(const FwdParams params) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  extern __shared__ __align__(128) char smem[];

  // Causal query blocks further down see more keys: launch those first, so the light ones
  // fill the tail of the grid instead of the heavy ones.
  const int m_block = kCausal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int head = blockIdx.y, batch = blockIdx.z;
  const int tidx = threadIdx.x;
  const int row0 = m_block * kBlockM;
  const SequenceLengthsFor<Cfg> seqlens(params, batch);
  if constexpr (Cfg::kVarlen) {
    if (row0 >= seqlens.seqlen_q) return;  // the grid covers the longest sequence; this one is shorter
  }
  const AttentionMask mask = make_mask<Cfg::kWindow>(seqlens, kCausal, params);
  const auto key_blocks = mask.key_blocks(row0, kBlockM, kBlockN);

  const auto block = forward_block<Cfg>(params, seqlens, m_block, head);
  const int q_rows_left = seqlens.seqlen_q_of(params) - row0;

  typename Cfg::Gmem::AsyncLoad gmem_load;
  auto thr_load = gmem_load.get_thread_slice(tidx);
  Tensor cQ = make_identity_tensor(Shape<Int<kBlockM>, Int<kHeadDim>>{});
  Tensor cKV = make_identity_tensor(Shape<Int<kBlockN>, Int<kHeadDim>>{});

  if (key_blocks.end <= key_blocks.first) {  // no row sees a key (causal with seqlen_q > seqlen_k, windows)
    store_rows_without_keys<typename Cfg::Gmem, kBlockM, Cfg::kNThreads>(block.out, block.lse_rows, row0,
                                                                         q_rows_left, tidx);
    return;
  }

  Tensor sQ = make_tensor(make_smem_ptr(reinterpret_cast<Element*>(smem)), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(sQ.data() + size(sQ), typename Cfg::SmemLayoutKV{});
  Tensor sV = make_tensor(sK.data() + size(sK), typename Cfg::SmemLayoutKV{});
  Tensor sVt = make_tensor(sV.data(), typename Cfg::SmemLayoutVt{});
  Tensor sVtPlain = make_tensor(sV.data(), typename Cfg::SmemLayoutVtPlain{});

  Tensor tQgQ = thr_load.partition_S(block.q);
  Tensor tQsQ = thr_load.partition_D(sQ);
  Tensor tQcQ = thr_load.partition_S(cQ);
  Tensor tKgK = thr_load.partition_S(block.k);  // (CPY, CPY_N, CPY_K, n_block)
  Tensor tKsK = thr_load.partition_D(sK);
  Tensor tVgV = thr_load.partition_S(block.v);
  Tensor tVsV = thr_load.partition_D(sV);
  Tensor tKVcKV = thr_load.partition_S(cKV);

  typename Cfg::TiledMma tiled_mma;
  auto thr_mma = tiled_mma.get_thread_slice(tidx);
  Tensor tSrQ = thr_mma.partition_fragment_A(sQ);
  Tensor tSrK = thr_mma.partition_fragment_B(sK);
  Tensor tOrVt = thr_mma.partition_fragment_B(sVtPlain);
  Tensor acc_o = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kHeadDim>>{});

  auto smem_copy_q = make_tiled_copy_A(Copy_Atom<SmemLoadAtom, Element>{}, tiled_mma);
  auto smem_copy_k = make_tiled_copy_B(Copy_Atom<SmemLoadAtom, Element>{}, tiled_mma);
  auto smem_copy_v = make_tiled_copy_B(Copy_Atom<SmemLoadTransposedAtom, Element>{}, tiled_mma);
  Tensor tSsQ = smem_copy_q.get_thread_slice(tidx).partition_S(sQ);
  Tensor tSsK = smem_copy_k.get_thread_slice(tidx).partition_S(sK);
  Tensor tOsVt = smem_copy_v.get_thread_slice(tidx).partition_S(sVt);

  // Each score element's (row, col) inside the tile, in the (rows, cols) view.
  Tensor tScS = thr_mma.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor coords = make_tensor(tScS.data(), accumulator_as_rows_cols(tScS.layout()));
  Tensor acc_o_rows = make_tensor(acc_o.data(), accumulator_as_rows_cols(acc_o.layout()));
  constexpr int kRows = decltype(size<0>(acc_o_rows))::value;
  OnlineSoftmax<kRows> softmax;

  int n_block = key_blocks.end - 1;
  copy_rows_or_zero<kBlockM>(gmem_load, tQgQ, tQsQ, tQcQ, q_rows_left);
  copy_rows_or_zero<kBlockN>(gmem_load, tKgK(_, _, _, n_block), tKsK, tKVcKV, seqlens.seqlen_k_of(params) - n_block * kBlockN);
  cute::cp_async_fence();
  clear(acc_o);

  auto step = [&](auto is_first) {
    Tensor acc_s = partition_fragment_C(tiled_mma, Shape<Int<kBlockM>, Int<kBlockN>>{});
    clear(acc_s);
    cute::cp_async_wait<0>();
    __syncthreads();  // K[n] landed; every warp is done with V[n+1]
    copy_rows_or_zero<kBlockN>(gmem_load, tVgV(_, _, _, n_block), tVsV, tKVcKV,
                      seqlens.seqlen_k_of(params) - n_block * kBlockN);
    cute::cp_async_fence();

    // S = Q K^T
    gemm_smem_smem(tiled_mma, acc_s, tSrQ, tSrK, tSsQ, tSsK, smem_copy_q, smem_copy_k, tidx);
    cute::cp_async_wait<0>();
    __syncthreads();  // V[n] landed; every warp is done with K[n]
    if (n_block > key_blocks.first) {  // prefetch K[n-1] under the softmax and the P V GEMM
      copy_rows_or_zero<kBlockN>(gmem_load, tKgK(_, _, _, n_block - 1), tKsK, tKVcKV,
                        seqlens.seqlen_k_of(params) - (n_block - 1) * kBlockN);
      cute::cp_async_fence();
    }
    Tensor scores = make_tensor(acc_s.data(), accumulator_as_rows_cols(acc_s.layout()));
    softcap_scores<Cfg::kSoftcap>(acc_s, params.softcap_scale);
    if (mask.tile_needs_mask(row0, kBlockM, n_block * kBlockN, kBlockN)) {
      mask.apply(scores, coords, row0, n_block * kBlockN);
    }
    softmax.template update<decltype(is_first)::value>(scores, acc_o_rows, params.softmax_scale_log2);

    // O += P V, P straight from the score registers.
    Tensor p = convert_fragment<Element>(acc_s);
    Tensor tOrP = make_tensor(p.data(), accumulator_as_operand_a(p.layout()));
    gemm_reg_smem(tiled_mma, acc_o, tOrP, tOrVt, tOsVt, smem_copy_v, tidx);
  };
  step(cute::true_type{});
  for (--n_block; n_block >= key_blocks.first; --n_block) step(cute::false_type{});

  float lse[kRows];
  softmax.finish(acc_o_rows, params.softmax_scale, lse);

  // Epilogue: O -> shared (Q's space, free since the last S GEMM) -> 16-byte global stores.
  Tensor sO = make_tensor(sQ.data(), typename Cfg::SmemLayoutQ{});
  store_output_and_lse<typename Cfg::Gmem>(tiled_mma, acc_o, sO, block.out, coords, lse, block.lse_rows, row0,
                                           q_rows_left, tidx);
}

// With varlen the grid covers the longest sequence (params.seqlen_q); CTAs past their own
// sequence's rows exit.
template <class Cfg>
cudaError_t launch_fwd(const FwdParams& params, cudaStream_t stream) {
  const dim3 grid(ceil_div(params.seqlen_q, Cfg::kBlockM), params.nheads, params.batch);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return cudaSuccess;  // no query rows: nothing to write
  auto kernel = params.causal ? &fwd_kernel<Cfg, true> : &fwd_kernel<Cfg, false>;
  return launch_with_smem(kernel, grid, Cfg::kNThreads, Cfg::kSmemBytes, stream, params);
}

}  // namespace flashgen::sm80
