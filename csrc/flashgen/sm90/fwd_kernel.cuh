// sm90 forward attention, first version: the sm80 forward's schedule with Hopper's warpgroup
// MMA (wgmma) in place of mma.sync + ldmatrix. Compiled for sm_90a only (H100, H200).
//
// One CTA per (query block, head, batch) with block_m / 64 warpgroups; warpgroup w owns query
// rows [64w, 64w + 64). Per key block n (last first, as in sm80):
//   S = Q K_n^T   wgmma, both operands read from shared memory by the tensor cores
//   online softmax on the S registers (the accumulator's rows live in quads of lanes, as sm80's)
//   O += P V_n    wgmma with P from registers and V read transposed from shared memory
// K and V stream through one buffer each with cp.async, V_n loading under the S GEMM and
// K_{n-1} under the softmax and the P V GEMM. Not yet here (the steps toward FA3): TMA loads,
// warp specialization with setmaxnreg, a second K/V stage, intra-warpgroup overlap.
#pragma once
#include <cuda_runtime.h>

#include <cute/tensor.hpp>

#include "flashgen/params.h"
#include "flashgen/sm80/fwd_common.cuh"
#include "flashgen/sm80/mask.cuh"
#include "flashgen/sm80/softmax.cuh"
#include "flashgen/sm80/tile_atoms.cuh"
#include "flashgen/sm80/utils.cuh"
#include "flashgen/sm90/warpgroup.cuh"

namespace flashgen::sm90 {
using namespace cute;
using sm80::AttentionMask;
using sm80::OnlineSoftmax;

// Compile-time plan of one forward kernel (numbers from kernels.yaml via the generated file).
template <int kHeadDim_, int kBlockM_, int kBlockN_, class Element_, int kSmemBytesPlanned>
struct FwdConfig {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kWarpgroups = kBlockM / 64;
  static constexpr int kNThreads = kWarpgroups * 128;
  static_assert(kBlockM % 64 == 0, "a warpgroup MMA covers 64 query rows");
  static_assert(kHeadDim % 64 == 0, "the 128-byte-swizzled shared-memory atom is 64 columns wide");

  // Warpgroups tile the query rows; each issues 64 x block_n (S) and 64 x head_dim (O) wgmmas.
  using WarpgroupLayout = Layout<Shape<Int<kWarpgroups>, _1, _1>>;
  using TiledMmaS = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kBlockN>, _16>>(), WarpgroupLayout{}));
  using TiledMmaO = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, Shape<_64, Int<kHeadDim>, _16>, GMMA::Major::K,
                           GMMA::Major::MN>(),
      WarpgroupLayout{}));

  // Tiles are K-major (head dim contiguous) in the wgmma 128-byte swizzle; V is also read as
  // its transpose (head_dim, block_n), the MN-major B operand of O += P V.
  using SmemAtom = GMMA::Layout_K_SW128_Atom<Element>;
  using SmemLayoutQ = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockM>, Int<kHeadDim>>{}));
  using SmemLayoutKV = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockN>, Int<kHeadDim>>{}));
  using SmemLayoutVt = decltype(composition(
      SmemLayoutKV{}, make_layout(Shape<Int<kHeadDim>, Int<kBlockN>>{}, GenRowMajor{})));
  // 16-byte cp.async loads and stores (sm80's layouts: a row of 64 columns per 8 threads).
  using Gmem = sm80::GmemCopies<Element, kHeadDim, kNThreads>;
  static_assert(kBlockM % Gmem::kRowsPerPass == 0 && kBlockN % Gmem::kRowsPerPass == 0,
                "a tile must be a whole number of copy passes");

  // Q, K and V tiles; the output tile reuses Q's space after the last key block.
  static constexpr int kSmemBytes =
      int(cosize(SmemLayoutQ{}) + 2 * cosize(SmemLayoutKV{})) * int(sizeof(Element));
  static_assert(kSmemBytes == kSmemBytesPlanned,
                "gen/families.py's shared-memory count disagrees with this kernel's");
};

template <class Cfg, bool kCausal>
__global__ void __launch_bounds__(Cfg::kNThreads, 1) fwd_kernel(const FwdParams params) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  extern __shared__ __align__(1024) char smem[];  // 128-byte swizzle atoms repeat every 1 KB

  // Causal query blocks further down see more keys: launch those first.
  const int m_block = kCausal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int head = blockIdx.y, batch = blockIdx.z;
  const int tidx = threadIdx.x;
  const int row0 = m_block * kBlockM;
  const AttentionMask mask{params.seqlen_q, params.seqlen_k, kCausal};
  const int n_blocks = mask.visible_key_blocks(row0, kBlockM, kBlockN);

  const auto block = sm80::forward_block<Cfg>(params, m_block, head, batch);
  const int q_rows_left = params.seqlen_q - row0;

  typename Cfg::Gmem::AsyncLoad gmem_load;
  auto thr_load = gmem_load.get_thread_slice(tidx);
  Tensor cQ = make_identity_tensor(Shape<Int<kBlockM>, Int<kHeadDim>>{});
  Tensor cKV = make_identity_tensor(Shape<Int<kBlockN>, Int<kHeadDim>>{});

  if (n_blocks <= 0) {  // causal with seqlen_q > seqlen_k: these rows see no key
    sm80::store_rows_without_keys<typename Cfg::Gmem, kBlockM, Cfg::kNThreads>(block.out, block.lse_rows, row0,
                                                                               q_rows_left, tidx);
    return;
  }

  Tensor sQ = make_tensor(make_smem_ptr(reinterpret_cast<Element*>(smem)), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(sQ.data() + cosize(typename Cfg::SmemLayoutQ{}), typename Cfg::SmemLayoutKV{});
  Tensor sV = make_tensor(sK.data() + cosize(typename Cfg::SmemLayoutKV{}), typename Cfg::SmemLayoutKV{});
  Tensor sVt = make_tensor(sV.data(), typename Cfg::SmemLayoutVt{});

  Tensor tQgQ = thr_load.partition_S(block.q);
  Tensor tQsQ = thr_load.partition_D(sQ);
  Tensor tQcQ = thr_load.partition_S(cQ);
  Tensor tKgK = thr_load.partition_S(block.k);  // (CPY, CPY_N, CPY_K, n_block)
  Tensor tKsK = thr_load.partition_D(sK);
  Tensor tVgV = thr_load.partition_S(block.v);
  Tensor tVsV = thr_load.partition_D(sV);
  Tensor tKVcKV = thr_load.partition_S(cKV);

  typename Cfg::TiledMmaS mma_s;
  typename Cfg::TiledMmaO mma_o;
  auto thr_mma_s = mma_s.get_thread_slice(tidx);
  auto thr_mma_o = mma_o.get_thread_slice(tidx);
  Tensor tSrQ = thr_mma_s.make_fragment_A(thr_mma_s.partition_A(sQ));  // shared-memory descriptors
  Tensor tSrK = thr_mma_s.make_fragment_B(thr_mma_s.partition_B(sK));
  Tensor tOrVt = thr_mma_o.make_fragment_B(thr_mma_o.partition_B(sVt));
  Tensor acc_o = partition_fragment_C(mma_o, Shape<Int<kBlockM>, Int<kHeadDim>>{});

  Tensor tScS = thr_mma_s.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor coords = make_tensor(tScS.data(), accumulator_as_rows_cols(tScS.layout()));
  Tensor acc_o_rows = make_tensor(acc_o.data(), accumulator_as_rows_cols(acc_o.layout()));
  constexpr int kRows = decltype(size<0>(acc_o_rows))::value;
  OnlineSoftmax<kRows> softmax;

  auto publish_loads = [] {
    cute::cp_async_wait<0>();
    publish_smem_writes_to_wgmma();
  };

  int n_block = n_blocks - 1;
  sm80::copy_rows_or_zero<kBlockM>(gmem_load, tQgQ, tQsQ, tQcQ, q_rows_left);
  sm80::copy_rows_or_zero<kBlockN>(gmem_load, tKgK(_, _, _, n_block), tKsK, tKVcKV,
                                   params.seqlen_k - n_block * kBlockN);
  cute::cp_async_fence();

  auto step = [&](auto is_first) {
    Tensor acc_s = partition_fragment_C(mma_s, Shape<Int<kBlockM>, Int<kBlockN>>{});
    publish_loads();  // K[n] (and Q) landed; every warp is done with V[n+1]
    sm80::copy_rows_or_zero<kBlockN>(gmem_load, tVgV(_, _, _, n_block), tVsV, tKVcKV,
                                     params.seqlen_k - n_block * kBlockN);
    cute::cp_async_fence();

    warpgroup_gemm(mma_s, tSrQ, tSrK, acc_s, /*zero_init=*/true);  // S = Q K^T
    publish_loads();  // V[n] landed; every warp is done with K[n]
    if (n_block > 0) {  // prefetch K[n-1] under the softmax and the P V GEMM
      sm80::copy_rows_or_zero<kBlockN>(gmem_load, tKgK(_, _, _, n_block - 1), tKsK, tKVcKV,
                                       params.seqlen_k - (n_block - 1) * kBlockN);
      cute::cp_async_fence();
    }
    Tensor scores = make_tensor(acc_s.data(), accumulator_as_rows_cols(acc_s.layout()));
    if (mask.tile_needs_mask(row0, n_block * kBlockN, kBlockN)) mask.apply(scores, coords, row0, n_block * kBlockN);
    softmax.template update<decltype(is_first)::value>(scores, acc_o_rows, params.softmax_scale_log2);

    // O += P V, P straight from the score registers.
    Tensor p = sm80::convert_fragment<Element>(acc_s);
    Tensor tOrP = make_tensor(p.data(), accumulator_as_operand_a(p.layout()));
    warpgroup_gemm(mma_o, tOrP, tOrVt, acc_o, /*zero_init=*/decltype(is_first)::value);
  };
  step(cute::true_type{});
  for (--n_block; n_block >= 0; --n_block) step(cute::false_type{});

  float lse[kRows];
  softmax.finish(acc_o_rows, params.softmax_scale, lse);

  // Epilogue: O -> shared (Q's space: each warpgroup's S GEMMs, the only readers of its Q
  // rows, are done) -> 16-byte global stores.
  Tensor sO = make_tensor(sQ.data(), typename Cfg::SmemLayoutQ{});
  sm80::store_output_and_lse<typename Cfg::Gmem>(mma_o, acc_o, sO, block.out, coords, lse, block.lse_rows, row0,
                                                 q_rows_left, tidx);
}

template <class Cfg>
cudaError_t launch_fwd(const FwdParams& params, cudaStream_t stream) {
  const dim3 grid(ceil_div(params.seqlen_q, Cfg::kBlockM), params.nheads, params.batch);
  auto kernel = params.causal ? &fwd_kernel<Cfg, true> : &fwd_kernel<Cfg, false>;
  return sm80::launch_with_smem(kernel, grid, Cfg::kNThreads, Cfg::kSmemBytes, stream, params);
}

}  // namespace flashgen::sm90
