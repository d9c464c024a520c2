// sm80 backward attention (FlashAttention-2 structure), for Ampere and later GPUs.
//
//   preprocess: D = rowsum(dO * O) per query row (fp32); zeroes the dQ accumulator.
//   main:       one CTA per (key block j, head, batch). K_j, V_j stay in shared memory; for each
//               query block i that can see them:
//                 S = Q_i K_j^T, P = exp(S * scale - LSE_i)      (recomputed, never stored globally)
//                 dP = dO_i V_j^T, dS = P * (dP - D_i)
//                 dV_j += P^T dO_i, dK_j += dS^T Q_i             (registers, whole loop)
//                 dQ_i += dS K_j                                 (fp32 atomics into dq_accum)
//               P and dS go through shared memory: the dV/dK GEMMs read them transposed.
//   The caller scales dQ (and sums GQA heads of dK/dV) after the kernel.
#pragma once
#include <cuda_runtime.h>

#include <cute/tensor.hpp>

#include "flashgen/params.h"
#include "flashgen/common/mask.cuh"
#include "flashgen/common/softcap.cuh"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/common/bwd_pipeline.cuh"
#include "flashgen/sm80/tile_atoms.cuh"
#include "flashgen/sm80/utils.cuh"

namespace flashgen::sm80 {
using namespace cute;

// Compile-time plan of one backward kernel (numbers from kernels.yaml via the generated file).
// kAtomM_SdP: warps along the query dimension of the S and dP GEMMs; kAtomN_dKV: warps along
// the key dimension of the dK and dV GEMMs; kAtomM_dQ: warps along the query dimension of dQ.
// kQBuffers: 2 loads the next Q tile into a second buffer for a whole iteration (1: under the
// dQ GEMM only). kDoBuffers: the same for dO (1: it loads after the dV GEMM, behind a barrier).
// The launcher falls back to one of each on GPUs without the shared memory for the plan.
// kCausalHeadGroups: 1 runs causal CTAs heaviest key block first across groups of heads
// (BackwardCta in mask.cuh), 0 in launch order.
// kDqBeforeDk: 1 runs the dQ GEMM and its atomics before the dK GEMM (FlashAttention-2's
// order: the atomics drain under dK's math instead of right before the loop's barrier).
// Plan: the named tile struct a generated file renders from kernels.yaml (templates/tile_struct.j2).
template <class Plan>
struct BwdConfig : DqAccumulatorOrder<Plan::kBlockM, Plan::kHeadDim, Plan::kWarps * 32> {
  using Element = typename Plan::Element;
  static constexpr int kAtomM_SdP = Plan::kAtomMSdp, kAtomN_dKV = Plan::kAtomNDkv, kAtomM_dQ = Plan::kAtomMDq;
  static constexpr int kQBuffers = Plan::kQBuffers, kDoBuffers = Plan::kDoBuffers;
  static_assert((kQBuffers == 1 || kQBuffers == 2) && (kDoBuffers == 1 || kDoBuffers == 2));
  static constexpr bool kDqBeforeDk = Plan::kDqBeforeDk != 0;
  static constexpr bool kCausalHeadGroups = Plan::kCausalHeadGroups != 0;
  static constexpr bool kWindow = has_window_feature<Plan>();  // sliding-window masks (params' bounds)
  static constexpr bool kSoftcap = has_softcap_feature<Plan>();  // tanh-capped scores (common/softcap.cuh)
  static constexpr bool kVarlen = has_varlen_feature<Plan>();  // packed sequences (common/seqlen.cuh)
  static constexpr int kHeadDim = Plan::kHeadDim;
  static constexpr int kBlockM = Plan::kBlockM;
  static constexpr int kBlockN = Plan::kBlockN;
  static constexpr int kNWarps = Plan::kWarps;
  static constexpr int kNThreads = kNWarps * 32;
  static constexpr int kDqThreads = kNThreads;  // threads of the dQ GEMM (the postprocess reads back in their order)

  using Atom = typename MmaAtomFor<Element>::type;
  template <int kWarpsM>
  using WarpTiledMma = TiledMMA<Atom, Layout<Shape<Int<kWarpsM>, Int<kNWarps / kWarpsM>, _1>>,
                                Tile<Int<16 * kWarpsM>, Int<16 * (kNWarps / kWarpsM)>, _16>>;
  using TiledMmaSdP = WarpTiledMma<kAtomM_SdP>;  // (kBlockM, kBlockN)
  using TiledMmadKV = WarpTiledMma<kAtomN_dKV>;  // (kBlockN, kHeadDim)
  using TiledMmadQ = WarpTiledMma<kAtomM_dQ>;    // (kBlockM, kHeadDim)

  using Smem = SmemTile<kHeadDim>;
  using SmemLayoutQ = typename Smem::template Layout<kBlockM>;             // Q, dO
  using SmemLayoutQt = typename Smem::template TransposedLayout<kBlockM>;
  using SmemLayoutQtPlain = typename Smem::template TransposedLayoutPlain<kBlockM>;
  using SmemLayoutKV = typename Smem::template Layout<kBlockN>;            // K, V
  using SmemLayoutKt = typename Smem::template TransposedLayout<kBlockN>;
  using SmemLayoutKtPlain = typename Smem::template TransposedLayoutPlain<kBlockN>;
  using SmemPdS = SmemTile<kBlockN>;
  using SmemLayoutPdS = typename SmemPdS::template Layout<kBlockM>;        // P, dS
  using SmemLayoutPdSt = typename SmemPdS::template TransposedLayout<kBlockM>;
  using SmemLayoutPdStPlain = typename SmemPdS::template TransposedLayoutPlain<kBlockM>;
  using Gmem = GmemCopies<Element, kHeadDim, kNThreads>;
  static_assert(kBlockM % Gmem::kRowsPerPass == 0 && kBlockN % Gmem::kRowsPerPass == 0,
                "a tile must be a whole number of copy passes");

  static constexpr int kQTileBytes = int(cosize(SmemLayoutQ{}) * sizeof(Element));
  static constexpr int kSmemBytes =
      (kQBuffers + kDoBuffers) * kQTileBytes +  // Q, dO (one or two buffers each)
      int((2 * cosize(SmemLayoutKV{}) + 2 * cosize(SmemLayoutPdS{})) * sizeof(Element));
  static_assert(kSmemBytes == Plan::kSmemBytes,
                "gen/families.py's shared-memory count disagrees with this kernel's");
  // The same plan with one Q and one dO buffer: what the launcher runs where kSmemBytes does not fit.
  struct SingleBufferedPlan : Plan {
    static constexpr int kQBuffers = 1, kDoBuffers = 1;
    static constexpr int kSmemBytes = Plan::kSmemBytes - (Plan::kQBuffers + Plan::kDoBuffers - 2) * kQTileBytes;
  };
  using SingleBuffered = BwdConfig<SingleBufferedPlan>;
};

template <class Cfg, bool kCausal>
__global__ void __launch_bounds__(Cfg::kNThreads) bwd_kernel(const BwdParams params) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  extern __shared__ __align__(128) char smem[];

  // This launch's key blocks start at n_block_offset (deterministic mode launches them
  // dq_splits at a time); the CTA of launch-local key block n adds its dQ into split n.
  const BackwardCta cta(blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y, gridDim.z,
                        int64_t(params.seqlen_q) * kHeadDim * sizeof(float), /*heavy_first_groups=*/kCausal && Cfg::kCausalHeadGroups);
  const int n_block = params.n_block_offset + cta.n_block_local, head = cta.head, batch = cta.batch;
  const int tidx = threadIdx.x;
  const int col0 = n_block * kBlockN;
  const SequenceLengthsFor<Cfg> seqlens(params, batch);
  if constexpr (Cfg::kVarlen) {
    if (col0 >= seqlens.seqlen_k) return;  // the grid covers the longest sequence's keys; not this one's
  }
  const int k_rows_left = seqlens.seqlen_k_of(params) - col0;
  const AttentionMask mask = make_mask<Cfg::kWindow>(seqlens, kCausal, params);

  const QueryBlockOrder order(mask, kBlockM, kBlockN, n_block);
  const auto block = backward_block_for<Cfg>(params, seqlens, n_block, head, /*split=*/cta.n_block_local);

  typename Cfg::TiledMmadKV mma_dkv;
  auto thr_dkv = mma_dkv.get_thread_slice(tidx);
  Tensor acc_dk = partition_fragment_C(mma_dkv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  Tensor acc_dv = partition_fragment_C(mma_dkv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  clear(acc_dk);
  clear(acc_dv);

  Element* smem_base = reinterpret_cast<Element*>(smem);
  Tensor sQ = make_tensor(make_smem_ptr(smem_base), typename Cfg::SmemLayoutQ{});
  Tensor sdO = make_tensor(sQ.data() + Cfg::kQBuffers * size(sQ), typename Cfg::SmemLayoutQ{});  // dO buffer 0
  Tensor sK = make_tensor(sdO.data() + Cfg::kDoBuffers * size(sdO), typename Cfg::SmemLayoutKV{});
  Tensor sV = make_tensor(sK.data() + size(sK), typename Cfg::SmemLayoutKV{});
  Tensor sP = make_tensor(sV.data() + size(sV), typename Cfg::SmemLayoutPdS{});
  Tensor sdS = make_tensor(sP.data() + size(sP), typename Cfg::SmemLayoutPdS{});
  // Transposed views for the dV, dK (and dQ) GEMMs.
  Tensor sQt = make_tensor(sQ.data(), typename Cfg::SmemLayoutQt{});
  Tensor sdOt = make_tensor(sdO.data(), typename Cfg::SmemLayoutQt{});
  Tensor sKt = make_tensor(sK.data(), typename Cfg::SmemLayoutKt{});
  Tensor sPt = make_tensor(sP.data(), typename Cfg::SmemLayoutPdSt{});
  Tensor sdSt = make_tensor(sdS.data(), typename Cfg::SmemLayoutPdSt{});

  auto store_dkv = [&]() { store_dk_dv_for<Cfg>(params, seqlens, mma_dkv, acc_dk, acc_dv, sK, sV, head, n_block, tidx); };
  if (order.steps == 0) {  // no query sees these keys: dK = dV = 0
    store_dkv();
    return;
  }

  typename Cfg::Gmem::AsyncLoad gmem_load;
  auto thr_load = gmem_load.get_thread_slice(tidx);
  Tensor cQ = make_identity_tensor(Shape<Int<kBlockM>, Int<kHeadDim>>{});
  Tensor cKV = make_identity_tensor(Shape<Int<kBlockN>, Int<kHeadDim>>{});
  Tensor tQgQ = thr_load.partition_S(block.q);    // (CPY, CPY_M, CPY_K, m_block)
  Tensor tQgdO = thr_load.partition_S(block.dout);
  Tensor tQsQ = thr_load.partition_D(sQ);  // Q buffer 0; buffer b is size(sQ) * b elements on
  Tensor tQsdO = thr_load.partition_D(sdO);
  Tensor tQcQ = thr_load.partition_S(cQ);
  Tensor tKVcKV = thr_load.partition_S(cKV);
  // The loop's step `it` visits query block order.at(it).
  const int n_steps = order.steps;
  auto m_block_at = [&](int it) { return order.at(it); };
  // Step it's Q buffer (they alternate when there are two).
  auto in_q_buffer = [&](auto const& t, int it) {
    return make_tensor(t.data() + (Cfg::kQBuffers == 2 ? (it & 1) * int(size(sQ)) : 0), t.layout());
  };
  auto in_do_buffer = [&](auto const& t, int it) {
    return make_tensor(t.data() + (Cfg::kDoBuffers == 2 ? (it & 1) * int(size(sdO)) : 0), t.layout());
  };
  auto load_q = [&](int it) {
    const int m_block = m_block_at(it);
    copy_rows_or_zero<kBlockM>(gmem_load, tQgQ(_, _, _, m_block), in_q_buffer(tQsQ, it), tQcQ,
                               seqlens.seqlen_q_of(params) - m_block * kBlockM);
  };
  auto load_do = [&](int it) {
    const int m_block = m_block_at(it);
    copy_rows_or_zero<kBlockM>(gmem_load, tQgdO(_, _, _, m_block), in_do_buffer(tQsdO, it), tQcQ,
                               seqlens.seqlen_q_of(params) - m_block * kBlockM);
  };

  // S and dP.
  typename Cfg::TiledMmaSdP mma_sdp;
  auto thr_sdp = mma_sdp.get_thread_slice(tidx);
  Tensor tSrQ = thr_sdp.partition_fragment_A(sQ);
  Tensor tSrK = thr_sdp.partition_fragment_B(sK);
  Tensor tdPrdO = thr_sdp.partition_fragment_A(sdO);
  Tensor tdPrV = thr_sdp.partition_fragment_B(sV);
  auto copy_sdp_a = make_tiled_copy_A(Copy_Atom<SmemLoadAtom, Element>{}, mma_sdp);
  auto copy_sdp_b = make_tiled_copy_B(Copy_Atom<SmemLoadAtom, Element>{}, mma_sdp);
  Tensor tSsQ = copy_sdp_a.get_thread_slice(tidx).partition_S(sQ);
  Tensor tdPsdO = copy_sdp_a.get_thread_slice(tidx).partition_S(sdO);
  Tensor tSsK = copy_sdp_b.get_thread_slice(tidx).partition_S(sK);
  Tensor tdPsV = copy_sdp_b.get_thread_slice(tidx).partition_S(sV);
  Tensor sdp_coords_raw = thr_sdp.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor sdp_coords = make_tensor(sdp_coords_raw.data(), accumulator_as_rows_cols(sdp_coords_raw.layout()));
  // P, dS registers -> shared memory.
  auto copy_pds = make_tiled_copy_C(Copy_Atom<AutoVectorizingCopyWithAssumedAlignment<32>, Element>{}, mma_sdp);
  auto thr_copy_pds = copy_pds.get_thread_slice(tidx);
  Tensor tPsP = thr_copy_pds.partition_D(sP);
  Tensor tdSsdS = thr_copy_pds.partition_D(sdS);

  // dV = P^T dO, dK = dS^T Q: A operands P^T/dS^T and B operands dO^T/Q^T read transposed.
  Tensor tdVrPt = thr_dkv.partition_fragment_A(make_tensor(sP.data(), typename Cfg::SmemLayoutPdStPlain{}));
  Tensor tdVrdOt = thr_dkv.partition_fragment_B(make_tensor(sdO.data(), typename Cfg::SmemLayoutQtPlain{}));
  Tensor tdKrdSt = thr_dkv.partition_fragment_A(make_tensor(sdS.data(), typename Cfg::SmemLayoutPdStPlain{}));
  Tensor tdKrQt = thr_dkv.partition_fragment_B(make_tensor(sQ.data(), typename Cfg::SmemLayoutQtPlain{}));
  auto copy_dkv_a = make_tiled_copy_A(Copy_Atom<SmemLoadTransposedAtom, Element>{}, mma_dkv);
  auto copy_dkv_b = make_tiled_copy_B(Copy_Atom<SmemLoadTransposedAtom, Element>{}, mma_dkv);
  Tensor tdVsPt = copy_dkv_a.get_thread_slice(tidx).partition_S(sPt);
  Tensor tdKsdSt = copy_dkv_a.get_thread_slice(tidx).partition_S(sdSt);
  Tensor tdVsdOt = copy_dkv_b.get_thread_slice(tidx).partition_S(sdOt);
  Tensor tdKsQt = copy_dkv_b.get_thread_slice(tidx).partition_S(sQt);

  // dQ = dS K: A = dS as stored, B = K^T read transposed.
  typename Cfg::TiledMmadQ mma_dq;
  auto thr_dq = mma_dq.get_thread_slice(tidx);
  Tensor tdQrdS = thr_dq.partition_fragment_A(sdS);
  Tensor tdQrKt = thr_dq.partition_fragment_B(make_tensor(sK.data(), typename Cfg::SmemLayoutKtPlain{}));
  auto copy_dq_a = make_tiled_copy_A(Copy_Atom<SmemLoadAtom, Element>{}, mma_dq);
  auto copy_dq_b = make_tiled_copy_B(Copy_Atom<SmemLoadTransposedAtom, Element>{}, mma_dq);
  Tensor tdQsdS = copy_dq_a.get_thread_slice(tidx).partition_S(sdS);
  Tensor tdQsKt = copy_dq_b.get_thread_slice(tidx).partition_S(sKt);

  // Prologue: K, V once; the first Q and dO.
  copy_rows_or_zero<kBlockN>(gmem_load, thr_load.partition_S(block.k), thr_load.partition_D(sK), tKVcKV,
                             k_rows_left);
  copy_rows_or_zero<kBlockN>(gmem_load, thr_load.partition_S(block.v), thr_load.partition_D(sV), tKVcKV,
                             k_rows_left);
  load_q(0);
  load_do(0);
  cute::cp_async_fence();

  for (int it = 0; it < n_steps; ++it) {
    const int m_block = m_block_at(it);
    const int row0 = m_block * kBlockM;
    const int q_rows_left = seqlens.seqlen_q_of(params) - row0;
    const bool has_next = it + 1 < n_steps;
    cute::cp_async_wait<0>();
    __syncthreads();  // Q_i, dO_i (and K, V) landed; every warp is done with iteration i-1
    if (Cfg::kQBuffers == 2 && has_next) {  // the other buffer was last read by step it-1's dK GEMM
      load_q(it + 1);
      if constexpr (Cfg::kDoBuffers == 2) load_do(it + 1);  // ... and that one by its dV GEMM
      cute::cp_async_fence();
    } else if (Cfg::kDoBuffers == 2 && has_next) {
      load_do(it + 1);
      cute::cp_async_fence();
    }

    // This block's LSE and D rows, fetched before the GEMMs so their latency hides under them.
    constexpr int kRows = decltype(size<0>(sdp_coords))::value;
    float lse_log2[kRows], d_row[kRows];
    load_row_stats(sdp_coords, block.lse, block.softmax_d, row0, q_rows_left, lse_log2, d_row);

    // S = Q K^T and dP = dO V^T.
    Tensor acc_s = partition_fragment_C(mma_sdp, Shape<Int<kBlockM>, Int<kBlockN>>{});
    Tensor acc_dp = partition_fragment_C(mma_sdp, Shape<Int<kBlockM>, Int<kBlockN>>{});
    clear(acc_s);
    clear(acc_dp);
    gemm_smem_smem(mma_sdp, acc_s, tSrQ, tSrK, in_q_buffer(tSsQ, it), tSsK, copy_sdp_a, copy_sdp_b, tidx);
    gemm_smem_smem(mma_sdp, acc_dp, tdPrdO, tdPrV, in_do_buffer(tdPsdO, it), tdPsV, copy_sdp_a, copy_sdp_b, tidx);

    // P = exp2(S * scale * log2(e) - LSE * log2(e)); dS = P * (dP - D).
    Tensor scores = make_tensor(acc_s.data(), accumulator_as_rows_cols(acc_s.layout()));
    Tensor dp = make_tensor(acc_dp.data(), accumulator_as_rows_cols(acc_dp.layout()));
    softcap_scores<Cfg::kSoftcap>(acc_s, params.softcap_scale);  // with softcap: S <- tanh(S * softcap_scale)
    if (mask.tile_needs_mask(row0, kBlockM, col0, kBlockN)) mask.apply(scores, sdp_coords, row0, col0);
    probabilities_and_score_grads<Cfg::kSoftcap>(scores, dp, lse_log2, d_row, params.softmax_scale_log2,
                                                 params.softcap_scale != 0.f);
    cute::copy(copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc_s)), tPsP);
    cute::copy(copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc_dp)), tdSsdS);
    __syncthreads();  // P, dS visible to all warps

    // dV += P^T dO. With one dO buffer it is then free: the next dO loads under dK, dQ and the atomics.
    gemm_smem_smem(mma_dkv, acc_dv, tdVrPt, tdVrdOt, tdVsPt, in_do_buffer(tdVsdOt, it), copy_dkv_a, copy_dkv_b, tidx);
    if constexpr (Cfg::kDoBuffers == 1) {
      __syncthreads();  // every warp is done reading dO
      if (has_next) load_do(it + 1);
      cute::cp_async_fence();
    }
    // dK += dS^T Q. With one Q buffer it is then free: the next Q loads under what follows.
    auto dk_step = [&]() {
      gemm_smem_smem(mma_dkv, acc_dk, tdKrdSt, tdKrQt, tdKsdSt, in_q_buffer(tdKsQt, it), copy_dkv_a, copy_dkv_b,
                     tidx);
      if (Cfg::kQBuffers == 1) {
        __syncthreads();  // every warp is done reading Q
        if (has_next) load_q(it + 1);
        cute::cp_async_fence();
      }
    };
    if constexpr (!Cfg::kDqBeforeDk) dk_step();
    // dQ_i += dS K (fp32 atomics: other key blocks add into the same rows). P and dS are
    // rewritten only after the next iteration's first barrier, which every warp reaches after
    // its dQ and dK GEMMs.
    Tensor acc_dq = partition_fragment_C(mma_dq, Shape<Int<kBlockM>, Int<kHeadDim>>{});
    clear(acc_dq);
    gemm_smem_smem(mma_dq, acc_dq, tdQrdS, tdQrKt, tdQsdS, tdQsKt, copy_dq_a, copy_dq_b, tidx);
    Cfg::add_fragment(block.dq_tiles + m_block * Cfg::kDqTileElems, acc_dq, tidx);
    if constexpr (Cfg::kDqBeforeDk) dk_step();
  }
  store_dkv();
}

template <class Cfg>
cudaError_t launch_bwd(const BwdParams& params, cudaStream_t stream) {
  if constexpr (Cfg::kQBuffers > 1 || Cfg::kDoBuffers > 1) {
    if (device_smem_optin() < Cfg::kSmemBytes) return launch_bwd<typename Cfg::SingleBuffered>(params, stream);
  }
  return launch_bwd_pipeline<Cfg>(params, stream,
                                  launch_kernel_with_params<Cfg>(&bwd_kernel<Cfg, false>, &bwd_kernel<Cfg, true>, stream));
}

}  // namespace flashgen::sm80
