// sm90 backward attention, first version: the sm80 backward's schedule (FlashAttention-2
// structure) with all five GEMMs as warpgroup MMAs reading both operands from shared memory,
// so no ldmatrix traffic through registers. Compiled for sm_90a only (H100, H200).
//
// One CTA of two warpgroups per (key block, head, batch); a 64 x 64 tile (64 query rows per
// step, 64 keys). Every GEMM has 64 rows (one wgmma M), so the warpgroups split the columns:
//   S = Q K^T, dP = dO V^T   64 x 64, K = head_dim   warpgroup w: key columns [32w, 32w + 32)
//                            (kSdpByWarpgroup: warpgroup 0 computes all of S, warpgroup 1 all
//                            of dP, and hands dP - D to warpgroup 0 through shared memory)
//   dV += P^T dO, dK += dS^T Q   64 x head_dim, K = 64   w: head-dim columns [hd/2 w, hd/2 (w+1))
//   dQ = dS K    64 x head_dim, K = 64   w: head-dim half w; fp32 atomics into dq_accum
// P and dS leave registers for shared memory (the dV, dK and dQ GEMMs read them, transposed for
// the first two). Q and dO are double-buffered: step i+1's load into the other buffer at the top
// of step i, so the dV, dQ and dK GEMMs go out as one issue, with two barriers per step; dQ's
// atomics go out while the dK GEMM still runs. The preprocess, the dQ accumulator's order, the
// postprocess, the launches and the step's row math are the shared ones (common/bwd_pipeline.cuh);
// only the main kernel is Hopper's. The head dims up to 128 take the warp-specialized kernel
// (bwd_ws_kernel.cuh); not yet here at 256 (FA3's steps): TMA loads, warp specialization,
// 64 x 80 tiles with swapped operands, sliced dQ.
#pragma once
#include <cuda_runtime.h>

#include <cute/tensor.hpp>

#include "flashgen/params.h"
#include "flashgen/common/bwd_pipeline.cuh"
#include "flashgen/common/copies.cuh"
#include "flashgen/common/mask.cuh"
#include "flashgen/common/softcap.cuh"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/sm90/warpgroup.cuh"

namespace flashgen::sm90 {
using namespace cute;

// Compile-time plan of one backward kernel (numbers from kernels.yaml via the generated file).
// Plan: the named tile struct a generated file renders from kernels.yaml (templates/tile_struct.j2).
template <class Plan>
struct BwdConfig : DqAccumulatorOrder<Plan::kBlockM, Plan::kHeadDim, 256, 4> {
  using Element = typename Plan::Element;
  // The dQ GEMM: true, alone in the first wgmma batch (its atomics overlap dV's and dK's
  // GEMMs); false, batched with dV (its atomics overlap dK's GEMM only).
  static constexpr bool kDqGemmFirst = Plan::kDqGemmFirst != 0;
  // S and dP: true, one whole 64 x 64 wgmma per warpgroup (S on 0, dP on 1: each wgmma reads
  // the 64-row A operand once, not twice); false, both warpgroups split both GEMMs' columns.
  static constexpr bool kSdpByWarpgroup = Plan::kSdpByWarpgroup != 0;
  static constexpr bool kWindow = has_window_feature<Plan>();  // sliding-window masks (params' bounds)
  static constexpr bool kSoftcap = has_softcap_feature<Plan>();  // tanh-capped scores (common/softcap.cuh)
  static_assert(!has_varlen_feature<Plan>(), "this design has no varlen: warp_specialized: 1 has (gen/families.py)");
  static constexpr int kHeadDim = Plan::kHeadDim;
  static constexpr int kBlockM = Plan::kBlockM;
  static constexpr int kBlockN = Plan::kBlockN;
  static constexpr int kNThreads = 256;  // two warpgroups
  static constexpr int kDqThreads = kNThreads;  // threads of the dQ GEMM (the postprocess reads back in their order)
  static_assert(kBlockM == 64 && kBlockN == 64, "this version tiles 64 x 64: one wgmma M per GEMM");
  static_assert(kHeadDim == 64 || kHeadDim % 128 == 0,
                "each warpgroup's head-dim half must be whole 64-column swizzle atoms (or lie in one)");

  using WarpgroupsAlongN = Layout<Shape<_1, _2, _1>>;
  template <int kN, GMMA::Major kMajorA, GMMA::Major kMajorB>
  using SsMma = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kN / 2>, _16>, kMajorA, kMajorB>(),
      WarpgroupsAlongN{}));
  using TiledMmaSdPOneWarpgroup = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kBlockN>, _16>, GMMA::Major::K, GMMA::Major::K>()));
  using TiledMmaSdP = conditional_t<kSdpByWarpgroup, TiledMmaSdPOneWarpgroup,  // (queries, keys)
                                    SsMma<kBlockN, GMMA::Major::K, GMMA::Major::K>>;
  static constexpr int kSdpThreads = kSdpByWarpgroup ? 128 : kNThreads;  // the threads of one S (or dP) GEMM
  using TiledMmadKV = SsMma<kHeadDim, GMMA::Major::MN, GMMA::Major::MN>;  // (keys, head_dim)
  using TiledMmadQ = SsMma<kHeadDim, GMMA::Major::K, GMMA::Major::MN>;    // (queries, head_dim)

  // Tiles K-major in the wgmma 128-byte swizzle; the transposed views are the MN-major operands.
  using SmemAtom = GMMA::Layout_K_SW128_Atom<Element>;
  template <int kRows, int kCols>
  using Tile = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kRows>, Int<kCols>>{}));
  template <int kRows, int kCols>
  using Transposed = decltype(composition(Tile<kRows, kCols>{}, make_layout(Shape<Int<kCols>, Int<kRows>>{},
                                                                            GenRowMajor{})));
  using SmemLayoutQ = Tile<kBlockM, kHeadDim>;  // Q, dO (two buffers each); the postprocess's staging tile
  using SmemLayoutQt = Transposed<kBlockM, kHeadDim>;
  using SmemLayoutKV = Tile<kBlockN, kHeadDim>;
  using SmemLayoutKt = Transposed<kBlockN, kHeadDim>;
  using SmemLayoutPdS = Tile<kBlockM, kBlockN>;
  using SmemLayoutPdSt = Transposed<kBlockM, kBlockN>;
  using Gmem = GmemCopies<Element, kHeadDim, kNThreads>;
  static_assert(kBlockM % Gmem::kRowsPerPass == 0 && kBlockN % Gmem::kRowsPerPass == 0,
                "a tile must be a whole number of copy passes");

  static constexpr int kQTileBytes = int(cosize(SmemLayoutQ{}) * sizeof(Element));
  // dP - D as fp32, element i of warpgroup-1 thread t at i * 128 + t (consecutive threads write
  // consecutive words): what warpgroup 0 needs for dS = P * (dP - D).
  static constexpr int kExchangeBytes = kSdpByWarpgroup ? kBlockM * kBlockN * 4 : 0;
  static constexpr int kSmemBytes = 4 * kQTileBytes +  // Q, dO (two buffers each)
                                    int((2 * cosize(SmemLayoutKV{}) + 2 * cosize(SmemLayoutPdS{})) * sizeof(Element)) +
                                    kExchangeBytes;
  static_assert(kSmemBytes == Plan::kSmemBytes,
                "gen/families.py's shared-memory count disagrees with this kernel's");
};

template <class Cfg, bool kCausal>
__global__ void __launch_bounds__(Cfg::kNThreads, 1) bwd_kernel(const BwdParams params) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  extern __shared__ __align__(1024) char smem[];  // 128-byte swizzle atoms repeat every 1 KB

  // This launch's key blocks start at n_block_offset (deterministic mode); the CTA of
  // launch-local key block n adds its dQ into split n. Launch order, causal too (see BackwardCta).
  const BackwardCta cta(blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y, gridDim.z,
                              int64_t(params.seqlen_q) * kHeadDim * sizeof(float), /*heavy_first_groups=*/false);
  const int n_block = params.n_block_offset + cta.n_block_local, head = cta.head, batch = cta.batch;
  const int tidx = threadIdx.x;
  const int col0 = n_block * kBlockN;
  const int k_rows_left = params.seqlen_k - col0;
  const AttentionMask mask = make_mask<Cfg::kWindow>(FixedSequenceLengths(params, batch), kCausal, params);

  const QueryBlockOrder order(mask, kBlockM, kBlockN, n_block);
  const auto block = backward_block<Cfg>(params, n_block, head, batch, /*split=*/cta.n_block_local);

  Element* smem_base = reinterpret_cast<Element*>(smem);
  constexpr int kQElems = cosize(typename Cfg::SmemLayoutQ{});
  constexpr int kKVElems = cosize(typename Cfg::SmemLayoutKV{});
  constexpr int kPdSElems = cosize(typename Cfg::SmemLayoutPdS{});
  Element* const q_buffers = smem_base;  // two Q tiles
  Element* const do_buffers = q_buffers + 2 * kQElems;  // two dO tiles
  Element* const k_tile = do_buffers + 2 * kQElems;
  Element* const v_tile = k_tile + kKVElems;
  Element* const p_tile = v_tile + kKVElems;
  Element* const ds_tile = p_tile + kPdSElems;
  float* const exchange = reinterpret_cast<float*>(ds_tile + kPdSElems);  // kSdpByWarpgroup only
  auto smem_tensor = [](Element* ptr, auto layout) { return make_tensor(make_smem_ptr(ptr), layout); };
  Tensor sK = smem_tensor(k_tile, typename Cfg::SmemLayoutKV{});
  Tensor sV = smem_tensor(v_tile, typename Cfg::SmemLayoutKV{});
  Tensor sP = smem_tensor(p_tile, typename Cfg::SmemLayoutPdS{});
  Tensor sdS = smem_tensor(ds_tile, typename Cfg::SmemLayoutPdS{});

  typename Cfg::TiledMmaSdP mma_sdp;
  typename Cfg::TiledMmadKV mma_dkv;
  typename Cfg::TiledMmadQ mma_dq;
  const int sdp_tidx = Cfg::kSdpByWarpgroup ? tidx % Cfg::kSdpThreads : tidx;  // this thread within its S (or dP) GEMM
  auto thr_sdp = mma_sdp.get_thread_slice(sdp_tidx);
  auto thr_dkv = mma_dkv.get_thread_slice(tidx);
  auto thr_dq = mma_dq.get_thread_slice(tidx);
  Tensor acc_dk = partition_fragment_C(mma_dkv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  Tensor acc_dv = partition_fragment_C(mma_dkv, Shape<Int<kBlockN>, Int<kHeadDim>>{});
  clear(acc_dk);
  clear(acc_dv);

  auto store_dkv = [&]() {
    store_dk_dv<Cfg>(params, mma_dkv, acc_dk, acc_dv, sK, sV, batch, head, n_block, tidx);
  };
  if (order.steps == 0) {  // no query sees these keys: dK = dV = 0
    store_dkv();
    return;
  }

  typename Cfg::Gmem::AsyncLoad gmem_load;
  auto thr_load = gmem_load.get_thread_slice(tidx);
  Tensor cQ = make_identity_tensor(Shape<Int<kBlockM>, Int<kHeadDim>>{});
  Tensor cKV = make_identity_tensor(Shape<Int<kBlockN>, Int<kHeadDim>>{});
  Tensor tQgQ = thr_load.partition_S(block.q);  // (CPY, CPY_M, CPY_K, m_block)
  Tensor tQgdO = thr_load.partition_S(block.dout);
  Tensor tQcQ = thr_load.partition_S(cQ);
  Tensor tKVcKV = thr_load.partition_S(cKV);
  // Step `it` visits query block order.at(it); its Q and dO live in buffers it % 2.
  const int n_steps = order.steps;
  auto m_block_at = [&](int it) { return order.at(it); };
  auto q_buffer = [&](int it) { return q_buffers + (it & 1) * kQElems; };
  auto do_buffer = [&](int it) { return do_buffers + (it & 1) * kQElems; };
  auto load_q_and_do = [&](int it) {
    const int m_block = m_block_at(it);
    const int rows_left = params.seqlen_q - m_block * kBlockM;
    auto into = [&](Element* buffer) {
      return thr_load.partition_D(smem_tensor(buffer, typename Cfg::SmemLayoutQ{}));
    };
    copy_rows_or_zero<kBlockM>(gmem_load, tQgQ(_, _, _, m_block), into(q_buffer(it)), tQcQ, rows_left);
    copy_rows_or_zero<kBlockM>(gmem_load, tQgdO(_, _, _, m_block), into(do_buffer(it)), tQcQ, rows_left);
    cute::cp_async_fence();
  };

  // Operands as shared-memory descriptors. Q's and dO's change with their buffers, so they are
  // made per step.
  Tensor tSrK = thr_sdp.make_fragment_B(thr_sdp.partition_B(sK));
  Tensor tdPrV = thr_sdp.make_fragment_B(thr_sdp.partition_B(sV));
  Tensor tdVrPt = thr_dkv.make_fragment_A(thr_dkv.partition_A(smem_tensor(p_tile, typename Cfg::SmemLayoutPdSt{})));
  Tensor tdKrdSt = thr_dkv.make_fragment_A(thr_dkv.partition_A(smem_tensor(ds_tile, typename Cfg::SmemLayoutPdSt{})));
  Tensor tdQrdS = thr_dq.make_fragment_A(thr_dq.partition_A(sdS));
  Tensor tdQrKt = thr_dq.make_fragment_B(thr_dq.partition_B(smem_tensor(k_tile, typename Cfg::SmemLayoutKt{})));

  Tensor sdp_coords_raw = thr_sdp.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  Tensor sdp_coords = make_tensor(sdp_coords_raw.data(), accumulator_as_rows_cols(sdp_coords_raw.layout()));
  auto copy_pds = make_tiled_copy_C(Copy_Atom<AutoVectorizingCopyWithAssumedAlignment<32>, Element>{}, mma_sdp);
  auto thr_copy_pds = copy_pds.get_thread_slice(sdp_tidx);
  Tensor tPsP = thr_copy_pds.partition_D(sP);
  Tensor tdSsdS = thr_copy_pds.partition_D(sdS);

  // Prologue: K, V once; the first Q and dO.
  copy_rows_or_zero<kBlockN>(gmem_load, thr_load.partition_S(block.k), thr_load.partition_D(sK), tKVcKV,
                                   k_rows_left);
  copy_rows_or_zero<kBlockN>(gmem_load, thr_load.partition_S(block.v), thr_load.partition_D(sV), tKVcKV,
                                   k_rows_left);
  load_q_and_do(0);

  for (int it = 0; it < n_steps; ++it) {
    const int m_block = m_block_at(it);
    const int row0 = m_block * kBlockM;
    const int q_rows_left = params.seqlen_q - row0;
    const bool has_next = it + 1 < n_steps;
    cute::cp_async_wait<0>();
    publish_smem_writes_to_wgmma();  // Q_i, dO_i (and K, V) landed; every warpgroup is done with step it-1
    if (has_next) load_q_and_do(it + 1);  // the other buffers were last read by step it-1's GEMMs
    // This step's Q and dO buffers as wgmma operands: as stored (S, dP; made below) and transposed (dK, dV).
    auto tile = [&](Element* buffer) { return smem_tensor(buffer, typename Cfg::SmemLayoutQ{}); };
    auto tile_t = [&](Element* buffer) { return smem_tensor(buffer, typename Cfg::SmemLayoutQt{}); };
    Tensor tdKrQt = thr_dkv.make_fragment_B(thr_dkv.partition_B(tile_t(q_buffer(it))));
    Tensor tdVrdOt = thr_dkv.make_fragment_B(thr_dkv.partition_B(tile_t(do_buffer(it))));

    // This block's LSE and D rows, fetched before the GEMMs so their latency hides under them.
    constexpr int kRows = decltype(size<0>(sdp_coords))::value;
    float lse_log2[kRows], d_row[kRows];
    load_row_stats(sdp_coords, block.lse, block.softmax_d, row0, q_rows_left, lse_log2, d_row);

    if constexpr (Cfg::kSdpByWarpgroup) {
      // Warpgroup 0: S = Q K^T, then P; warpgroup 1: dP = dO V^T, then dP - D into the
      // exchange tile for warpgroup 0's dS = P * (dP - D). Both branches are warp-uniform.
      const bool computes_s = tidx < Cfg::kSdpThreads;
      Tensor tA = thr_sdp.make_fragment_A(thr_sdp.partition_A(tile(computes_s ? q_buffer(it) : do_buffer(it))));
      Tensor tB = thr_sdp.make_fragment_B(
          thr_sdp.partition_B(smem_tensor(computes_s ? k_tile : v_tile, typename Cfg::SmemLayoutKV{})));
      Tensor acc = partition_fragment_C(mma_sdp, Shape<Int<kBlockM>, Int<kBlockN>>{});
      warpgroup_gemm(mma_sdp, tA, tB, acc, /*zero_init=*/true);
      Tensor rows_cols = make_tensor(acc.data(), accumulator_as_rows_cols(acc.layout()));
      if (computes_s) {
        // With softcap: S <- tanh(S * softcap_scale), its derivative kept for dS.
        Tensor softcap_derivative = softcap_derivative_like<Cfg::kSoftcap>(acc);
        softcap_scores<Cfg::kSoftcap>(acc, params.softcap_scale, softcap_derivative);
        if (mask.tile_needs_mask(row0, kBlockM, col0, kBlockN)) mask.apply(rows_cols, sdp_coords, row0, col0);
        probabilities(rows_cols, lse_log2, params.softmax_scale_log2);
        cute::copy(copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc)), tPsP);
        named_barrier_sync(kExchangeBarrier, Cfg::kNThreads);  // warpgroup 1's dP - D is in place
        CUTE_UNROLL
        for (int i = 0; i < size(acc); ++i) acc(i) *= exchange[i * Cfg::kSdpThreads + sdp_tidx];
        softcap_score_grads<Cfg::kSoftcap>(acc, softcap_derivative, params.softcap_scale);
        cute::copy(copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc)), tdSsdS);
      } else {
        CUTE_UNROLL
        for (int mi = 0; mi < size<0>(rows_cols); ++mi) {
          CUTE_UNROLL
          for (int ni = 0; ni < size<1>(rows_cols); ++ni) rows_cols(mi, ni) -= d_row[mi];
        }
        CUTE_UNROLL
        for (int i = 0; i < size(acc); ++i) exchange[i * Cfg::kSdpThreads + sdp_tidx] = acc(i);
        named_barrier_arrive(kExchangeBarrier, Cfg::kNThreads);
      }
    } else {
      // S = Q K^T and dP = dO V^T: one wgmma batch.
      Tensor tSrQ = thr_sdp.make_fragment_A(thr_sdp.partition_A(tile(q_buffer(it))));
      Tensor tdPrdO = thr_sdp.make_fragment_A(thr_sdp.partition_A(tile(do_buffer(it))));
      Tensor acc_s = partition_fragment_C(mma_sdp, Shape<Int<kBlockM>, Int<kBlockN>>{});
      Tensor acc_dp = partition_fragment_C(mma_sdp, Shape<Int<kBlockM>, Int<kBlockN>>{});
      warpgroup_fence_operand(acc_s);
      warpgroup_fence_operand(acc_dp);
      warpgroup_arrive();
      issue_wgmma(mma_sdp, tSrQ, tSrK, acc_s, /*zero_init=*/true);
      issue_wgmma(mma_sdp, tdPrdO, tdPrV, acc_dp, /*zero_init=*/true);
      warpgroup_commit_batch();
      warpgroup_wait<0>();
      warpgroup_fence_operand(acc_s);
      warpgroup_fence_operand(acc_dp);

      // P = exp2(S * scale * log2(e) - LSE * log2(e)); dS = P * (dP - D).
      Tensor scores = make_tensor(acc_s.data(), accumulator_as_rows_cols(acc_s.layout()));
      Tensor dp = make_tensor(acc_dp.data(), accumulator_as_rows_cols(acc_dp.layout()));
      softcap_scores<Cfg::kSoftcap>(acc_s, params.softcap_scale);  // with softcap: S <- tanh(S * softcap_scale)
      if (mask.tile_needs_mask(row0, kBlockM, col0, kBlockN)) mask.apply(scores, sdp_coords, row0, col0);
      probabilities_and_score_grads<Cfg::kSoftcap>(scores, dp, lse_log2, d_row, params.softmax_scale_log2,
                                                         params.softcap_scale != 0.f);
      cute::copy(copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc_s)), tPsP);
      cute::copy(copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc_dp)), tdSsdS);
    }
    publish_smem_writes_to_wgmma();  // P, dS visible to both warpgroups' tensor cores

    // dV += P^T dO and dQ_i = dS K as one batch, dK += dS^T Q as the next; once the first is
    // done, dQ's fp32 atomics (other key blocks add into the same rows) go out while dK runs.
    // P, dS and this step's Q and dO buffers are rewritten only after the next step's first
    // barrier, which every warpgroup reaches after waiting for all three.
    Tensor acc_dq = partition_fragment_C(mma_dq, Shape<Int<kBlockM>, Int<kHeadDim>>{});
    warpgroup_fence_operand(acc_dv);
    warpgroup_fence_operand(acc_dq);
    warpgroup_fence_operand(acc_dk);
    warpgroup_arrive();
    if constexpr (Cfg::kDqGemmFirst) {
      // dQ alone first: its atomics start after one GEMM and drain under dV's and dK's.
      issue_wgmma(mma_dq, tdQrdS, tdQrKt, acc_dq, /*zero_init=*/true);
      warpgroup_commit_batch();
      issue_wgmma(mma_dkv, tdVrPt, tdVrdOt, acc_dv, /*zero_init=*/false);
      issue_wgmma(mma_dkv, tdKrdSt, tdKrQt, acc_dk, /*zero_init=*/false);
      warpgroup_commit_batch();
      warpgroup_wait<1>();  // dQ done; dV and dK may still run
      warpgroup_fence_operand(acc_dq);
      Cfg::add_fragment(block.dq_tiles + m_block * Cfg::kDqTileElems, acc_dq, tidx);
      warpgroup_wait<0>();
      warpgroup_fence_operand(acc_dv);
      warpgroup_fence_operand(acc_dk);
    } else {
      issue_wgmma(mma_dkv, tdVrPt, tdVrdOt, acc_dv, /*zero_init=*/false);
      issue_wgmma(mma_dq, tdQrdS, tdQrKt, acc_dq, /*zero_init=*/true);
      warpgroup_commit_batch();
      issue_wgmma(mma_dkv, tdKrdSt, tdKrQt, acc_dk, /*zero_init=*/false);
      warpgroup_commit_batch();
      warpgroup_wait<1>();  // dV and dQ done; dK may still run
      warpgroup_fence_operand(acc_dv);
      warpgroup_fence_operand(acc_dq);
      Cfg::add_fragment(block.dq_tiles + m_block * Cfg::kDqTileElems, acc_dq, tidx);
      warpgroup_wait<0>();
      warpgroup_fence_operand(acc_dk);
    }
  }
  store_dkv();
}

template <class Cfg>
cudaError_t launch_bwd(const BwdParams& params, cudaStream_t stream) {
  return launch_bwd_pipeline<Cfg>(
      params, stream, launch_kernel_with_params<Cfg>(&bwd_kernel<Cfg, false>, &bwd_kernel<Cfg, true>, stream));
}

}  // namespace flashgen::sm90
