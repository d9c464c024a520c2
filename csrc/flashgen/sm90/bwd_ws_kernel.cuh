// sm90 backward attention, warp-specialized (FlashAttention-3's structure), for head dims up to
// 128. Compiled for sm_90a only (H100, H200).
//
// One CTA per (key block of kBlockN = 128 keys, head, batch); it walks the query blocks that see
// its keys (QueryBlockOrder). Warpgroup 0 produces, warpgroups 1 and 2 consume:
// - Producer (registers lowered with setmaxnreg). Warp 0, one thread: K and V once (TMA), then
//   per query block Q with its lse_log2 rows and dO with its D rows, through kStages-deep rings
//   (CUTLASS's PipelineTmaAsync; the row statistics ride on the tile's barrier as 1-D bulk
//   copies, which the preprocess's padded rows make whole). Warp 1 (kDqWriter): the dQ writer,
//   which adds each consumer's half of each step's dQ tile from shared memory to the fp32
//   accumulator with a bulk reduce-add as soon as that consumer has staged it, while the
//   consumers go on to the next step.
// - Consumer c owns keys [64c, 64c + 64) of the block and computes, per query block,
//     S^T = K_c Q^T, dP^T = V_c dO^T                 (64 x block_m each, SS wgmma)
//     P^T = exp2(S^T * scale * log2(e) - lse_log2), dS^T = P^T * (dP^T - D)   (registers)
//     dV_c += P^T dO, dK_c += dS^T Q                 (RS wgmma: P^T and dS^T from registers)
//     dQ = dS K over both consumers' keys            (SS wgmma: dS^T through shared memory)
//   Computing the transposed scores puts the keys on the wgmma's M, so P^T and dS^T come out of
//   the S and dP accumulators already in the A-operand layout of the dV and dK GEMMs: no
//   shared-memory round trip for P, and only dS^T is written (for dQ, whose M is the queries).
//   dK_c and dV_c stay in registers for the whole walk: 2 x 64 x head_dim fp32 over 128 threads,
//   which is why this design stops at head dim 128 (sm90/bwd_ws_split_kernel.cuh takes 192 and
//   256).
// - The dQ GEMM splits its tile over the two consumers (by columns for block_m 64, by rows for
//   128); with kDqWriter its fragments are staged in consumer-major order (BwdWsConfig::dq_offset),
//   each consumer's half one contiguous run of floats, added by its own bulk reduce-add (without
//   kDqWriter, in DqAccumulatorOrder by each thread's float4 atomics as the other backward kernels
//   do).
// - Epilogue: dK (scaled) and dV through each consumer's K and V slices of shared memory, out by
//   TMA stores that clip rows past seqlen_k; with GQA fp32 stores per query head.
// - Varlen (packed sequences, cu_seqlens; common/seqlen.cuh): the grid covers the longest
//   sequence's key blocks, and a CTA past its sequence's keys exits at once (one with keys but no
//   query that sees them still writes dK = dV = 0). Q, dO, K and V load through descriptors of
//   the whole packed tensors, each sequence's tiles offset to its first row (TmaTensors::
//   query_tiles, key_tiles): rows past its end are the next sequence's, harmless as keys (masked
//   at seqlen_k) and as queries (their padded row statistics, lse_log2 = +inf and D = 0 from the
//   preprocess, make P = dS = 0). dK and dV leave shared memory by 16-byte row stores that stop
//   at seqlen_k (store_tile_rows_from_smem) instead of the TMA store, which would overwrite the
//   next sequence's rows.
// The preprocess (D, lse_log2, zeroed dQ accumulator), the deterministic launches and the dQ
// postprocess are the other backward kernels' (common/bwd_pipeline.cuh launch_bwd_pipeline).
#pragma once
#include <cuda_runtime.h>

#include <cute/tensor.hpp>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "flashgen/common/mask.cuh"
#include "flashgen/common/softcap.cuh"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/common/utils.cuh"
#include "flashgen/params.h"
#include "flashgen/common/bwd_pipeline.cuh"
#include "flashgen/common/copies.cuh"
#include "flashgen/sm90/bwd_ws_common.cuh"
#include "flashgen/sm90/tma.cuh"
#include "flashgen/sm90/warpgroup.cuh"

namespace flashgen::sm90 {
using namespace cute;

// Compile-time plan of one warp-specialized backward kernel. Plan is the named tile struct a
// generated file renders from kernels.yaml (templates/tile_struct.j2): kBlockM, kBlockN,
// kStages, kDqWriter (gen/families.py BwdSm90Tile).
template <class Plan>
struct BwdWsConfig : DqAccumulatorOrder<Plan::kBlockM, Plan::kHeadDim, 256, 4> {
  using Element = typename Plan::Element;
  static constexpr int kHeadDim = Plan::kHeadDim;
  static constexpr int kBlockM = Plan::kBlockM;  // queries per step
  static constexpr int kBlockN = Plan::kBlockN;  // keys per CTA
  static constexpr int kStages = Plan::kStages;  // Q and dO buffers each (TMA ring depth)
  static constexpr bool kDqWriter = Plan::kDqWriter != 0;
  // dQ's GEMM goes out before dK's (FlashAttention-3's order), so dQ's hand-off (the staging for
  // the writer, or the atomics) runs under the dK GEMM instead of after every GEMM has drained.
  static constexpr bool kDqBeforeDk = Plan::kDqBeforeDk != 0;
  // Masked and unmasked steps as code of their own, chosen before the step (split_masked_steps).
  static constexpr bool kSplitMaskedSteps = Plan::kSplitMaskedSteps != 0;
  // Causal CTAs heaviest key block first across groups of heads (BackwardCta, common/mask.cuh).
  static constexpr bool kCausalHeadGroups = Plan::kCausalHeadGroups != 0;
  static constexpr bool kWindow = has_window_feature<Plan>();  // sliding-window masks (params' bounds)
  static constexpr bool kSoftcap = has_softcap_feature<Plan>();  // tanh-capped scores (common/softcap.cuh)
  static constexpr bool kVarlen = has_varlen_feature<Plan>();  // packed sequences (common/seqlen.cuh)
  // dQ^T = K^T dS^T instead of dQ = dS K (FlashAttention-3's swapped dQ GEMM): each consumer
  // computes 64 head dims (the wgmma's M) of every query of the step (its N), so block_m need
  // only be a multiple of 16 (80 at head dim 128) instead of whole 64-row wgmma tiles.
  static constexpr bool kDqTransposed = Plan::kDqTransposed != 0;
  // ds_keys_contiguous: dS stored (queries, keys), keys contiguous, written from the dS^T
  // accumulator by transposed stmatrix, so that a consumer's 64 keys are one 128-byte swizzle
  // atom at any block_m (FA4's layout) and the dQ GEMM reads dS K-major; else dS^T (keys,
  // queries), queries contiguous, whose atoms narrow to 32 bytes at block_m 80.
  static constexpr bool kDsKeysContiguous = Plan::kDsKeysContiguous != 0;

  static constexpr int kKeyRows = 64;  // keys of one consumer warpgroup (one wgmma M)
  static constexpr int kConsumers = Plan::kConsumers;  // the tile struct's (gen/families.py)
  static constexpr int kMmaThreads = 128 * kConsumers;
  static constexpr int kNThreads = 128 + kMmaThreads;
  static constexpr int kDqThreads = kMmaThreads;  // the dQ GEMM's threads (the postprocess reads back in their order)
  static_assert(kConsumers == 2 && kBlockN == kKeyRows * kConsumers, "two consumer warpgroups of 64 keys: block_n 128");
  static_assert(kDqTransposed ? kBlockM % 16 == 0 && kBlockM >= 64 && kBlockM <= 128 : kBlockM == 64 || kBlockM == 128,
                "block_m is the N of the S^T wgmma and a whole number of 64-row dQ tiles (of 16-row k steps with "
                "dQ^T)");
  static_assert(!kDqTransposed || kHeadDim == 64 * kConsumers, "dQ^T: 64 head dims (one wgmma M) per consumer");
  static_assert(kHeadDim % 32 == 0 && kHeadDim <= 128, "whole 64-byte swizzle atoms; dK and dV in registers up to 128");
  static constexpr int kProducerRegisters = Plan::kProducerRegisters;
  static constexpr int kConsumerRegisters = Plan::kConsumerRegisters;
  static_assert(check_register_split<kConsumers, kProducerRegisters, kConsumerRegisters>());

  // S^T = K_c Q^T and dP^T = V_c dO^T: 64 x block_m per consumer, K-major operands.
  using TiledMmaSdP = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kBlockM>, _16>, GMMA::Major::K, GMMA::Major::K>()));
  // dV_c += P^T dO and dK_c += dS^T Q: 64 x head_dim, A from registers, B (dO^T, Q^T) MN-major.
  using TiledMmadKV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, Shape<_64, Int<kHeadDim>, _16>, GMMA::Major::K,
                           GMMA::Major::MN>()));
  // dQ = dS K: block_m x head_dim over both consumers, by rows when block_m is 128, else by
  // columns; A is dS read through dS^T's tile (MN-major), B is K read transposed (MN-major).
  // With kDqTransposed, dQ^T = K^T dS^T: head_dim x block_m by rows (64 head dims per consumer);
  // A is K^T, B is dS, the same two views.
  static constexpr int kDqWarpgroupsM = kDqTransposed ? kConsumers : kBlockM / 64;
  static constexpr int kDqWarpgroupsN = kConsumers / kDqWarpgroupsM;
  // The head dims (K's columns) one consumer's dQ GEMM reads: its share must start on a swizzle atom.
  static constexpr int kDqHeadCols = kDqTransposed ? kHeadDim / kConsumers : kHeadDim / kDqWarpgroupsN;
  static_assert(kDqHeadCols % 16 == 0, "each consumer's dQ head dims must be whole 32-byte swizzle atoms");
  static constexpr int kDqRows = kDqTransposed ? kHeadDim : kBlockM, kDqCols = kDqTransposed ? kBlockM : kHeadDim;
  using DqTileShape = Shape<Int<kDqRows>, Int<kDqCols>>;  // the dQ GEMM's C (the postprocess: DqIsTransposed)
  // (With kDsKeysContiguous dS is K-major: dQ's A, or dQ^T's B.)
  static constexpr GMMA::Major kDsMajor = kDsKeysContiguous ? GMMA::Major::K : GMMA::Major::MN;
  using TiledMmadQ = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kDqCols / kDqWarpgroupsN>, _16>,
                           kDqTransposed ? GMMA::Major::MN : kDsMajor, kDqTransposed ? kDsMajor : GMMA::Major::MN>(),
      Layout<Shape<Int<kDqWarpgroupsM>, Int<kDqWarpgroupsN>, _1>>{}));

  // Tiles are K-major (contiguous along their last mode) in the widest wgmma swizzle whose atom
  // (64, 32 or 16 columns of 16-bit elements) divides kAtomCols, their columns by default; the
  // transposed views are the MN-major operands. K and V: the dQ GEMM reads K transposed in each
  // consumer's share of the head dim, which must start on an atom (48 of 96 columns: 16-column atoms).
  template <int kAtomCols>
  using SmemAtom = std::conditional_t<
      kAtomCols % 64 == 0, GMMA::Layout_K_SW128_Atom<Element>,
      std::conditional_t<kAtomCols % 32 == 0, GMMA::Layout_K_SW64_Atom<Element>, GMMA::Layout_K_SW32_Atom<Element>>>;
  template <int kRows, int kCols, int kAtomCols = kCols>
  using Tile = decltype(tile_to_shape(SmemAtom<kAtomCols>{}, Shape<Int<kRows>, Int<kCols>>{}));
  template <int kRows, int kCols>
  using StagedTiles = decltype(tile_to_shape(SmemAtom<kCols>{}, Shape<Int<kRows>, Int<kCols>, Int<kStages>>{}));
  // (cols, rows, stage) view of StagedTiles<kRows, kCols>.
  template <int kRows, int kCols>
  using StagedTransposed = decltype(composition(
      StagedTiles<kRows, kCols>{}, make_ordered_layout(Shape<Int<kCols>, Int<kRows>, Int<kStages>>{}, Step<_2, _1, _3>{})));

  using SmemLayoutQ = Tile<kBlockM, kHeadDim>;  // one Q or dO stage
  // The postprocess's staging tile for dQ (common/bwd_pipeline.cuh): each consumer's columns of
  // the dQ GEMM start on an atom, as in K's tile (with dQ^T the postprocess writes it through a
  // transposed view, element by element, and any atom serves).
  using SmemLayoutDqStage = Tile<kBlockM, kHeadDim, kDqHeadCols>;
  using SmemLayoutQStages = StagedTiles<kBlockM, kHeadDim>;
  using SmemLayoutQtStages = StagedTransposed<kBlockM, kHeadDim>;  // (head_dim, queries, stage)
  // K and V: one 64-row slice per consumer, the slices one after the other (each a TMA box).
  using SmemLayoutKSlice = Tile<kKeyRows, kHeadDim, kDqHeadCols>;
  using SmemLayoutK = decltype(tile_to_shape(SmemLayoutKSlice{}, Shape<Int<kBlockN>, Int<kHeadDim>>{}));
  using SmemLayoutKt = decltype(composition(SmemLayoutK{}, make_layout(Shape<Int<kHeadDim>, Int<kBlockN>>{}, GenRowMajor{})));
  // dS^T (keys, queries): one 64-key slice per consumer, two buffers (step i writes buffer i % 2,
  // so a consumer may write the next step's while the other still reads this one's in its dQ GEMM).
  // Stored as dS^T, queries contiguous; with kDsKeysContiguous as dS (queries, keys), keys
  // contiguous, the slices and buffers in the same order, and the (keys, queries) layouts below
  // are views of it.
  // (std::conditional_t of lazy types: the view of the layout not chosen need not exist.)
  template <class Stored, int kRows, int kCols>  // (cols, rows) view of a (rows, cols) tile
  struct TransposedView {
    using type = decltype(composition(Stored{}, make_layout(Shape<Int<kCols>, Int<kRows>>{}, GenRowMajor{})));
  };
  template <class Stored, int kRows, int kCols>  // (cols, rows, buffer) view of a (rows, cols, buffer) tile
  struct TransposedBuffers {
    using type = decltype(composition(Stored{}, make_ordered_layout(Shape<Int<kCols>, Int<kRows>, _2>{}, Step<_2, _1, _3>{})));
  };
  template <class Layout>
  struct AsStored {
    using type = Layout;
  };
  template <class KeysContiguous, class QueriesContiguous>
  using DsView = typename std::conditional_t<kDsKeysContiguous, KeysContiguous, QueriesContiguous>::type;
  using SmemLayoutDsSliceStored = std::conditional_t<kDsKeysContiguous, Tile<kBlockM, kKeyRows>, Tile<kKeyRows, kBlockM>>;
  using SmemLayoutDsStored = decltype(tile_to_shape(
      SmemLayoutDsSliceStored{},
      std::conditional_t<kDsKeysContiguous, Shape<Int<kBlockM>, Int<kBlockN>, _2>, Shape<Int<kBlockN>, Int<kBlockM>, _2>>{}));
  // dS^T (keys, queries) of one consumer's slice: what its stmatrix writes.
  using SmemLayoutDsSlice =
      DsView<TransposedView<SmemLayoutDsSliceStored, kBlockM, kKeyRows>, AsStored<SmemLayoutDsSliceStored>>;
  // dS^T (keys, queries, buffer) and dS (queries, keys, buffer): the dQ GEMM's operand.
  using SmemLayoutDs = DsView<TransposedBuffers<SmemLayoutDsStored, kBlockM, kBlockN>, AsStored<SmemLayoutDsStored>>;
  using SmemLayoutDsTransposed =
      DsView<AsStored<SmemLayoutDsStored>, TransposedBuffers<SmemLayoutDsStored, kBlockN, kBlockM>>;
  // The stmatrix that writes dS^T's registers into the slice: transposed for dS stored keys-contiguous.
  using DsStoreAtom = std::conditional_t<kDsKeysContiguous, SM90_U16x8_STSM_T, SM90_U32x4_STSM_N>;

  // One stage (or buffer) of the staged views, for the host checks and the wgmma probe.
  using SmemLayoutQt = decltype(composition(SmemLayoutQ{}, make_layout(Shape<Int<kHeadDim>, Int<kBlockM>>{}, GenRowMajor{})));
  using SmemLayoutDsOneStored = decltype(tile_to_shape(
      SmemLayoutDsSliceStored{},
      std::conditional_t<kDsKeysContiguous, Shape<Int<kBlockM>, Int<kBlockN>>, Shape<Int<kBlockN>, Int<kBlockM>>>{}));
  using SmemLayoutDsOne =  // (keys, queries)
      DsView<TransposedView<SmemLayoutDsOneStored, kBlockM, kBlockN>, AsStored<SmemLayoutDsOneStored>>;
  using SmemLayoutDsOneTransposed =
      DsView<AsStored<SmemLayoutDsOneStored>, TransposedView<SmemLayoutDsOneStored, kBlockN, kBlockM>>;

  using PipelineQ = cutlass::PipelineTmaAsync<kStages>;  // Q + lse_log2, and dO + D
  static constexpr int kDqStageFloats = kDqWriter ? kBlockM * kHeadDim : 4;
  struct SharedStorage {
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutQStages>> q;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutQStages>> dout;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutK>> k;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutK>> v;
    alignas(1024) cute::array_aligned<Element, cosize_v<SmemLayoutDsStored>> ds;
    alignas(128) cute::array_aligned<float, kDqStageFloats> dq;  // the dQ writer's staging tile
    alignas(16) cute::array_aligned<float, kStages * kBlockM> lse_log2;
    alignas(16) cute::array_aligned<float, kStages * kBlockM> d;
    typename PipelineQ::SharedStorage pipeline_q, pipeline_do;
    cutlass::arch::ClusterTransactionBarrier kv_full;  // K and V landed
  };
  static constexpr int kSmemBytes = int(sizeof(SharedStorage));
  static_assert(kSmemBytes == Plan::kSmemBytes, "gen/families.py's shared-memory count disagrees with this kernel's");

  using Tma = TmaTensors<Element, kHeadDim>;
  using TmaLoadQ = typename Tma::template Load<SmemLayoutQ>;
  using TmaLoadK = typename Tma::template Load<SmemLayoutKSlice>;  // one consumer's 64-key slice
  using TmaStoreK = typename Tma::template Store<SmemLayoutKSlice>;
  static constexpr uint32_t kRowStatsBytes = kBlockM * sizeof(float);
  static constexpr uint32_t kQStageBytes = kBlockM * kHeadDim * sizeof(Element) + kRowStatsBytes;
  static constexpr uint32_t kKVBytes = 2 * kBlockN * kHeadDim * sizeof(Element);

  // With the dQ writer, the hand-off is per consumer (FA4's pattern): consumer-major thread order,
  // each consumer's half of the staged tile (and of the accumulator tile, which the postprocess
  // reads in this order) contiguous, so the writer adds a half as soon as its consumer has staged
  // it, behind barriers of that consumer and the writer alone (session 13's ncu: 24k mio stall
  // samples on the dQ staging stores when one 288-thread barrier released both; +2-5% at 128).
  static constexpr int kDqPartElems = DqAccumulatorOrder<Plan::kBlockM, Plan::kHeadDim, 256, 4>::kDqTileElems / kConsumers;
  CUTE_HOST_DEVICE static constexpr int dq_offset(int i, int tidx) {
    if constexpr (kDqWriter) {
      return (tidx / 128) * kDqPartElems + (i / 4) * (128 * 4) + (tidx % 128) * 4 + i % 4;
    } else {
      return DqAccumulatorOrder<Plan::kBlockM, Plan::kHeadDim, 256, 4>::dq_offset(i, tidx);
    }
  }

  // The postprocess's copies (store_fragment_via_smem): the dQ GEMM's threads, in passes of
  // whole rows where 64-column ones would not divide block_m (80: 32 rows a pass).
  static constexpr int kGmemRowCols = kBlockM % (kDqThreads / 8) == 0 ? 0 : kHeadDim;
  using Gmem = GmemCopies<Element, kHeadDim, kDqThreads, kGmemRowCols>;
  static_assert(kBlockM % GmemCopies<Element, kHeadDim, kDqThreads, kGmemRowCols>::kRowsPerPass == 0,
                "the postprocess's dQ store covers block_m in whole passes");
  static constexpr int kQTileBytes = int(cosize(SmemLayoutQ{}) * sizeof(Element));
};



// 1-D bulk reduce-add of `bytes` (a multiple of 16) of fp32 from shared to global memory, in
// the current bulk group (commit with tma_store_arrive, wait with tma_store_wait).
__device__ __forceinline__ void bulk_reduce_add(float* gmem, const float* smem, int bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(gmem),
               "r"(cute::cast_smem_ptr_to_uint(smem)), "r"(bytes)
               : "memory");
}

// Waits until every bulk operation this thread committed has completed (not only read its
// shared memory): the dQ writer's last adds are done before the CTA exits.
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// One step's row statistic (lse_log2 or D) for each query a thread's S^T elements span (coords:
// the (key, query) of each element, as rows and columns): read from the stage's shared rows,
// either into registers by prefetch() (kInRegisters: while a GEMM runs) or at each use.
template <int kCols, bool kInRegisters, class Coords>
struct RowStatistics {
  const float* rows;
  Coords const& coords;
  float value[kInRegisters ? kCols : 1];

  __device__ __forceinline__ RowStatistics(const float* stage_rows, Coords const& coords_)
      : rows(stage_rows), coords(coords_) {}
  __device__ __forceinline__ void prefetch() {
    if constexpr (kInRegisters) {
      CUTE_UNROLL
      for (int ni = 0; ni < kCols; ++ni) value[ni] = rows[get<1>(coords(0, ni))];
    }
  }
  __device__ __forceinline__ float operator()(int ni) const {
    if constexpr (kInRegisters) return value[ni];
    else return rows[get<1>(coords(0, ni))];
  }
};

template <class Cfg, bool kCausal>
__global__ void __launch_bounds__(Cfg::kNThreads, 1) bwd_ws_kernel(const __grid_constant__ BwdWsKernelArgs<Cfg> args) {
  using Element = typename Cfg::Element;
  using PipelineQ = typename Cfg::PipelineQ;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  constexpr int kKeyRows = Cfg::kKeyRows;
  extern __shared__ __align__(1024) char smem_raw[];
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_raw);
  const BwdParams& params = args.params;

  // This launch's key blocks start at n_block_offset (deterministic mode); the CTA of
  // launch-local key block n adds its dQ into split n.
  const BackwardCta cta(blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y, gridDim.z,
                        int64_t(params.seqlen_q) * kHeadDim * sizeof(float),
                        /*heavy_first_groups=*/kCausal && Cfg::kCausalHeadGroups);
  const int n_block = params.n_block_offset + cta.n_block_local, head = cta.head, batch = cta.batch;
  const SequenceLengthsFor<Cfg> seqlens(params, batch);
  if constexpr (Cfg::kVarlen) {
    if (n_block * kBlockN >= seqlens.seqlen_k) return;  // the grid covers the longest sequence's keys; not this one's
  }
  const AttentionMask mask = make_mask<Cfg::kWindow>(seqlens, kCausal, params);
  const QueryBlockOrder order(mask, kBlockM, kBlockN, n_block);
  const int64_t stats_offset = seqlens.template padded_rows_offset<kBlockM>(params, head);
  float* const dq_tiles = params.dq_accum + cta.n_block_local * params.dq_split_stride +
                          seqlens.template dq_tiles_offset<kBlockM, Cfg::kDqTileElems>(params, head, order.m_blocks);
  // Warp-uniform, so the consumers' shared-memory operand descriptors are built in uniform
  // registers (with the dQ operands sliced by warpgroup below: no R2UR per k step).
  const int warpgroup = warpgroup_index();
  if constexpr (kBwdProgrammaticLaunch) allow_dependent_launch();  // the dQ postprocess waits for our sums itself
  // The dQ hand-off's named barriers (kDqFullBarrier0 + c: consumer c staged its half; kDqEmptyBarrier0
  // + c: the writer read it) each count one consumer warpgroup and the writer warp.
  constexpr int kDqHandoffThreads = 128 + 32;

  const auto pipe_params = query_pipeline_params<PipelineQ>(Cfg::kQStageBytes, Cfg::kMmaThreads);
  if (threadIdx.x == 0) {
    args.prefetch_descriptors();
    smem.kv_full.init(1);
  }
  PipelineQ pipeline_q(smem.pipeline_q, pipe_params, Shape<_1, _1, _1>{});
  PipelineQ pipeline_do(smem.pipeline_do, pipe_params, Shape<_1, _1, _1>{});
  __syncthreads();  // barriers initialized (the constructors fenced their init)

  // Consumer c's 64-key slice of K or V.
  auto key_slice = [&](Element* tile, int consumer) {
    return make_tensor(make_smem_ptr(tile + consumer * cosize_v<typename Cfg::SmemLayoutKSlice>),
                       typename Cfg::SmemLayoutKSlice{});
  };

  if (warpgroup == 0) {
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (warp == 0 && lane == 0 && order.steps > 0) {  // the loads
      const int head_kv = kv_head_of(params, head);
      // K, V: 64-row tiles of the kv head; consumer c's are tile n_block * kConsumers + c.
      smem.kv_full.arrive_and_expect_tx(Cfg::kKVBytes);
      for (int c = 0; c < Cfg::kConsumers; ++c) {
        auto load_keys = [&](auto const& tma, Element* tile) {
          Tensor g = Cfg::Tma::template key_tiles<kKeyRows>(tma, params, seqlens, head_kv);
          auto [tg, ts] = tma_partition(tma, group_modes<0, 2>(key_slice(tile, c)), group_modes<0, 2>(g));
          copy(tma.with(reinterpret_cast<uint64_t&>(smem.kv_full)), tg(_, n_block * Cfg::kConsumers + c), ts);
        };
        load_keys(args.tma_k, smem.k.data());
        load_keys(args.tma_v, smem.v.data());
      }
      // K and V are the caller's; lse_log2 and D below are the preprocess's.
      if constexpr (kBwdProgrammaticLaunch) wait_for_previous_grid();
      // Q, dO: block_m-row tiles of the head, into the stage's buffer, with their row statistics.
      auto query_parts = [&](auto const& tma, Element* stages) {
        Tensor g = Cfg::Tma::template query_tiles<kBlockM>(tma, params, seqlens, head);
        Tensor s = make_tensor(make_smem_ptr(stages), typename Cfg::SmemLayoutQStages{});
        return tma_partition(tma, group_modes<0, 2>(s), group_modes<0, 2>(g));
      };
      const auto q_parts = query_parts(args.tma_q, smem.q.data());
      const auto do_parts = query_parts(args.tma_do, smem.dout.data());
      auto state = cutlass::make_producer_start_state<PipelineQ>();
      for (int it = 0; it < order.steps; ++it) {
        const int m_block = order.at(it);
        const int64_t stats_row = stats_offset + int64_t(m_block) * kBlockM;
        auto load = [&](PipelineQ& pipeline, auto const& tma, auto const& parts, const float* stats, float* stats_smem) {
          pipeline.producer_acquire(state);
          uint64_t* barrier = pipeline.producer_get_barrier(state);
          copy(tma.with(*barrier), get<0>(parts)(_, m_block), get<1>(parts)(_, state.index()));
          SM90_BULK_COPY_G2S::copy(stats + stats_row, barrier, stats_smem + state.index() * kBlockM,
                                   Cfg::kRowStatsBytes);
        };
        load(pipeline_q, args.tma_q, q_parts, params.lse_log2, smem.lse_log2.data());
        load(pipeline_do, args.tma_do, do_parts, params.softmax_d, smem.d.data());
        ++state;
      }
    } else if (Cfg::kDqWriter && warp == 1) {  // the dQ writer
      if constexpr (kBwdProgrammaticLaunch) wait_for_previous_grid();  // the accumulator the preprocess zeroed
      for (int it = 0; it < order.steps; ++it) {
        CUTE_UNROLL
        for (int part = 0; part < Cfg::kConsumers; ++part) {
          named_barrier_sync(kDqFullBarrier0 + part, kDqHandoffThreads);  // consumer part's half of step it's dQ is staged
          if (lane == 0) {
            const int offset = part * Cfg::kDqPartElems;
            bulk_reduce_add(dq_tiles + order.at(it) * Cfg::kDqTileElems + offset, smem.dq.data() + offset,
                            Cfg::kDqPartElems * 4);
            tma_store_arrive();
            tma_store_wait<0>();  // the staged part has been read
          }
          __syncwarp();
          if (it + 1 < order.steps) named_barrier_arrive(kDqEmptyBarrier0 + part, kDqHandoffThreads);
        }
      }
      if (lane == 0) bulk_wait_all();
    }
    return;
  }

  // Consumer `consumer`: keys [key0, key0 + 64) of the block.
  cutlass::arch::warpgroup_reg_alloc<Cfg::kConsumerRegisters>();
  if constexpr (kBwdProgrammaticLaunch) wait_for_previous_grid();  // the accumulator the preprocess zeroed
  const int consumer = warpgroup - 1;
  const int tidx = threadIdx.x - 128;       // within the consumers: the dQ GEMM's thread index
  const int wg_tidx = threadIdx.x % 128;    // within this consumer
  const int key0 = n_block * kBlockN + consumer * kKeyRows;

  typename Cfg::TiledMmaSdP mma_sdp;
  typename Cfg::TiledMmadKV mma_dkv;
  typename Cfg::TiledMmadQ mma_dq;
  auto thr_sdp = mma_sdp.get_thread_slice(wg_tidx);
  auto thr_dkv = mma_dkv.get_thread_slice(wg_tidx);

  Tensor sK = key_slice(smem.k.data(), consumer);
  Tensor sV = key_slice(smem.v.data(), consumer);
  auto smem_tensor = [](Element* ptr, auto layout) { return make_tensor(make_smem_ptr(ptr), layout); };
  // Operands as shared-memory descriptors; the last mode of the staged ones is the stage (or dS buffer).
  Tensor tSrK = thr_sdp.make_fragment_A(thr_sdp.partition_A(sK));
  Tensor tdPrV = thr_sdp.make_fragment_A(thr_sdp.partition_A(sV));
  Tensor tSrQ = thr_sdp.make_fragment_B(thr_sdp.partition_B(smem_tensor(smem.q.data(), typename Cfg::SmemLayoutQStages{})));
  Tensor tdPrdO =
      thr_sdp.make_fragment_B(thr_sdp.partition_B(smem_tensor(smem.dout.data(), typename Cfg::SmemLayoutQStages{})));
  Tensor tdKrQt =
      thr_dkv.make_fragment_B(thr_dkv.partition_B(smem_tensor(smem.q.data(), typename Cfg::SmemLayoutQtStages{})));
  Tensor tdVrdOt =
      thr_dkv.make_fragment_B(thr_dkv.partition_B(smem_tensor(smem.dout.data(), typename Cfg::SmemLayoutQtStages{})));
  // dQ's operands: dS (queries, keys, buffer) through the dS^T buffers, and K^T (head_dim, keys);
  // dS is A and K^T is B for dQ = dS K, the other way round for dQ^T = K^T dS^T.
  Tensor sDs = smem_tensor(smem.ds.data(), typename Cfg::SmemLayoutDsTransposed{});
  Tensor sKt = smem_tensor(smem.k.data(), typename Cfg::SmemLayoutKt{});
  // Operand descriptors are one per warpgroup: sliced by this warpgroup's first thread (uniform),
  // not by tidx, so they stay in uniform registers; tidx slices the accumulator.
  auto thr_dq_operands = mma_dq.get_thread_slice(consumer * 128);
  auto dq_operands = [&] {
    if constexpr (Cfg::kDqTransposed) {
      return cute::make_tuple(thr_dq_operands.make_fragment_B(thr_dq_operands.partition_B(sDs)),
                              thr_dq_operands.make_fragment_A(thr_dq_operands.partition_A(sKt)));
    } else {
      return cute::make_tuple(thr_dq_operands.make_fragment_A(thr_dq_operands.partition_A(sDs)),
                              thr_dq_operands.make_fragment_B(thr_dq_operands.partition_B(sKt)));
    }
  }();
  Tensor tdQrdS = get<0>(dq_operands);
  Tensor tdQrKt = get<1>(dq_operands);

  // Each S^T element's (key, query) inside this consumer's 64 x block_m tile.
  Tensor tScS = thr_sdp.partition_C(make_identity_tensor(Shape<Int<kKeyRows>, Int<kBlockM>>{}));
  Tensor coords = make_tensor(tScS.data(), accumulator_as_rows_cols(tScS.layout()));
  // dS^T out to this consumer's slice of a dS buffer by stmatrix.
  auto smem_copy_ds = make_tiled_copy_C(Copy_Atom<typename Cfg::DsStoreAtom, Element>{}, mma_sdp);
  auto thr_copy_ds = smem_copy_ds.get_thread_slice(wg_tidx);
  auto ds_slice = [&](int buffer) {
    return smem_tensor(smem.ds.data() + (buffer * Cfg::kConsumers + consumer) * cosize_v<typename Cfg::SmemLayoutDsSliceStored>,
                       typename Cfg::SmemLayoutDsSlice{});
  };
  // dS^T's stmatrix destinations as 32-bit shared addresses, swizzled once for buffer 0; buffer 1
  // lies a whole number of swizzle periods further, where the swizzled addresses move by the same
  // offset. (cute::copy into ds_slice(buffer) re-swizzled 64-bit pointers every step: 33
  // instructions a step at head dim 128.)
  constexpr uint32_t kDsBufferBytes = Cfg::kConsumers * cosize_v<typename Cfg::SmemLayoutDsSliceStored> * sizeof(Element);
  static_assert(kDsBufferBytes % 1024 == 0, "dS^T buffers a whole number of (at most 1 KB) swizzle periods apart");
  const StsmDestinations<stsm_calls<decltype(thr_copy_ds.partition_D(ds_slice(0)))>(), typename Cfg::DsStoreAtom> ds_stsm(
      thr_copy_ds.partition_D(ds_slice(0)), kDsBufferBytes);

  Tensor acc_dk = partition_fragment_C(mma_dkv, Shape<Int<kKeyRows>, Int<kHeadDim>>{});
  Tensor acc_dv = partition_fragment_C(mma_dkv, Shape<Int<kKeyRows>, Int<kHeadDim>>{});
  clear(acc_dk);
  clear(acc_dv);
  using AccS = decltype(partition_fragment_C(mma_sdp, Shape<Int<kKeyRows>, Int<kBlockM>>{}));
#ifdef FLASHGEN_BWD_DV_BEFORE_DS
  // (Experiment, session 17: dV's GEMM issued between the exps and the dP^T wait. Without it
  // ptxas sinks all but 2-4 of the 32 exps below that wait, so P^T does not run under dP^T's
  // GEMM (SASS at 128). With softcap P^T needs dP^T first, so the order stays.)
  constexpr bool kDvBeforeDs = !Cfg::kSoftcap;
#else
  constexpr bool kDvBeforeDs = false;
#endif

  if (order.steps > 0) smem.kv_full.wait(0);
  cutlass::PipelineState<Cfg::kStages> read;
  // One step: query block order.at(it) against this consumer's keys. masking (MaskStep): test the
  // tile for a mask after the S^T wait, or know it (Cfg::kSplitMaskedSteps).
  auto step = [&](int it, auto masking) FLASHGEN_LAMBDA_INLINE {
    const int m_block = order.at(it);
    const int row0 = m_block * kBlockM;
    const int stage = read.index();

    // S^T and dP^T as two wgmma batches; the softmax of S^T runs while dP^T's GEMM does.
    AccS acc_s, acc_dp;
    // P^T and dS^T in the input type are the A operands of dV += P^T dO and dK += dS^T Q; P^T's
    // registers stay untouched until dV's GEMM has been waited for.
    Tensor p = make_tensor<Element>(acc_s.layout());
    auto issue_dv = [&] {
      convert_fragment_into(acc_s, p);
      Tensor tdVrP = make_tensor(p.data(), accumulator_as_operand_a(p.layout()));
      issue_gemm_batch(mma_dkv, tdVrP, tdVrdOt(_, _, _, stage), acc_dv, /*zero_init=*/false);
    };
    // Each GEMM's row statistics (lse_log2 with Q, D with dO) go to registers while it runs: read
    // after the wait below, their shared-memory latency sat on the softmax's critical path
    // (session 13). Only where a thread's S^T spans at most 16 queries (block_m 64): at 128 the 64
    // more registers spilled (32 -> 312 B at head dim 64), at 80 the 40 more (92 -> 260 B); those
    // read at each use.
    constexpr int kQueryCols = decltype(size<1>(coords))::value;  // the queries a thread's S^T elements span
    constexpr bool kStatsInRegisters = kQueryCols <= 16;
    using Stats = RowStatistics<kQueryCols, kStatsInRegisters, decltype(coords)>;
    Stats row_lse(smem.lse_log2.data() + stage * kBlockM, coords);
    Stats row_d(smem.d.data() + stage * kBlockM, coords);
    pipeline_q.consumer_wait(read);
    issue_gemm_batch(mma_sdp, tSrK, tSrQ(_, _, _, stage), acc_s, /*zero_init=*/true);
    row_lse.prefetch();
    pipeline_do.consumer_wait(read);
    issue_gemm_batch(mma_sdp, tdPrV, tdPrdO(_, _, _, stage), acc_dp, /*zero_init=*/true);
#ifndef FLASHGEN_BWD_D_AFTER_EXP
    row_d.prefetch();
#endif
    warpgroup_wait<1>();
    warpgroup_fence_operand(acc_s);
    // P^T = exp2(S^T * scale * log2(e) - lse_log2[query]) (padding queries have lse_log2 = +inf),
    // dS^T = P^T * (dP^T - D[query]). With softcap, S^T first becomes t = tanh(S^T * softcap_scale)
    // and dS^T takes the factor 1 - t^2.
    Tensor scores = make_tensor(acc_s.data(), accumulator_as_rows_cols(acc_s.layout()));
    Tensor dp = make_tensor(acc_dp.data(), accumulator_as_rows_cols(acc_dp.layout()));
    softcap_scores<Cfg::kSoftcap>(acc_s, params.softcap_scale);
    if constexpr (decltype(masking)::value == MaskStep::kMasked) {
      mask.apply_transposed(scores, coords, key0, row0);
    } else if constexpr (decltype(masking)::value == MaskStep::kMaskIfNeeded) {
      if (mask.tile_needs_mask(row0, kBlockM, key0, kKeyRows)) mask.apply_transposed(scores, coords, key0, row0);
    }
    if constexpr (!Cfg::kSoftcap) {
      // P^T under the dP^T GEMM, then dS^T.
      CUTE_UNROLL
      for (int ni = 0; ni < size<1>(scores); ++ni) {
        CUTE_UNROLL
        for (int mi = 0; mi < size<0>(scores); ++mi) {
          scores(mi, ni) = exp2f(scores(mi, ni) * params.softmax_scale_log2 - row_lse(ni));
        }
      }
#ifdef FLASHGEN_BWD_D_AFTER_EXP
      // (Experiment, session 16: D's rows read after the exps, under the dP^T GEMM's tail, as
      // FA4 orders it, instead of among the dP^T wgmma issues, where session 14 saw its loads
      // queue; the registers it takes are free by now.)
      row_d.prefetch();
#endif
      if constexpr (kDvBeforeDs) {
        // dV's GEMM reads P^T from registers, so ptxas must finish the exps before it issues,
        // and the issue comes before the dP^T wait; dS^T's arithmetic then runs under dV's GEMM.
        issue_dv();
        warpgroup_wait<1>();  // dP^T done; dV may still run
      } else {
        warpgroup_wait<0>();
      }
      warpgroup_fence_operand(acc_dp);
      CUTE_UNROLL
      for (int ni = 0; ni < size<1>(dp); ++ni) {
        CUTE_UNROLL
        for (int mi = 0; mi < size<0>(dp); ++mi) dp(mi, ni) = scores(mi, ni) * (dp(mi, ni) - row_d(ni));
      }
    } else {
      // Both in one pass once dP^T is done: dS^T needs t, which P^T overwrites (keeping 1 - t^2
      // for every score instead spilled at head dim 64).
#ifdef FLASHGEN_BWD_D_AFTER_EXP
      row_d.prefetch();
#endif
      warpgroup_wait<0>();
      warpgroup_fence_operand(acc_dp);
      const bool capped = params.softcap_scale != 0.f;
      CUTE_UNROLL
      for (int ni = 0; ni < size<1>(scores); ++ni) {
        CUTE_UNROLL
        for (int mi = 0; mi < size<0>(scores); ++mi) {
          const float t = scores(mi, ni);
          const float p = exp2f(t * params.softmax_scale_log2 - row_lse(ni));
          const float ds = p * (dp(mi, ni) - row_d(ni));
          dp(mi, ni) = capped ? ds * softcap_derivative(t) : ds;
          scores(mi, ni) = p;
        }
      }
    }

    Tensor ds = convert_fragment<Element>(acc_dp);
    Tensor tdKrdS = make_tensor(ds.data(), accumulator_as_operand_a(ds.layout()));
    // dS^T to shared memory for the dQ GEMM (buffer it % 2; see SmemLayoutDs): the writes, then
    // the dV GEMM's issue (unless it went before dS^T) between them and the fence that waits for
    // them (FA4's order).
    const int buffer = it & 1;
    ds_stsm.store(thr_copy_ds.retile_S(ds), buffer);
    if constexpr (!kDvBeforeDs) issue_dv();
    Tensor acc_dq = partition_fragment_C(mma_dq, typename Cfg::DqTileShape{});
    Tensor tdQrdS_buffer = tdQrdS(_, _, _, buffer);
    auto issue_dk = [&] { issue_gemm_batch(mma_dkv, tdKrdS, tdKrQt(_, _, _, stage), acc_dk, /*zero_init=*/false); };
    if constexpr (!Cfg::kDqBeforeDk) issue_dk();
    cutlass::arch::fence_view_async_shared();  // st.matrix writes, read next by wgmma
    named_barrier_sync(kDsReadyBarrier, Cfg::kMmaThreads);  // both consumers' dS^T are in place
    if constexpr (Cfg::kDqTransposed) issue_gemm_batch(mma_dq, tdQrKt, tdQrdS_buffer, acc_dq, /*zero_init=*/true);
    else issue_gemm_batch(mma_dq, tdQrdS_buffer, tdQrKt, acc_dq, /*zero_init=*/true);
    if constexpr (Cfg::kDqBeforeDk) {
      issue_dk();
      warpgroup_wait<1>();  // dV and dQ done: this stage's dO (and D rows) is free; dK runs on
      warpgroup_fence_operand(acc_dv);
      warpgroup_fence_operand(acc_dq);
      pipeline_do.consumer_release(read);
    } else {
      warpgroup_wait<1>();  // dV and dK done: this stage's Q and dO (and row statistics) are free
      warpgroup_fence_operand(acc_dv);
      warpgroup_fence_operand(acc_dk);
      pipeline_q.consumer_release(read);
      pipeline_do.consumer_release(read);
      ++read;
      warpgroup_wait<0>();
      warpgroup_fence_operand(acc_dq);
    }

    // dQ of this step into the fp32 accumulator of query block m_block.
    if constexpr (Cfg::kDqWriter) {
      if (it > 0) named_barrier_sync(kDqEmptyBarrier0 + consumer, kDqHandoffThreads);  // the writer read our last half
      float* staged = smem.dq.data();
      CUTE_UNROLL
      for (int i = 0; i < Cfg::kDqFragElems; i += 4) {
        *reinterpret_cast<float4*>(staged + Cfg::dq_offset(i, tidx)) =
            make_float4(acc_dq(i), acc_dq(i + 1), acc_dq(i + 2), acc_dq(i + 3));
      }
      cutlass::arch::fence_view_async_shared();  // read next by the bulk reduce (async proxy)
      named_barrier_arrive(kDqFullBarrier0 + consumer, kDqHandoffThreads);
    } else {
      Cfg::add_fragment(dq_tiles + m_block * Cfg::kDqTileElems, acc_dq, tidx);
    }
    if constexpr (Cfg::kDqBeforeDk) {
      warpgroup_wait<0>();  // dK done: this stage's Q (and lse_log2 rows) is free
      warpgroup_fence_operand(acc_dk);
      pipeline_q.consumer_release(read);
      ++read;
    }
  };
  for (int it = 0; it < order.steps; ++it) {
    if constexpr (Cfg::kSplitMaskedSteps) {
      // Decided before the step's loads and GEMMs: a mask test after the S^T wait held every
      // step at a branch until its lse / D reads had landed (docs/perf.md, session 14).
      if (mask.tile_needs_mask(order.at(it) * kBlockM, kBlockM, key0, kKeyRows)) step(it, kMaskedStep);
      else step(it, kUnmaskedStep);
    } else {
      step(it, kMaskIfNeededStep);
    }
  }

  // Epilogue: dK = softmax_scale * dS^T Q sums, dV as is.
  CUTE_UNROLL
  for (int i = 0; i < size(acc_dk); ++i) acc_dk(i) *= params.softmax_scale;
  if (params.dk_accum != nullptr) {
    // GQA: fp32 per query head; the caller sums the heads.
    store_dk_dv_per_query_head_at<kKeyRows, kHeadDim>(params, thr_dkv, acc_dk, acc_dv, seqlens.dkv_accum_rows_before(),
                                                      head, seqlens.seqlen_k, key0);
    return;
  }
  // Through this consumer's K and V slices, once both consumers' dQ GEMMs (which read all of K)
  // are done; one thread TMA-stores them (rows past seqlen_k clipped), or with varlen the
  // consumer's threads store the rows before the sequence's end.
  named_barrier_sync(kDsReadyBarrier, Cfg::kMmaThreads);
  auto smem_copy_dkv = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, mma_dkv);
  auto thr_copy_dkv = smem_copy_dkv.get_thread_slice(wg_tidx);
  cute::copy(smem_copy_dkv, thr_copy_dkv.retile_S(convert_fragment<Element>(acc_dk)), thr_copy_dkv.partition_D(sK));
  cute::copy(smem_copy_dkv, thr_copy_dkv.retile_S(convert_fragment<Element>(acc_dv)), thr_copy_dkv.partition_D(sV));
  if constexpr (Cfg::kVarlen) {
    named_barrier_sync(kBwdEpilogueBarrier0 + consumer, 128);  // the slices' st.matrix writes landed
    auto out_tile = [&](const TensorArg& out) {
      return head_row_tiles_at<Element, kKeyRows, kHeadDim>(out, seqlens.k_row_base(out), head, seqlens.seqlen_k,
                                                            key0 / kKeyRows);
    };
    store_tile_rows_from_smem<Element, kHeadDim, 128>(sK, out_tile(params.dk), seqlens.seqlen_k - key0, wg_tidx);
    store_tile_rows_from_smem<Element, kHeadDim, 128>(sV, out_tile(params.dv), seqlens.seqlen_k - key0, wg_tidx);
    return;
  }
  cutlass::arch::fence_view_async_shared();  // st.matrix writes, read next by the TMA unit
  named_barrier_sync(kBwdEpilogueBarrier0 + consumer, 128);
  if (wg_tidx == 0) {
    auto store = [&](auto const& tma, Element* tile) {
      Tensor g = Cfg::Tma::template row_tiles<kKeyRows>(tma, params.seqlen_k, params.nheads_kv, params.batch, head,
                                                        batch);
      auto [tg, ts] = tma_partition(tma, group_modes<0, 2>(key_slice(tile, consumer)), group_modes<0, 2>(g));
      copy(tma, ts, tg(_, key0 / kKeyRows));
    };
    store(args.tma_dk, smem.k.data());
    store(args.tma_dv, smem.v.data());
    tma_store_arrive();
    tma_store_wait<0>();  // shared memory outlives the stores' reads
  }
}

template <class Cfg>
cudaError_t launch_bwd_ws(const BwdParams& params, cudaStream_t stream) {
  using Element = typename Cfg::Element;
  // Varlen: descriptors of the whole packed tensors (TmaTensors::kernel_tensor).
  auto gmem = [&](const TensorArg& t, bool keys) {
    return Cfg::Tma::template kernel_tensor<Cfg::kVarlen>(t, params, keys);
  };
  // dK and dV in the input dtype exist only without GQA (then nheads == nheads_kv); with GQA the
  // kernel stores fp32 without TMA, and K's tensor stands in so the descriptors are valid (varlen
  // stores without TMA too, its descriptors made all the same).
  const bool gqa = params.dk_accum != nullptr;
  BwdWsKernelArgs<Cfg> args{
      params,
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.q, false), typename Cfg::SmemLayoutQ{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.dout, false), typename Cfg::SmemLayoutQ{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.k, true), typename Cfg::SmemLayoutKSlice{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.v, true), typename Cfg::SmemLayoutKSlice{}),
      make_tma_copy(SM90_TMA_STORE{}, gmem(gqa ? params.k : params.dk, true), typename Cfg::SmemLayoutKSlice{}),
      make_tma_copy(SM90_TMA_STORE{}, gmem(gqa ? params.v : params.dv, true), typename Cfg::SmemLayoutKSlice{}),
  };
  auto launch_main = [&](const BwdParams& launch_params, dim3 grid) {
    args.params = launch_params;
    auto kernel = launch_params.causal ? &bwd_ws_kernel<Cfg, true> : &bwd_ws_kernel<Cfg, false>;
    return launch_with_smem(kernel, grid, Cfg::kNThreads, Cfg::kSmemBytes, stream, args, kBwdProgrammaticLaunch);
  };
  return launch_bwd_pipeline<Cfg, kBwdProgrammaticLaunch>(params, stream, launch_main);
}

}  // namespace flashgen::sm90
