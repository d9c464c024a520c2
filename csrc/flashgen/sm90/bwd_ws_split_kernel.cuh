// sm90 backward attention, warp-specialized, with the consumers splitting the head dim: the
// structure for head dims 192 and 256 (FlashAttention-3's there), where the keys-per-consumer
// split of bwd_ws_kernel.cuh cannot keep dK and dV in registers. Compiled for sm_90a only.
//
// One CTA per (key block of kBlockN keys, head, batch), walking the query blocks (64 rows) that
// see its keys. Warpgroup 0 produces, warpgroups 1 to kConsumers consume (two at 256, each 128
// head dims; three at 192, each 64):
// - Producer warp 0, one thread: K and V once (TMA), then per query block Q with its lse_log2
//   rows through a kStages-deep ring and dO with its D rows through a one-buffer ring (the
//   shared memory holds no second dO at head dim 256).
// - Consumer c, per query block (keys on the N of every GEMM, so block_n need not be a multiple
//   of 64):
//     S_c = Q K_c^T, dP_c = dO V_c^T       64 x block_n/kConsumers: the block's keys split evenly
//     P_c, dS_c                             registers, then shared memory (the consumers' slices
//                                           form the 64 x block_n P and dS tiles)
//     dV^T_c += dO^T_c P, dK^T_c += Q^T_c dS    head-dim slice c (128 rows at 256) x block_n
//     dQ_c = dS K[:, dims of c]             dQ's head-dim columns of consumer c, in 64-column pieces
//   dK^T and dV^T of the consumer's head dims stay in registers (2 x dims x block_n fp32 over
//   128 threads: 160 registers at 256, block_n 80; 96 at 192, block_n 96); each dQ piece (32
//   registers) is added to the fp32 accumulator by float4 atomics (red.global.add.v4.f32) as
//   soon as its GEMM is done, while the next GEMM runs: no shared-memory staging, which has no
//   room here.
// - Epilogue: dK (scaled) and dV transposed into K's and V's tiles, out by TMA stores that clip
//   rows past seqlen_k; with GQA fp32 stores per query head.
// - Varlen: as bwd_ws_kernel.cuh's (a CTA past its sequence's keys exits, the loads offset to the
//   sequence's first rows, the row statistics' padding zeroes the next sequence's queries); dK
//   and dV leave by 16-byte row stores that stop at seqlen_k, consumer 0 storing dK's tile and
//   consumer 1 dV's (a third consumer stores none).
// The preprocess, deterministic launches and dQ postprocess are common/bwd_pipeline.cuh's.
#pragma once
#include <cuda_runtime.h>

#include <cute/tensor.hpp>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "flashgen/common/bwd_pipeline.cuh"
#include "flashgen/common/copies.cuh"
#include "flashgen/common/mask.cuh"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/common/softcap.cuh"
#include "flashgen/common/utils.cuh"
#include "flashgen/params.h"
#include "flashgen/sm90/bwd_ws_common.cuh"
#include "flashgen/sm90/cluster.cuh"
#include "flashgen/sm90/tma.cuh"
#include "flashgen/sm90/warpgroup.cuh"

namespace flashgen::sm90 {
using namespace cute;

// Compile-time plan of one head-dim-split backward kernel. Plan is the generated tile struct
// (templates/tile_struct.j2): kBlockM (64), kBlockN (keys per CTA), kStages (Q ring depth), and
// kConsumers, the consumer warpgroups gen/families.py head_dim_split_consumers gives the head dim
// (one per 64 head dims up to three; two of 128 at 256), with their register split.
template <class Plan>
struct BwdWsSplitConfig : DqAccumulatorOrder<Plan::kBlockM, Plan::kHeadDim, 128 * Plan::kConsumers, 4> {
  using Element = typename Plan::Element;
  static constexpr int kHeadDim = Plan::kHeadDim;
  static constexpr int kBlockM = Plan::kBlockM;
  static constexpr int kBlockN = Plan::kBlockN;
  static constexpr int kStages = Plan::kStages;
  static constexpr bool kWindow = has_window_feature<Plan>();
  static constexpr bool kSoftcap = has_softcap_feature<Plan>();
  static constexpr bool kVarlen = has_varlen_feature<Plan>();  // packed sequences (common/seqlen.cuh)
  // ds_exchange: a cluster pair over key blocks 2p, 2p + 1 walks the same query blocks, each CTA
  // sending its dS to the other through distributed shared memory, so that CTA r adds dQ's
  // head-dim half r over both blocks' keys: half the fp32 reduction bytes per key.
  static constexpr bool kDsExchange = Plan::kDsExchange != 0;
  static constexpr int kClusterKeyBlocks = kDsExchange ? 2 : 1;
  // skip_unseen_keys (with ds_exchange): a step whose query block sees none of this CTA's keys
  // (a causal or window diagonal inside the pair's union of query blocks, or a second key block
  // past seqlen_k) runs only the dQ GEMM over the partner's keys, and sends the partner no dS,
  // only the step's arrival; the partner then skips its GEMM over this CTA's (zero) dS.
  static constexpr bool kSkipUnseenKeys = Plan::kSkipUnseenKeys != 0;
  static_assert(!kSkipUnseenKeys || kDsExchange, "skip_unseen_keys skips what a cluster pair's union adds");
  static constexpr int kPdsBuffers = Plan::kPdsBuffers;  // P and dS tiles (and the partner's dS)
  // The P/dS buffer of query-block step `step`, and which use of that buffer it is (the parity of
  // its barriers' phase with ds_exchange).
  static constexpr int pds_buffer(int step) { return kPdsBuffers == 2 ? step & 1 : 0; }
  static constexpr int pds_buffer_use(int step) { return step / kPdsBuffers; }

  static constexpr int kConsumers = Plan::kConsumers;
  static constexpr int kMmaThreads = 128 * kConsumers;
  static constexpr int kNThreads = 128 + kMmaThreads;
  static constexpr int kDqThreads = kMmaThreads;
  static constexpr int kKeysPerConsumer = kBlockN / kConsumers;  // S_c and dP_c columns
  static constexpr int kDimsPerConsumer = kHeadDim / kConsumers;  // dK^T_c, dV^T_c rows; dQ_c columns
  static constexpr int kDqPieceDims = 64;                         // dQ columns per GEMM (32 registers)
  static constexpr int kDqPieces = kDimsPerConsumer / kDqPieceDims;
  static_assert(kBlockM == 64, "one wgmma M of queries per step");
  static_assert(kBlockN % kConsumers == 0 && kKeysPerConsumer % 8 == 0 && kBlockN % 16 == 0,
                "wgmma N of S_c; whole k steps of the dQ GEMM");
  static_assert(kHeadDim % (kConsumers * kDqPieceDims) == 0, "whole 64-column swizzle atoms per consumer");
  static_assert(kPdsBuffers == 1 || kPdsBuffers == 2);
  static_assert(!kDsExchange || kDqPieces == 2, "with ds_exchange each consumer adds one dQ piece of its CTA's half");
  static constexpr int kProducerRegisters = Plan::kProducerRegisters;
  static constexpr int kConsumerRegisters = Plan::kConsumerRegisters;
  static_assert(check_register_split<kConsumers, kProducerRegisters, kConsumerRegisters>());

  // S_c = Q K_c^T, dP_c = dO V_c^T: 64 x block_n/kConsumers, both operands K-major.
  using TiledMmaSdP = decltype(make_tiled_mma(GMMA::ss_op_selector<Element, Element, float,
                                                                   Shape<_64, Int<kKeysPerConsumer>, _16>,
                                                                   GMMA::Major::K, GMMA::Major::K>()));
  // dV^T_c += dO^T_c P, dK^T_c += Q^T_c dS: (head-dim slice) x block_n over k = 64 queries. A is
  // dO (Q) read transposed (MN-major); B is P (dS) stored (query, key), keys contiguous (MN-major).
  using TiledMmadKV = decltype(make_tiled_mma(GMMA::ss_op_selector<Element, Element, float,
                                                                   Shape<_64, Int<kBlockN>, _16>,
                                                                   GMMA::Major::MN, GMMA::Major::MN>()));
  // One dQ piece of one consumer: 64 queries x 64 head-dim columns over k = block_n keys. A is
  // dS (K-major), B is K read transposed (MN-major).
  using TiledMmadQPiece = decltype(make_tiled_mma(GMMA::ss_op_selector<Element, Element, float,
                                                                       Shape<_64, Int<kDqPieceDims>, _16>,
                                                                       GMMA::Major::K, GMMA::Major::MN>()));
  // The postprocess's view of the same fragments over all consumer threads: the consumers side
  // by side along the columns, the pieces as the repeats. Thread 128 c + t's fragment element
  // (piece p, i) is (row, column 64 (kConsumers p + c) + col) where piece-MMA element i of
  // thread t is (row, col) (tests/cpu/host_checks.cu checks it).
  using TiledMmadQ = decltype(make_tiled_mma(GMMA::ss_op_selector<Element, Element, float,
                                                                  Shape<_64, Int<kDqPieceDims>, _16>,
                                                                  GMMA::Major::K, GMMA::Major::MN>(),
                                             Layout<Shape<_1, Int<kConsumers>, _1>>{}));
  static constexpr int dq_piece_dim0(int consumer, int piece) {
    return piece * kConsumers * kDqPieceDims + consumer * kDqPieceDims;
  }

  // Q, dO, K, V: K-major (head dim contiguous) in the 128-byte wgmma swizzle.
  using SmemAtom = GMMA::Layout_K_SW128_Atom<Element>;
  template <int kRows>
  using Tile = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kRows>, Int<kHeadDim>>{}));
  template <int kRows, int kBuffers>
  using Tiles = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kRows>, Int<kHeadDim>, Int<kBuffers>>{}));
  // (head_dim, rows, buffer) view of Tiles<kRows, kBuffers>.
  template <int kRows, int kBuffers>
  using TilesTransposed = decltype(composition(
      Tiles<kRows, kBuffers>{},
      make_ordered_layout(Shape<Int<kHeadDim>, Int<kRows>, Int<kBuffers>>{}, Step<_2, _1, _3>{})));

  using SmemLayoutQ = Tile<kBlockM>;  // one Q or dO buffer; the postprocess's staging tile
  using SmemLayoutQStages = Tiles<kBlockM, kStages>;
  using SmemLayoutQtStages = TilesTransposed<kBlockM, kStages>;
  using SmemLayoutDo = Tiles<kBlockM, 1>;
  using SmemLayoutDot = TilesTransposed<kBlockM, 1>;
  using SmemLayoutK = Tile<kBlockN>;  // K or V of the block (a consumer's S_c reads its rows' half)
  using SmemLayoutKt = decltype(composition(SmemLayoutK{}, make_layout(Shape<Int<kHeadDim>, Int<kBlockN>>{}, GenRowMajor{})));
  // P and dS, (query, key, buffer), keys contiguous in 8 x 8 core matrices without swizzle
  // (block_n / kConsumers columns per consumer need not be whole swizzle atoms); with two
  // buffers a consumer may write step i + 1's while another still reads step i's, with one it waits.
  using SmemLayoutPdS = decltype(tile_to_shape(GMMA::Layout_K_INTER_Atom<Element>{},
                                               Shape<Int<kBlockM>, Int<kBlockN>, Int<kPdsBuffers>>{}));
  using SmemLayoutPdSTransposed = decltype(composition(  // (key, query, buffer): the dK^T/dV^T GEMMs' B
      SmemLayoutPdS{}, make_ordered_layout(Shape<Int<kBlockN>, Int<kBlockM>, Int<kPdsBuffers>>{}, Step<_2, _1, _3>{})));

  // ds_exchange: the partner's K columns of this CTA's dQ half (its K tile's columns
  // [kHeadDim / 2 * rank, + kHeadDim / 2): whole swizzle atoms, contiguous there, laid out as
  // here), and its dS tiles as they arrive.
  // (Without ds_exchange a stand-in of one atom's columns: 192's half is no whole number of atoms.)
  static constexpr int kPeerCols = kDsExchange ? kHeadDim / 2 : kDqPieceDims;
  using SmemLayoutKPeer = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockN>, Int<kPeerCols>>{}));
  using SmemLayoutKPeerT = decltype(composition(SmemLayoutKPeer{}, make_layout(Shape<Int<kPeerCols>, Int<kBlockN>>{}, GenRowMajor{})));
  static constexpr int kKPeerElems = kBlockN * kHeadDim / 2;
  static constexpr int kPdsElems = kBlockM * kBlockN;  // one P or dS buffer

  using PipelineQ = cutlass::PipelineTmaAsync<kStages>;  // Q + lse_log2
  using PipelineDo = cutlass::PipelineTmaAsync<1>;       // dO + D
  struct SharedStorageOneCta {
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutQStages>> q;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutDo>> dout;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutK>> k;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutK>> v;
    alignas(128) cute::array_aligned<Element, kPdsBuffers * kPdsElems> p;
    alignas(128) cute::array_aligned<Element, kPdsBuffers * kPdsElems> ds;
    alignas(16) cute::array_aligned<float, kStages * kBlockM> lse_log2;
    alignas(16) cute::array_aligned<float, kBlockM> d;
    typename PipelineQ::SharedStorage pipeline_q;
    typename PipelineDo::SharedStorage pipeline_do;
    cutlass::arch::ClusterTransactionBarrier kv_full;  // K and V landed
  };
  // ds_exchange: the row statistics and barriers first, so that the tiles (each a whole number of
  // KB) follow without padding: 64 x 80 with one P/dS buffer fills the 227 KB exactly.
  struct SharedStoragePair {
    alignas(16) cute::array_aligned<float, kStages * kBlockM> lse_log2;
    alignas(16) cute::array_aligned<float, kBlockM> d;
    typename PipelineQ::SharedStorage pipeline_q;
    typename PipelineDo::SharedStorage pipeline_do;
    cutlass::arch::ClusterTransactionBarrier kv_full;
    cutlass::arch::ClusterTransactionBarrier k_peer_full;            // the partner's K columns landed
    cutlass::arch::ClusterTransactionBarrier ds_peer_full[kPdsBuffers];  // the partner's dS of a step landed
    cutlass::arch::ClusterBarrier ds_sent_free[kPdsBuffers];  // the partner is done with the dS this CTA sent
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutQStages>> q;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutDo>> dout;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutK>> k;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutK>> v;
    alignas(1024) cute::array_aligned<Element, kKPeerElems> k_peer;
    alignas(128) cute::array_aligned<Element, kPdsBuffers * kPdsElems> p;
    alignas(128) cute::array_aligned<Element, kPdsBuffers * kPdsElems> ds;
    alignas(128) cute::array_aligned<Element, kPdsBuffers * kPdsElems> ds_peer;
  };
  using SharedStorage = std::conditional_t<kDsExchange, SharedStoragePair, SharedStorageOneCta>;
  static constexpr int kSmemBytes = int(sizeof(SharedStorage));
  static_assert(kSmemBytes == Plan::kSmemBytes, "gen/families.py's shared-memory count disagrees with this kernel's");

  using Tma = TmaTensors<Element, kHeadDim>;
  using TmaLoadQ = typename Tma::template Load<SmemLayoutQ>;
  using TmaLoadK = typename Tma::template Load<SmemLayoutK>;
  using TmaStoreK = typename Tma::template Store<SmemLayoutK>;
  static constexpr uint32_t kRowStatsBytes = kBlockM * sizeof(float);
  static constexpr uint32_t kQStageBytes = kBlockM * kHeadDim * sizeof(Element) + kRowStatsBytes;
  static constexpr uint32_t kKVBytes = 2 * kBlockN * kHeadDim * sizeof(Element);
  static constexpr uint32_t kKPeerBytes = kKPeerElems * sizeof(Element);
  static constexpr uint32_t kPdsBytes = kPdsElems * sizeof(Element);
  static_assert(cosize_v<SmemLayoutPdS> == kPdsBuffers * kPdsElems, "buffer b of P and dS at b * kPdsElems");
  static_assert(!kDsExchange || (SmemLayoutK{}(0, kHeadDim / 2) == kKPeerElems && cosize_v<SmemLayoutKPeer> == kKPeerElems),
                "K's column halves are contiguous, each laid out as SmemLayoutKPeer");

  // The postprocess's copies (store_fragment_via_smem): the dQ GEMM's threads, in passes of
  // whole rows where 64-column ones would not divide block_m (three consumers: 48 rows a pass).
  static constexpr int kGmemRowCols = kBlockM % (kDqThreads / 8) == 0 ? 0 : kHeadDim;
  using Gmem = GmemCopies<Element, kHeadDim, kDqThreads, kGmemRowCols>;
  static_assert(kBlockM % Gmem::kRowsPerPass == 0, "the postprocess's dQ store covers block_m in whole passes");
  static constexpr int kQTileBytes = int(cosize(SmemLayoutQ{}) * sizeof(Element));
};

template <class Cfg, bool kCausal>
__global__ void __launch_bounds__(Cfg::kNThreads, 1)
    bwd_ws_split_kernel(const __grid_constant__ BwdWsKernelArgs<Cfg> args) {
  using Element = typename Cfg::Element;
  using PipelineQ = typename Cfg::PipelineQ;
  using PipelineDo = typename Cfg::PipelineDo;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  constexpr int kKeysPerConsumer = Cfg::kKeysPerConsumer, kDimsPerConsumer = Cfg::kDimsPerConsumer;
  extern __shared__ __align__(1024) char smem_raw[];
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_raw);
  const BwdParams& params = args.params;

  const BackwardCta cta(blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y, gridDim.z,
                        int64_t(params.seqlen_q) * kHeadDim * sizeof(float), /*heavy_first_groups=*/false);
  const int n_block = params.n_block_offset + cta.n_block_local, head = cta.head, batch = cta.batch;
  // ds_exchange: this CTA is rank r of the pair over key blocks (n_block - r, n_block - r + 1).
  const int rank = Cfg::kDsExchange ? int(cute::block_rank_in_cluster()) : 0, peer = rank ^ 1;
  const SequenceLengthsFor<Cfg> seqlens(params, batch);
  if constexpr (Cfg::kVarlen) {
    // The grid covers the longest sequence's keys; not this one's (a pair leaves together).
    if ((n_block - rank) * kBlockN >= seqlens.seqlen_k) return;
  }
  const AttentionMask mask = make_mask<Cfg::kWindow>(seqlens, kCausal, params);
  const QueryBlockOrder order(mask, kBlockM, kBlockN, n_block - rank, Cfg::kClusterKeyBlocks);
  const int64_t stats_offset = seqlens.template padded_rows_offset<kBlockM>(params, head);
  float* const dq_tiles = params.dq_accum + cta.n_block_local / Cfg::kClusterKeyBlocks * params.dq_split_stride +
                          seqlens.template dq_tiles_offset<kBlockM, Cfg::kDqTileElems>(params, head, order.m_blocks);
  const int warpgroup = warpgroup_index();
  if constexpr (kBwdProgrammaticLaunch) allow_dependent_launch();  // the dQ postprocess waits for our sums itself

  if (threadIdx.x == 0) {
    args.prefetch_descriptors();
    smem.kv_full.init(1);
    if constexpr (Cfg::kDsExchange) {
      smem.k_peer_full.init(1);
      CUTE_UNROLL
      for (int b = 0; b < Cfg::kPdsBuffers; ++b) {
        smem.ds_peer_full[b].init(1);                         // the partner's sending thread
        smem.ds_sent_free[b].init(Cfg::kMmaThreads / 32);  // the partner's consumer warps
      }
    }
  }
  PipelineQ pipeline_q(smem.pipeline_q, query_pipeline_params<PipelineQ>(Cfg::kQStageBytes, Cfg::kMmaThreads),
                       Shape<_1, _1, _1>{});
  PipelineDo pipeline_do(smem.pipeline_do, query_pipeline_params<PipelineDo>(Cfg::kQStageBytes, Cfg::kMmaThreads),
                         Shape<_1, _1, _1>{});
  if constexpr (Cfg::kDsExchange) {  // barriers initialized, in both CTAs before either signals the other
    cutlass::arch::fence_barrier_init();
    cute::cluster_arrive_relaxed();
    cute::cluster_wait();
  } else {
    __syncthreads();  // barriers initialized
  }

  auto smem_tensor = [](Element* ptr, auto layout) { return make_tensor(make_smem_ptr(ptr), layout); };
  Tensor sK = smem_tensor(smem.k.data(), typename Cfg::SmemLayoutK{});
  Tensor sV = smem_tensor(smem.v.data(), typename Cfg::SmemLayoutK{});

  if (warpgroup == 0) {
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    if (threadIdx.x == 0 && order.steps > 0) {
      const int head_kv = kv_head_of(params, head);
      smem.kv_full.arrive_and_expect_tx(Cfg::kKVBytes);
      auto load_keys = [&](auto const& tma, auto& tile) {
        Tensor g = Cfg::Tma::template key_tiles<kBlockN>(tma, params, seqlens, head_kv);
        auto [tg, ts] = tma_partition(tma, group_modes<0, 2>(tile), group_modes<0, 2>(g));
        copy(tma.with(reinterpret_cast<uint64_t&>(smem.kv_full)), tg(_, n_block), ts);
      };
      load_keys(args.tma_k, sK);
      load_keys(args.tma_v, sV);
      // K and V are the caller's; lse_log2 and D below are the preprocess's.
      if constexpr (kBwdProgrammaticLaunch) wait_for_previous_grid();
      auto query_parts = [&](auto const& tma, Element* buffers, auto layout) {
        Tensor g = Cfg::Tma::template query_tiles<kBlockM>(tma, params, seqlens, head);
        return tma_partition(tma, group_modes<0, 2>(smem_tensor(buffers, layout)), group_modes<0, 2>(g));
      };
      const auto q_parts = query_parts(args.tma_q, smem.q.data(), typename Cfg::SmemLayoutQStages{});
      const auto do_parts = query_parts(args.tma_do, smem.dout.data(), typename Cfg::SmemLayoutDo{});
      auto q_state = cutlass::make_producer_start_state<PipelineQ>();
      auto do_state = cutlass::make_producer_start_state<PipelineDo>();
      auto load = [&](auto& pipeline, auto& state, auto const& tma, auto const& parts, int m_block, const float* stats,
                      float* stats_smem) {
        pipeline.producer_acquire(state);
        uint64_t* barrier = pipeline.producer_get_barrier(state);
        copy(tma.with(*barrier), get<0>(parts)(_, m_block), get<1>(parts)(_, state.index()));
        SM90_BULK_COPY_G2S::copy(stats + stats_offset + int64_t(m_block) * kBlockM, barrier,
                                 stats_smem + state.index() * kBlockM, Cfg::kRowStatsBytes);
        ++state;
      };
      for (int it = 0; it < order.steps; ++it) {
        const int m_block = order.at(it);
        load(pipeline_q, q_state, args.tma_q, q_parts, m_block, params.lse_log2, smem.lse_log2.data());
        load(pipeline_do, do_state, args.tma_do, do_parts, m_block, params.softmax_d, smem.d.data());
      }
    }
    if constexpr (Cfg::kDsExchange) {
      if (threadIdx.x == 32 && order.steps > 0) {
        // Warp 1: once K has landed, its columns of the partner's dQ half to the partner (and
        // the partner's of this CTA's half, likewise, into k_peer).
        smem.k_peer_full.arrive_and_expect_tx(Cfg::kKPeerBytes);
        smem.kv_full.wait(0);
        copy_to_peer(smem.k_peer.data(), smem.k.data() + peer * Cfg::kKPeerElems, Cfg::kKPeerBytes, &smem.k_peer_full,
                     peer);
      }
      __syncwarp();  // the cluster barrier's .aligned instructions want whole warps
      leave_cluster();
    }
    return;
  }

  cutlass::arch::warpgroup_reg_alloc<Cfg::kConsumerRegisters>();
  if constexpr (kBwdProgrammaticLaunch) wait_for_previous_grid();  // the accumulator the preprocess zeroed
  const int consumer = warpgroup - 1;
#ifdef FLASHGEN_BWD_P_BEFORE_DP_WAIT
  // (Experiment, session 17: P_c stored between the exps and the dP wait. Without it ptxas sinks
  // every exp below that wait (SASS at 256), so P does not run under dP's GEMM. With softcap P
  // needs dP first, so the order stays.)
  constexpr bool kStorePBeforeDpWait = !Cfg::kSoftcap;
#else
  constexpr bool kStorePBeforeDpWait = false;
#endif
  const int tidx = threadIdx.x - 128;     // within the consumers: the postprocess's thread index
  const int wg_tidx = threadIdx.x % 128;  // within this consumer
  const int key0 = n_block * kBlockN + consumer * kKeysPerConsumer;  // this consumer's S_c columns

  typename Cfg::TiledMmaSdP mma_sdp;
  typename Cfg::TiledMmadKV mma_dkv;
  typename Cfg::TiledMmadQPiece mma_dq;
  auto thr_sdp = mma_sdp.get_thread_slice(wg_tidx);
  auto thr_dkv = mma_dkv.get_thread_slice(wg_tidx);
  auto thr_dq = mma_dq.get_thread_slice(wg_tidx);

  // Operands as shared-memory descriptors; a staged one's last mode is the buffer.
  Tensor sQ = smem_tensor(smem.q.data(), typename Cfg::SmemLayoutQStages{});
  Tensor sdO = smem_tensor(smem.dout.data(), typename Cfg::SmemLayoutDo{});
  Tensor tSrQ = thr_sdp.make_fragment_A(thr_sdp.partition_A(sQ));
  Tensor tdPrdO = thr_sdp.make_fragment_A(thr_sdp.partition_A(sdO));
  auto key_slice = [&](auto& tile) {
    return local_tile(tile, Shape<Int<kKeysPerConsumer>, Int<kHeadDim>>{}, make_coord(consumer, _0{}));
  };
  Tensor tSrK = thr_sdp.make_fragment_B(thr_sdp.partition_B(key_slice(sK)));
  Tensor tdPrV = thr_sdp.make_fragment_B(thr_sdp.partition_B(key_slice(sV)));
  // This consumer's head-dim rows of Q^T and dO^T: (dims, queries, buffer).
  auto dim_slice = [&](Element* ptr, auto layout) {
    return local_tile(smem_tensor(ptr, layout), Shape<Int<kDimsPerConsumer>, Int<kBlockM>>{},
                      make_coord(consumer, _0{}, _));
  };
  Tensor tdKrQt = thr_dkv.make_fragment_A(thr_dkv.partition_A(dim_slice(smem.q.data(), typename Cfg::SmemLayoutQtStages{})));
  Tensor tdVrdOt = thr_dkv.make_fragment_A(thr_dkv.partition_A(dim_slice(smem.dout.data(), typename Cfg::SmemLayoutDot{})));
  Tensor tdVrP = thr_dkv.make_fragment_B(
      thr_dkv.partition_B(smem_tensor(smem.p.data(), typename Cfg::SmemLayoutPdSTransposed{})));
  Tensor tdKrdS = thr_dkv.make_fragment_B(
      thr_dkv.partition_B(smem_tensor(smem.ds.data(), typename Cfg::SmemLayoutPdSTransposed{})));
  Tensor tdQrdS = thr_dq.make_fragment_A(thr_dq.partition_A(smem_tensor(smem.ds.data(), typename Cfg::SmemLayoutPdS{})));
  Tensor sKt = smem_tensor(smem.k.data(), typename Cfg::SmemLayoutKt{});
  auto dq_piece_kt = [&](int piece) {  // K^T's rows (head-dim columns of dQ) of piece `piece`
    return thr_dq.make_fragment_B(thr_dq.partition_B(local_tile(
        sKt, Shape<Int<Cfg::kDqPieceDims>, Int<kBlockN>>{},
        make_coord(Cfg::dq_piece_dim0(consumer, piece) / Cfg::kDqPieceDims, _0{}))));
  };

  // Each S_c element's (query, key) inside this consumer's 64 x block_n/kConsumers tile.
  Tensor tScS = thr_sdp.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kKeysPerConsumer>>{}));
  Tensor coords = make_tensor(tScS.data(), accumulator_as_rows_cols(tScS.layout()));
  // P_c and dS_c out to this consumer's columns of a P or dS buffer by stmatrix.
  auto smem_copy_pds = make_tiled_copy_C(Copy_Atom<SM90_U32x2_STSM_N, Element>{}, mma_sdp);
  auto thr_copy_pds = smem_copy_pds.get_thread_slice(wg_tidx);
  auto pds_slice = [&](Element* tile, int buffer) {
    Tensor t = smem_tensor(tile, typename Cfg::SmemLayoutPdS{});
    return local_tile(t(_, _, buffer), Shape<Int<kBlockM>, Int<kKeysPerConsumer>>{}, make_coord(_0{}, consumer));
  };

  Tensor acc_dkt = partition_fragment_C(mma_dkv, Shape<Int<kDimsPerConsumer>, Int<kBlockN>>{});
  Tensor acc_dvt = partition_fragment_C(mma_dkv, Shape<Int<kDimsPerConsumer>, Int<kBlockN>>{});
  clear(acc_dkt);
  clear(acc_dvt);
  using AccS = decltype(partition_fragment_C(mma_sdp, Shape<Int<kBlockM>, Int<kKeysPerConsumer>>{}));
  using AccDq = decltype(partition_fragment_C(mma_dq, Shape<Int<kBlockM>, Int<Cfg::kDqPieceDims>>{}));
  constexpr int kPieceElems = decltype(size(AccDq{}))::value;

  // skip_unseen_keys: the query blocks that see this CTA's keys, and the partner's.
  const QueryBlockOrder own_keys(mask, kBlockM, kBlockN, n_block);
  const QueryBlockOrder peer_keys(mask, kBlockM, kBlockN, n_block - rank + peer);

  if (order.steps > 0) smem.kv_full.wait(0);
  cutlass::PipelineState<Cfg::kStages> read_q;
  cutlass::PipelineState<1> read_do;
  for (int it = 0; it < order.steps; ++it) {
    const int m_block = order.at(it);
    const int row0 = m_block * kBlockM;
    const int stage = read_q.index();
    // This step's dQ tile in the accumulator (the step's own variables below keep the places
    // they had before skip_unseen_keys, so that the kernel without it compiles as before).
    auto dq_tile_of_step = [&] { return dq_tiles + m_block * Cfg::kDqTileElems; };
    auto add_dq_piece_to = [&](float* dq_tile, AccDq const& acc_dq, int piece) {
      CUTE_UNROLL
      for (int i = 0; i < kPieceElems; i += 4) {
        atomicAdd(reinterpret_cast<float4*>(dq_tile + Cfg::dq_offset(piece * kPieceElems + i, tidx)),
                  make_float4(acc_dq(i), acc_dq(i + 1), acc_dq(i + 2), acc_dq(i + 3)));
      }
    };
    // Once the caller's wait has drained dV^T, dO's last reader: its single buffer back to the producer.
    auto release_do = [&] {
      warpgroup_fence_operand(acc_dvt);
      release_stage<Cfg::kDsExchange>(pipeline_do, smem.pipeline_do, read_do);
      ++read_do;
    };
    // ds_exchange: the partner's dS of this step (landed once ds_peer_full says so) and its K
    // columns of this CTA's dQ half, as this consumer's dQ GEMM operands. Generic in the storage
    // (called as (smem, ...)), so that kernels without ds_exchange, whose storage has no ds_peer
    // or k_peer, never instantiate them.
    auto tdQrdSpeer = [&](auto& storage, int buffer) {
      return thr_dq.make_fragment_A(
          thr_dq.partition_A(smem_tensor(storage.ds_peer.data(), typename Cfg::SmemLayoutPdS{})))(_, _, _, buffer);
    };
    auto tdQrKpeer = [&](auto& storage) {
      return thr_dq.make_fragment_B(thr_dq.partition_B(
          local_tile(smem_tensor(storage.k_peer.data(), typename Cfg::SmemLayoutKPeerT{}),
                     Shape<Int<Cfg::kDqPieceDims>, Int<kBlockN>>{}, make_coord(consumer, _0{}))));
    };

    if constexpr (Cfg::kSkipUnseenKeys) {
      if (!own_keys.visits(m_block)) {
        const int buffer = Cfg::pds_buffer(it), buffer_use = Cfg::pds_buffer_use(it);
        // P = dS = 0 for this CTA's keys: no S, dP, dV^T, dK^T or own dQ GEMM, and no write of
        // this CTA's P / dS buffers (with two, the next step's writes to the other buffer
        // follow every consumer's reads of it two steps back because its Q and dO waits need
        // every consumer's releases of this step: a deeper Q or dO ring would need a barrier
        // here). Q and dO go back unread; the exchange keeps its one arrival a step each way
        // (the barriers' phases count steps), without data from here; this CTA's dQ half over
        // the partner's keys (the pair's union holds only blocks one of them sees; the test is
        // for safety).
        pipeline_q.consumer_wait(read_q);
        pipeline_do.consumer_wait(read_do);
        release_do();
        release_stage<Cfg::kDsExchange>(pipeline_q, smem.pipeline_q, read_q);
        ++read_q;
        // Only the sending thread waits for the partner to be done with the previous dS: the
        // others write nothing here, and with no barrier between their wait and the send a slow
        // warp could find the next phase done as well, whose parity matches (a hang; the normal
        // path's threads all wait before kDsReadyBarrier, then one sends).
        if (tidx == 0) {
          if (buffer_use > 0) smem.ds_sent_free[buffer].wait((buffer_use - 1) & 1);
          smem.ds_peer_full[buffer].arrive(peer);
        }
        if (it == 0) smem.k_peer_full.wait(0);
        smem.ds_peer_full[buffer].wait(buffer_use & 1);
        const bool peer_seen = peer_keys.visits(m_block);
        AccDq acc_dq;
        if (peer_seen) {
          Tensor ds_peer = tdQrdSpeer(smem, buffer);
          Tensor k_peer = tdQrKpeer(smem);
          issue_gemm_batch(mma_dq, ds_peer, k_peer, acc_dq, /*zero_init=*/true);
          warpgroup_wait<0>();
          warpgroup_fence_operand(acc_dq);
        }
        if (threadIdx.x % 32 == 0) smem.ds_sent_free[buffer].arrive(peer);
        if (peer_seen) add_dq_piece_to(dq_tile_of_step(), acc_dq, rank);
        continue;
      }
    }

    AccS acc_s, acc_dp;
    // P_c to its slice of a P buffer. With one P / dS buffer pair, first the barrier that says
    // every consumer has finished the step before (whose dK^T and dQ GEMMs read dS; P's reader,
    // dV^T, was done before dO's release).
    auto store_p = [&](int buffer) {
      if constexpr (Cfg::kPdsBuffers == 1) {
        if (it > 0) named_barrier_sync(kPdsFreeBarrier, Cfg::kMmaThreads);
      }
      cute::copy(smem_copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc_s)),
                 thr_copy_pds.partition_D(pds_slice(smem.p.data(), buffer)));
    };
    Tensor tSrQ_stage = tSrQ(_, _, _, stage);
    Tensor tdPrdO_one = tdPrdO(_, _, _, 0);
    pipeline_q.consumer_wait(read_q);
    issue_gemm_batch(mma_sdp, tSrQ_stage, tSrK, acc_s, /*zero_init=*/true);
    pipeline_do.consumer_wait(read_do);
    issue_gemm_batch(mma_sdp, tdPrdO_one, tdPrV, acc_dp, /*zero_init=*/true);
    warpgroup_wait<1>();
    warpgroup_fence_operand(acc_s);
    // P = exp2(S * scale * log2(e) - lse_log2[query]) (padding queries have lse_log2 = +inf),
    // dS = P * (dP - D[query]); with softcap S first becomes t = tanh(S * softcap_scale) and dS
    // takes the factor 1 - t^2.
    Tensor scores = make_tensor(acc_s.data(), accumulator_as_rows_cols(acc_s.layout()));
    Tensor dp = make_tensor(acc_dp.data(), accumulator_as_rows_cols(acc_dp.layout()));
    softcap_scores<Cfg::kSoftcap>(acc_s, params.softcap_scale);
    if (mask.tile_needs_mask(row0, kBlockM, key0, kKeysPerConsumer)) mask.apply(scores, coords, row0, key0);
    const float* lse_log2 = smem.lse_log2.data() + stage * kBlockM;
    if constexpr (!Cfg::kSoftcap) {
      CUTE_UNROLL
      for (int mi = 0; mi < size<0>(scores); ++mi) {
        const float row_lse = lse_log2[get<0>(coords(mi, 0))];
        CUTE_UNROLL
        for (int ni = 0; ni < size<1>(scores); ++ni) {
          scores(mi, ni) = exp2f(scores(mi, ni) * params.softmax_scale_log2 - row_lse);
        }
      }
      if constexpr (kStorePBeforeDpWait) store_p(Cfg::pds_buffer(it));
      warpgroup_wait<0>();
      warpgroup_fence_operand(acc_dp);
      CUTE_UNROLL
      for (int mi = 0; mi < size<0>(dp); ++mi) {
        const float row_d = smem.d[get<0>(coords(mi, 0))];
        CUTE_UNROLL
        for (int ni = 0; ni < size<1>(dp); ++ni) dp(mi, ni) = scores(mi, ni) * (dp(mi, ni) - row_d);
      }
    } else {
      warpgroup_wait<0>();
      warpgroup_fence_operand(acc_dp);
      const bool capped = params.softcap_scale != 0.f;
      CUTE_UNROLL
      for (int mi = 0; mi < size<0>(scores); ++mi) {
        const float row_lse = lse_log2[get<0>(coords(mi, 0))];
        const float row_d = smem.d[get<0>(coords(mi, 0))];
        CUTE_UNROLL
        for (int ni = 0; ni < size<1>(scores); ++ni) {
          const float t = scores(mi, ni);
          const float p = exp2f(t * params.softmax_scale_log2 - row_lse);
          const float ds = p * (dp(mi, ni) - row_d);
          dp(mi, ni) = capped ? ds * softcap_derivative(t) : ds;
          scores(mi, ni) = p;
        }
      }
    }

    // P_c and dS_c (input dtype) into buffer it % kPdsBuffers for every consumer's dK^T, dV^T and
    // dQ GEMMs (and with ds_exchange the partner's), once that buffer's last readers are done.
    const int buffer = Cfg::pds_buffer(it), buffer_use = Cfg::pds_buffer_use(it);
    if constexpr (Cfg::kDsExchange) {
      if (buffer_use > 0) smem.ds_sent_free[buffer].wait((buffer_use - 1) & 1);
    }
    if constexpr (!kStorePBeforeDpWait) store_p(buffer);
    cute::copy(smem_copy_pds, thr_copy_pds.retile_S(convert_fragment<Element>(acc_dp)),
               thr_copy_pds.partition_D(pds_slice(smem.ds.data(), buffer)));
    cutlass::arch::fence_view_async_shared();  // st.matrix writes, read next by wgmma (and the bulk copy)
    named_barrier_sync(kDsReadyBarrier, Cfg::kMmaThreads);  // every consumer's slices are in place
    if constexpr (Cfg::kDsExchange) {
      if (tidx == 0) {  // the whole dS tile to the partner's ds_peer buffer
        smem.ds_peer_full[buffer].arrive_and_expect_tx(Cfg::kPdsBytes, peer);
        copy_to_peer(smem.ds_peer.data() + buffer * Cfg::kPdsElems, smem.ds.data() + buffer * Cfg::kPdsElems,
                     Cfg::kPdsBytes, &smem.ds_peer_full[buffer], peer);
      }
    }

    Tensor tdVrdOt_one = tdVrdOt(_, _, _, 0);
    Tensor tdKrQt_stage = tdKrQt(_, _, _, stage);
    Tensor tdQrdS_buffer = tdQrdS(_, _, _, buffer);
    float* const dq_tile = dq_tile_of_step();
    AccDq acc_dq;
    auto add_dq_piece = [&](int piece) { add_dq_piece_to(dq_tile, acc_dq, piece); };
    if constexpr (Cfg::kDsExchange) {
      // dV^T, then this consumer's one dQ piece (head-dim columns 128 rank + 64 consumer) over
      // this CTA's keys and, once the partner's dS is here, over the partner's, then dK^T.
      issue_gemm_batch(mma_dkv, tdVrdOt_one, tdVrP(_, _, _, buffer), acc_dvt, /*zero_init=*/false);
      issue_gemm_batch(mma_dq, tdQrdS_buffer, dq_piece_kt(rank), acc_dq, /*zero_init=*/true);
#ifdef FLASHGEN_BWD_EARLY_DO_RELEASE
      // (Experiment, session 15: dO's single buffer freed as soon as dV^T, its last reader, is
      // done, before the wait for the partner's dS, so the producer's next dO load starts ~900
      // cycles sooner; ncu at 256 showed the next step waiting ~680 cycles for dO.)
      warpgroup_wait<1>();  // dV^T done
      release_do();
#endif
      if (it == 0) smem.k_peer_full.wait(0);
      smem.ds_peer_full[buffer].wait(buffer_use & 1);
      if (!Cfg::kSkipUnseenKeys || peer_keys.visits(m_block)) {
        Tensor ds_peer = tdQrdSpeer(smem, buffer);
        Tensor k_peer = tdQrKpeer(smem);
        issue_gemm_batch(mma_dq, ds_peer, k_peer, acc_dq, /*zero_init=*/false);
      } else {
        warpgroup_commit_batch();  // the partner sent no dS: an empty batch keeps the waits' counts
      }
      issue_gemm_batch(mma_dkv, tdKrQt_stage, tdKrdS(_, _, _, buffer), acc_dkt, /*zero_init=*/false);
#ifndef FLASHGEN_BWD_EARLY_DO_RELEASE
      warpgroup_wait<3>();  // dV^T done
      release_do();
#endif
      warpgroup_wait<1>();  // the dQ piece done: the partner's dS buffer is free
      warpgroup_fence_operand(acc_dq);
      if (threadIdx.x % 32 == 0) smem.ds_sent_free[buffer].arrive(peer);
      add_dq_piece(rank);
    } else {
      // dV^T first (it frees dO, whose single buffer the next step waits on), then dQ's first
      // piece, then dK^T; each later dQ piece goes out once the one before is added.
      issue_gemm_batch(mma_dkv, tdVrdOt_one, tdVrP(_, _, _, buffer), acc_dvt, /*zero_init=*/false);
      issue_gemm_batch(mma_dq, tdQrdS_buffer, dq_piece_kt(0), acc_dq, /*zero_init=*/true);
      issue_gemm_batch(mma_dkv, tdKrQt_stage, tdKrdS(_, _, _, buffer), acc_dkt, /*zero_init=*/false);
      warpgroup_wait<2>();  // dV^T done
      release_do();
      warpgroup_wait<1>();  // dQ piece 0 done
      warpgroup_fence_operand(acc_dq);
      add_dq_piece(0);
      CUTE_UNROLL
      for (int piece = 1; piece < Cfg::kDqPieces; ++piece) {
        issue_gemm_batch(mma_dq, tdQrdS_buffer, dq_piece_kt(piece), acc_dq, /*zero_init=*/true);
        warpgroup_wait<0>();
        warpgroup_fence_operand(acc_dq);
        add_dq_piece(piece);
      }
    }
    // dK^T done: this stage's Q is free (with two or more pieces the last piece's wait already
    // drained it; with one piece, at head dims 128 and 192, this is the wait that does).
    warpgroup_wait<0>();
    warpgroup_fence_operand(acc_dkt);
    release_stage<Cfg::kDsExchange>(pipeline_q, smem.pipeline_q, read_q);
    ++read_q;
  }

  // Epilogue: dK = softmax_scale * (dS^T Q sums), dV as is (a lambda, so that every path out of
  // it reaches leave_cluster below).
  auto store_dk_dv = [&]() {
    CUTE_UNROLL
    for (int i = 0; i < size(acc_dkt); ++i) acc_dkt(i) *= params.softmax_scale;
    // Each accumulator element's (head-dim row, key) in this consumer's slice.
    Tensor tdKVcdKV = thr_dkv.partition_C(make_identity_tensor(Shape<Int<kDimsPerConsumer>, Int<kBlockN>>{}));
    const int dim0 = consumer * kDimsPerConsumer;
    if (params.dk_accum != nullptr) {
      // GQA: fp32 per query head; the caller sums the heads.
      const int64_t row_stride = int64_t(params.nheads) * kHeadDim;
      const int64_t base = seqlens.dkv_accum_rows_before() * row_stride + head * kHeadDim;
      const int keys_left = seqlens.seqlen_k - n_block * kBlockN;
      CUTE_UNROLL
      for (int i = 0; i < size(acc_dkt); ++i) {
        const int dim = dim0 + get<0>(tdKVcdKV(i)), key = get<1>(tdKVcdKV(i));
        if (key < keys_left) {
          const int64_t offset = base + int64_t(n_block * kBlockN + key) * row_stride + dim;
          params.dk_accum[offset] = acc_dkt(i);
          params.dv_accum[offset] = acc_dvt(i);
        }
      }
      return;
    }
    // Into K's and V's tiles (transposed back to (key, head dim)) once every consumer's GEMMs are
    // done reading them; one thread TMA-stores each (rows past seqlen_k clipped), or with varlen
    // consumer 0's threads store dK's rows before the sequence's end and consumer 1's dV's.
    if constexpr (Cfg::kDsExchange) {
      // And once the copy of K's columns to the partner has read them: the partner waited for
      // it before its first dQ GEMM, so its arrivals after the last step's say it is done (with
      // as few steps as buffers nothing else has waited on them).
      if (order.steps > 0) {
        const int last = order.steps - 1;
        smem.ds_sent_free[Cfg::pds_buffer(last)].wait(Cfg::pds_buffer_use(last) & 1);
      }
    }
    named_barrier_sync(kDsReadyBarrier, Cfg::kMmaThreads);
    Tensor sKt_half = local_tile(sKt, Shape<Int<kDimsPerConsumer>, Int<kBlockN>>{}, make_coord(consumer, _0{}));
    Tensor sVt_half = local_tile(smem_tensor(smem.v.data(), typename Cfg::SmemLayoutKt{}),
                                 Shape<Int<kDimsPerConsumer>, Int<kBlockN>>{}, make_coord(consumer, _0{}));
    Tensor tdKsK = thr_dkv.partition_C(sKt_half);
    Tensor tdVsV = thr_dkv.partition_C(sVt_half);
    CUTE_UNROLL
    for (int i = 0; i < size(acc_dkt); ++i) {
      tdKsK(i) = static_cast<Element>(acc_dkt(i));
      tdVsV(i) = static_cast<Element>(acc_dvt(i));
    }
    if constexpr (Cfg::kVarlen) {
      named_barrier_sync(kDsReadyBarrier, Cfg::kMmaThreads);  // every consumer's rows are in the tiles
      if (consumer >= 2) return;  // consumer 0 stores dK, consumer 1 dV
      const TensorArg& out = consumer == 0 ? params.dk : params.dv;
      Tensor g = head_row_tiles_at<Element, kBlockN, kHeadDim>(out, seqlens.k_row_base(out), head, seqlens.seqlen_k,
                                                               n_block);
      store_tile_rows_from_smem<Element, kHeadDim, 128>(consumer == 0 ? sK : sV, g, seqlens.seqlen_k - n_block * kBlockN,
                                                        wg_tidx);
      return;
    }
    cutlass::arch::fence_view_async_shared();  // generic-proxy writes, read next by the TMA unit
    named_barrier_sync(kDsReadyBarrier, Cfg::kMmaThreads);
    if (tidx == 0) {
      auto store = [&](auto const& tma, auto& tile) {
        Tensor g = Cfg::Tma::template row_tiles<kBlockN>(tma, params.seqlen_k, params.nheads_kv, params.batch, head, batch);
        auto [tg, ts] = tma_partition(tma, group_modes<0, 2>(tile), group_modes<0, 2>(g));
        copy(tma, ts, tg(_, n_block));
      };
      store(args.tma_dk, sK);
      store(args.tma_dv, sV);
      tma_store_arrive();
      tma_store_wait<0>();  // shared memory outlives the stores' reads
    }
  };
  store_dk_dv();
  if constexpr (Cfg::kDsExchange) leave_cluster();
}

template <class Cfg>
cudaError_t launch_bwd_ws_split(const BwdParams& params, cudaStream_t stream) {
  // Varlen: descriptors of the whole packed tensors (TmaTensors::kernel_tensor).
  auto gmem = [&](const TensorArg& t, bool keys) {
    return Cfg::Tma::template kernel_tensor<Cfg::kVarlen>(t, params, keys);
  };
  // With GQA the kernel stores fp32 without TMA; K's tensor stands in so the descriptors are
  // valid (varlen stores without TMA too).
  const bool gqa = params.dk_accum != nullptr;
  BwdWsKernelArgs<Cfg> args{
      params,
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.q, false), typename Cfg::SmemLayoutQ{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.dout, false), typename Cfg::SmemLayoutQ{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.k, true), typename Cfg::SmemLayoutK{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.v, true), typename Cfg::SmemLayoutK{}),
      make_tma_copy(SM90_TMA_STORE{}, gmem(gqa ? params.k : params.dk, true), typename Cfg::SmemLayoutK{}),
      make_tma_copy(SM90_TMA_STORE{}, gmem(gqa ? params.v : params.dv, true), typename Cfg::SmemLayoutK{}),
  };
  auto launch_main = [&](const BwdParams& launch_params, dim3 grid) {
    args.params = launch_params;
    auto kernel = launch_params.causal ? &bwd_ws_split_kernel<Cfg, true> : &bwd_ws_split_kernel<Cfg, false>;
    if constexpr (Cfg::kDsExchange) {
      return launch_cluster_pairs(kernel, grid, Cfg::kNThreads, Cfg::kSmemBytes, stream, args, kBwdProgrammaticLaunch);
    } else {
      return launch_with_smem(kernel, grid, Cfg::kNThreads, Cfg::kSmemBytes, stream, args, kBwdProgrammaticLaunch);
    }
  };
  return launch_bwd_pipeline<Cfg, kBwdProgrammaticLaunch>(params, stream, launch_main);
}

}  // namespace flashgen::sm90
