// sm90 forward attention, warp-specialized (the structure of FlashAttention-3). Compiled for
// sm_90a only (H100, H200).
//
// A CTA computes (query block, head, batch) tiles: one, or with kPersistent (non-causal calls)
// every gridDim.x-th of a GPU-full grid (common/tile_scheduler.cuh), the next tile's first K
// (and with kSeparateO or kOInV its Q) loading under this one's epilogue. Warpgroup 0 produces,
// warpgroups 1..C consume, each consumer owning 64 query rows:
// - Producer (registers lowered with setmaxnreg): one thread issues TMA loads, Q once, then K_n
//   and V_n for the visible key blocks n, last first, through kStages-deep rings of shared-memory
//   buffers, each stage guarded by a full and an empty mbarrier (CUTLASS's PipelineTmaAsync).
// - Consumers (registers raised): S_n = Q K_n^T (SS wgmma), the online softmax on the S
//   registers, O += P_n V_n (RS wgmma: P straight from the S registers, V read transposed).
//   Intra-warpgroup overlap: S_{n-1} is issued before O += P_n V_n, and its softmax runs while
//   that GEMM runs; O is rescaled under the S GEMM.
// - Ping-pong (tile option): named barriers make the consumers take turns issuing their GEMMs,
//   so one warpgroup's softmax runs under the other's GEMMs.
// - Epilogue: each consumer writes its normalized rows of O into its own Q rows of shared memory
//   (its S GEMMs, their only readers, are done; with kSeparateO into O tiles of their own, with
//   kOInV into V's ring once every consumer's last P V GEMM is done) and
//   one of its threads TMA-stores them; the TMA unit clips rows past seqlen_q. LSE goes out from
//   registers.
// - Varlen (packed sequences, cu_seqlens): the tile order covers every sequence with the longest
//   one's query blocks, and tiles past a sequence's rows are skipped. Q, K and V load through
//   descriptors of the whole packed tensors, each sequence's tiles offset to its first row (rows
//   past its end are the next sequence's: masked keys, queries whose output is never stored).
//   O leaves by 16-byte stores that stop at the sequence's end (a TMA store of whole tiles would
//   overwrite the next sequence's rows).
#pragma once
#include <cuda_runtime.h>

#ifndef CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED
#error "build with -DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED (gen/toolchain.py): block_n of 80 or 112 needs those wgmma N"
#endif

#include <cute/tensor.hpp>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "flashgen/common/copies.cuh"
#include "flashgen/common/mask.cuh"
#include "flashgen/common/softcap.cuh"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/common/softmax.cuh"
#include "flashgen/common/tile_scheduler.cuh"
#include "flashgen/common/utils.cuh"
#include "flashgen/params.h"
#include "flashgen/sm90/tma.cuh"
#include "flashgen/sm90/warpgroup.cuh"

namespace flashgen::sm90 {
using namespace cute;

// Compile-time plan of one forward kernel. Plan is the named tile struct a generated file renders
// from kernels.yaml (templates/tile_struct.j2): Element, kHeadDim, kSmemBytes and a constant per
// tile field of gen/families.py's FwdSm90Tile (kBlockM, kBlockN, kStages, kPingpong, ...).
template <class Plan>
struct FwdConfig {
  using Element = typename Plan::Element;
  static constexpr int kHeadDim = Plan::kHeadDim;
  static constexpr int kBlockM = Plan::kBlockM;
  static constexpr int kBlockN = Plan::kBlockN;
  static constexpr int kStages = Plan::kStages;
  static constexpr bool kPingPong = Plan::kPingpong != 0;
  static constexpr bool kWindow = has_window_feature<Plan>();  // sliding-window masks (params' bounds)
  static constexpr bool kSoftcap = has_softcap_feature<Plan>();  // tanh-capped scores (common/softcap.cuh)
  static constexpr bool kVarlen = has_varlen_feature<Plan>();  // packed sequences (common/seqlen.cuh)
  static constexpr bool kPersistent = Plan::kPersistent != 0;
  // Persistent causal calls too, tiles handed out by an atomic counter (common/tile_scheduler.cuh).
  static constexpr bool kDynamicScheduler = Plan::kDynamicScheduler != 0;
  static constexpr bool kLazyRescale = Plan::kLazyRescale != 0;  // OnlineSoftmax's kLazy
  static constexpr bool kSeparateO = Plan::kOBuffer != 0;  // O gets its own shared-memory tiles
  // O goes out through V's ring (where no separate O tiles fit, head dim 256): Q is free after the
  // last S GEMM as with kSeparateO, and the next tile's V loads wait until O's store has read it.
  static constexpr bool kOInV = Plan::kOInV != 0;
  static constexpr bool kEarlyQRelease = kSeparateO || kOInV;  // Q's buffer never holds O
  // Q read once per tile into registers (ldmatrix) and fed to S = Q K^T from there (RS), so the
  // S wgmmas re-read only K from shared memory.
  static constexpr bool kQInRegisters = Plan::kQInRegisters != 0;
  static constexpr bool kSplitMaskedSteps = Plan::kSplitMaskedSteps != 0;  // masked and unmasked blocks in loops of their own

  static constexpr int kMmaRows = 64;  // query rows of one consumer warpgroup (one wgmma M)
  static constexpr int kConsumers = Plan::kConsumers;  // block_m / 64 (the tile struct's, as gen counts them)
  static constexpr int kMmaThreads = 128;  // threads of one consumer's MMAs
  static constexpr int kNThreads = 128 * (1 + kConsumers);
  static_assert(kBlockM == kMmaRows * kConsumers, "one consumer warpgroup per 64 query rows");
  static_assert(!kPingPong || kConsumers >= 2, "ping-pong takes turns between consumer warpgroups");
  static_assert(kHeadDim % 32 == 0 && kBlockN % 16 == 0, "whole swizzle atoms and P V k-steps");
  static constexpr int kProducerRegisters = Plan::kProducerRegisters;
  static constexpr int kConsumerRegisters = Plan::kConsumerRegisters;
  static_assert(check_register_split<kConsumers, kProducerRegisters, kConsumerRegisters>());

  // S = Q K^T per consumer: 64 x block_n, K-major operands, Q from shared memory or registers.
  using ShapeS = Shape<Int<kMmaRows>, Int<kBlockN>, _16>;
  using TiledMmaS = decltype(make_tiled_mma(
      std::conditional_t<kQInRegisters, decltype(GMMA::rs_op_selector<Element, Element, float, ShapeS>()),
                         decltype(GMMA::ss_op_selector<Element, Element, float, ShapeS>())>{}));
  // O += P V: P from registers, V read as its transpose (head_dim, block_n), an MN-major operand.
  using TiledMmaO = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, Shape<Int<kMmaRows>, Int<kHeadDim>, _16>, GMMA::Major::K,
                           GMMA::Major::MN>()));

  // Tiles are K-major (head dim contiguous) in the widest wgmma swizzle the head dim allows.
  using SmemAtom = std::conditional_t<kHeadDim % 64 == 0, GMMA::Layout_K_SW128_Atom<Element>,
                                      GMMA::Layout_K_SW64_Atom<Element>>;
  // One consumer's 64 Q rows; the consumers' slices follow one another (then each can reuse its
  // own slice for its O rows without waiting for the others).
  using SmemLayoutQ = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kMmaRows>, Int<kHeadDim>>{}));
  using SmemLayoutKV = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockN>, Int<kHeadDim>>{}));
  using SmemLayoutVt = decltype(composition(SmemLayoutKV{}, make_layout(Shape<Int<kHeadDim>, Int<kBlockN>>{},
                                                                        GenRowMajor{})));
  using SmemLayoutKVStages =
      decltype(tile_to_shape(SmemAtom{}, Shape<Int<kBlockN>, Int<kHeadDim>, Int<kStages>>{}));
  using SmemLayoutVtStages = decltype(composition(
      SmemLayoutKVStages{},
      make_ordered_layout(Shape<Int<kHeadDim>, Int<kBlockN>, Int<kStages>>{}, Step<_2, _1, _3>{})));

  using PipelineKV = cutlass::PipelineTmaAsync<kStages>;
  // The tiles, each a whole number of 1 KB swizzle periods: the consumers' Q slices, the K and V
  // rings, and with kSeparateO the consumers' O slices (else O reuses each consumer's Q slice).
  static constexpr int kQElems = kConsumers * cosize_v<SmemLayoutQ>;
  static constexpr int kKVElems = cosize_v<SmemLayoutKVStages>;
  static constexpr int kTileElems = kQElems * (kSeparateO ? 2 : 1) + 2 * kKVElems;
  static_assert(!(kSeparateO && kOInV), "O has one home: its own tiles or V's ring");
  static_assert(!kOInV || kQElems <= kKVElems, "the consumers' O slices fit in V's ring");
  struct SharedStorage {
    alignas(1024) cute::array_aligned<Element, kTileElems> tiles;
    typename PipelineKV::SharedStorage pipeline_k, pipeline_v;
    cutlass::arch::ClusterTransactionBarrier q_full;  // Q landed
    cutlass::arch::ClusterBarrier q_empty;            // the consumers are done with Q (kQEmptyArrivals)
    cutlass::arch::ClusterBarrier o_read;             // kOInV: every consumer's O store has read V's ring
    int tile_index;  // dynamic scheduler: the tile whose Q q_full announces (past the last: none left)
#ifdef FLASHGEN_FWD_PIN_EXPS
    uint8_t exp_pin[kConsumers * 128];  // pin_before_wait's byte per consumer thread, never read
#endif
    CUTE_DEVICE Element* q() { return tiles.data(); }
    CUTE_DEVICE Element* k() { return tiles.data() + kQElems; }
    CUTE_DEVICE Element* v() { return tiles.data() + kQElems + kKVElems; }
    CUTE_DEVICE Element* o() { return kSeparateO ? tiles.data() + kQElems + 2 * kKVElems : kOInV ? v() : q(); }
  };
  // Q's buffer is free for the next tile's Q once every consumer thread has waited for its last S
  // GEMM (kSeparateO, kOInV), or once each consumer's O store has read its slice (O in Q's buffer).
  static constexpr int kQEmptyArrivals = kEarlyQRelease ? kConsumers * 128 : kConsumers;
  static constexpr int kSmemBytes = int(sizeof(SharedStorage));
  static_assert(kSmemBytes == Plan::kSmemBytes, "gen/families.py's shared-memory count disagrees with this kernel's");

  using Tma = TmaTensors<Element, kHeadDim>;
  using TmaLoadQ = typename Tma::template Load<SmemLayoutQ>;
  using TmaLoadKV = typename Tma::template Load<SmemLayoutKV>;
  using TmaStoreO = typename Tma::template Store<SmemLayoutQ>;
  static constexpr uint32_t kQBytes = kBlockM * kHeadDim * sizeof(Element);
  static constexpr uint32_t kKVStageBytes = kBlockN * kHeadDim * sizeof(Element);
};

// What the kernel takes: the parameters and the TMA descriptors built from them on the host.
template <class Cfg>
struct FwdKernelArgs {
  FwdParams params;
  typename Cfg::TmaLoadQ tma_q;
  typename Cfg::TmaLoadKV tma_k, tma_v;
  typename Cfg::TmaStoreO tma_o;

  // Fetches the descriptors into the descriptor cache while the barriers are set up: a CTA's
  // first TMA of each kind would otherwise wait for its fetch (one CTA per tile on causal calls).
  __device__ void prefetch_descriptors() const {
    cute::prefetch_tma_descriptor(tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(tma_v.get_tma_descriptor());
    cute::prefetch_tma_descriptor(tma_o.get_tma_descriptor());
  }
};


// Ping-pong between consumer warpgroups: each waits for its turn before issuing GEMMs and hands
// the turn to the next after issuing them. Without kPingPong these do nothing.
template <class Cfg>
struct GemmTurns {
  int consumer;
  __device__ void start() const {  // the last consumer lets the first go first
    if constexpr (Cfg::kPingPong) {
      if (consumer == Cfg::kConsumers - 1) named_barrier_arrive(kSchedulerBarrier0, 256);
    }
  }
  __device__ void wait() const {
    if constexpr (Cfg::kPingPong) named_barrier_sync(kSchedulerBarrier0 + consumer, 256);
  }
  __device__ void pass() const {
    if constexpr (Cfg::kPingPong) named_barrier_arrive(kSchedulerBarrier0 + (consumer + 1) % Cfg::kConsumers, 256);
  }
};

// Persistent tiles for non-causal calls: their tiles are all alike, so CTA b taking every
// grid-th one balances, while causal tiles differ in length and one CTA per tile (the hardware
// handing out CTAs as multiprocessors free up) balances better than a static order. H200, bf16
// (docs/perf.md, session 5): non-causal +0-4%, causal -4% to -32% with the static persistent
// order. With kDynamicScheduler causal calls run persistent too, taking tiles from a counter.
template <class Cfg, bool kCausal>
constexpr bool persistent_grid() {
  return Cfg::kPersistent && (!kCausal || Cfg::kDynamicScheduler);
}

template <class Cfg, bool kCausal>
constexpr bool dynamic_tiles() {
  return persistent_grid<Cfg, kCausal>() && Cfg::kDynamicScheduler;
}

// The dynamic scheduler's tile index goes through shared memory beside Q: the producer writes it
// before the q_full arrive that announces Q, the consumers read it after waiting on q_full. Both
// as asm with memory clobbers, so neither moves across the barrier's (asm) wait or arrive.
__device__ __forceinline__ void store_shared_int(int* ptr, int value) {
  asm volatile("st.shared.b32 [%0], %1;" ::"r"(cute::cast_smem_ptr_to_uint(ptr)), "r"(value) : "memory");
}
__device__ __forceinline__ int load_shared_int(int* ptr) {
  int value;
  asm volatile("ld.shared.b32 %0, [%1];" : "=r"(value) : "r"(cute::cast_smem_ptr_to_uint(ptr)) : "memory");
  return value;
}

// Varlen's O store: the consumer's 128 threads copy its O rows (sO, written by stmatrix) to gO
// with 16-byte copies straight from shared memory (no staging fragment: 64 registers a thread at
// head dim 256), skipping rows at or past rows_left, which belong to the next sequence. sO is
// free again when this returns (every thread has read its part).
template <class Cfg, class SmemO, class GmemO>
__device__ __forceinline__ void store_rows_from_smem(SmemO const& sO, GmemO&& gO, int rows_left, int tidx,
                                                     int barrier) {
  named_barrier_sync(barrier, Cfg::kMmaThreads);  // every thread's stmatrix writes landed
  store_tile_rows_from_smem<typename Cfg::Element, Cfg::kHeadDim, Cfg::kMmaThreads>(sO, gO, rows_left, tidx);
  named_barrier_sync(barrier, Cfg::kMmaThreads);  // every thread has read its rows
}

template <class Cfg, bool kCausal>
__global__ void __launch_bounds__(Cfg::kNThreads, 1) fwd_kernel(const __grid_constant__ FwdKernelArgs<Cfg> args) {
  using Element = typename Cfg::Element;
  using PipelineKV = typename Cfg::PipelineKV;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  constexpr int kMmaRows = Cfg::kMmaRows;
  extern __shared__ __align__(1024) char smem_raw[];
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_raw);
  const FwdParams& params = args.params;

  // The tiles of this CTA: one (grid = tiles), or every gridDim.x-th from blockIdx.x (persistent).
  // body(tile index, iteration): iteration counts this CTA's tiles (the Q barriers' phases). The
  // static orders; with dynamic_tiles the producer draws tiles and the consumers read them
  // (causal: longest first across heads whose K and V share L2).
  constexpr bool kDynamic = dynamic_tiles<Cfg, kCausal>();
  const int section_heads =
      kDynamic && kCausal
          ? causal_section_heads(params.nheads, params.batch, int64_t(params.seqlen_k) * kHeadDim * 2 * sizeof(Element))
          : 1;
  const ForwardTileOrder order{ceil_div(params.seqlen_q, kBlockM), params.nheads, params.batch, kCausal, section_heads};
  // A tile's sequence lengths, and with varlen where its sequence's rows start.
  auto seqlens_of = [&](ForwardTile const& tile) { return SequenceLengthsFor<Cfg>(params, tile.batch); };
  // Varlen: a tile past its sequence's rows is skipped, by the producer and the consumers alike,
  // without counting as an iteration (the Q barriers' phases count the tiles computed).
  auto has_rows = [&](int t) {
    if constexpr (Cfg::kVarlen) {
      const ForwardTile tile = order.at(t);
      return has_query_rows(tile, kBlockM, seqlens_of(tile).seqlen_q);
    } else {
      return true;
    }
  };
  auto for_each_tile = [&](auto&& body) FLASHGEN_LAMBDA_INLINE {
    if constexpr (persistent_grid<Cfg, kCausal>()) {
      int iteration = 0;
      for (int t = blockIdx.x; t < order.num_tiles(); t += gridDim.x) {
        if (has_rows(t)) body(t, iteration++);
      }
    } else {
      const int t = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
      if (has_rows(t)) body(t, 0);
    }
  };
  // A tile's mask, from its sequence's lengths; its key_blocks() are the key blocks the tile
  // visits (none for causal rows above the diagonal's start, seqlen_q > seqlen_k).
  auto mask_of = [&](SequenceLengthsFor<Cfg> const& seqlens) { return make_mask<Cfg::kWindow>(seqlens, kCausal, params); };
  const int warpgroup = warpgroup_index();

  typename PipelineKV::Params pipe_params;
  pipe_params.transaction_bytes = Cfg::kKVStageBytes;
  pipe_params.role = warpgroup == 0 ? PipelineKV::ThreadCategory::Producer : PipelineKV::ThreadCategory::Consumer;
  pipe_params.is_leader = threadIdx.x == 0;
  pipe_params.num_consumers = Cfg::kConsumers * 128;
  if (threadIdx.x == 0) {
    args.prefetch_descriptors();
    smem.q_full.init(1);
    smem.q_empty.init(Cfg::kQEmptyArrivals);
    if constexpr (Cfg::kOInV) smem.o_read.init(Cfg::kConsumers);
  }
  PipelineKV pipeline_k(smem.pipeline_k, pipe_params, Shape<_1, _1, _1>{});
  PipelineKV pipeline_v(smem.pipeline_v, pipe_params, Shape<_1, _1, _1>{});
  __syncthreads();  // barriers initialized (the constructors fenced their init)

  // Consumer c's 64-row slice of the Q (or O) tiles.
  auto consumer_slice = [&](Element* tiles, int consumer) {
    return make_tensor(make_smem_ptr(tiles + consumer * cosize_v<typename Cfg::SmemLayoutQ>),
                       typename Cfg::SmemLayoutQ{});
  };
  // 64-row tiles of a head's queries: consumer c's rows of query block m are tile m * kConsumers + c.
  auto query_tiles = [&](auto const& tma, ForwardTile const& tile, SequenceLengthsFor<Cfg> const& seqlens) {
    if constexpr (Cfg::kVarlen) {
      return Cfg::Tma::template packed_row_tiles<kMmaRows>(tma, params.total_q, params.nheads, tile.head,
                                                           seqlens.start_q);
    } else {
      return Cfg::Tma::template row_tiles<kMmaRows>(tma, params.seqlen_q, params.nheads, params.batch, tile.head,
                                                    tile.batch);
    }
  };

  if (warpgroup == 0) {  // producer: one thread issues every load
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    if (threadIdx.x != 0) return;
    Tensor sK = make_tensor(make_smem_ptr(smem.k()), typename Cfg::SmemLayoutKVStages{});
    Tensor sV = make_tensor(make_smem_ptr(smem.v()), typename Cfg::SmemLayoutKVStages{});
    auto state = cutlass::make_producer_start_state<PipelineKV>();
    auto produce = [&](int t, int iteration) {
      const ForwardTile tile = order.at(t);
      const SequenceLengthsFor<Cfg> seqlens = seqlens_of(tile);
      const auto key_blocks = mask_of(seqlens).key_blocks(tile.m_block * kBlockM, kBlockM, kBlockN);
      const int head_kv = kv_head_of(params, tile.head);
      auto key_tiles = [&](auto const& tma) {
        if constexpr (Cfg::kVarlen) {
          return Cfg::Tma::template packed_row_tiles<kBlockN>(tma, params.total_k, params.nheads_kv, head_kv,
                                                              seqlens.start_k);
        } else {
          return Cfg::Tma::template row_tiles<kBlockN>(tma, params.seqlen_k, params.nheads_kv, params.batch, head_kv,
                                                       tile.batch);
        }
      };
      // (global key tile n, shared stage) partitions of K and V for the TMA unit.
      const auto k_parts = tma_partition(args.tma_k, group_modes<0, 2>(sK), group_modes<0, 2>(key_tiles(args.tma_k)));
      const auto v_parts = tma_partition(args.tma_v, group_modes<0, 2>(sV), group_modes<0, 2>(key_tiles(args.tma_v)));
      auto load_k = [&](int n) {
        pipeline_k.producer_acquire(state);
        copy(args.tma_k.with(*pipeline_k.producer_get_barrier(state)), get<0>(k_parts)(_, n),
             get<1>(k_parts)(_, state.index()));
      };
      auto load_v = [&](int n) {
        pipeline_v.producer_acquire(state);
        copy(args.tma_v.with(*pipeline_v.producer_get_barrier(state)), get<0>(v_parts)(_, n),
             get<1>(v_parts)(_, state.index()));
        ++state;
      };
      const int last = key_blocks.end - 1;
      const bool has_keys = last >= key_blocks.first;
      // O in V's ring: the previous tile's O stores must have read it before this tile's V lands
      // there. A tile without keys loads no V, and its consumers then reach their epilogue (and
      // o_read) on Q alone: wait before its Q, so o_read's phases never run two ahead of this.
      auto wait_for_o_read = [&] {
        if constexpr (Cfg::kOInV) {
          if (iteration > 0) smem.o_read.wait((iteration - 1) & 1);
        }
      };
      // The first K goes out before Q: persistent, it loads under the previous tile's epilogue.
      if (has_keys) load_k(last);
      else wait_for_o_read();
      // Q: its buffer holds the previous tile's O until the consumers' stores have read it.
      if (iteration > 0) smem.q_empty.wait((iteration - 1) & 1);
      if constexpr (kDynamic) store_shared_int(&smem.tile_index, t);
      smem.q_full.arrive_and_expect_tx(Cfg::kQBytes);
      Tensor gQ = query_tiles(args.tma_q, tile, seqlens);
      for (int c = 0; c < Cfg::kConsumers; ++c) {
        auto [tQgQ, tQsQ] = tma_partition(args.tma_q, group_modes<0, 2>(consumer_slice(smem.q(), c)), group_modes<0, 2>(gQ));
        copy(args.tma_q.with(reinterpret_cast<uint64_t&>(smem.q_full)), tQgQ(_, tile.m_block * Cfg::kConsumers + c),
             tQsQ);
      }
      if (has_keys) {
        wait_for_o_read();
        load_v(last);
      }
      for (int n = last - 1; n >= key_blocks.first; --n) {
        load_k(n);
        load_v(n);
      }
    };
    if constexpr (kDynamic) {
      int iteration = 0;
      for (int t = blockIdx.x; t < order.num_tiles();) {
        const int next = atomicAdd(params.tile_counter, 1) + int(gridDim.x);  // its latency hides under the loads
        if (has_rows(t)) produce(t, iteration++);  // (a skipped tile is never announced)
        t = next;
      }
      // No tile left: an index past the last, announced like a tile's (no Q follows it).
      if (iteration > 0) smem.q_empty.wait((iteration - 1) & 1);
      store_shared_int(&smem.tile_index, order.num_tiles());
      smem.q_full.arrive();
    } else {
      for_each_tile(produce);
    }
    return;
  }

  // Consumer warpgroup `consumer`: query rows [64 consumer, 64 consumer + 64) of each tile.
  cutlass::arch::warpgroup_reg_alloc<Cfg::kConsumerRegisters>();
  const int consumer = warpgroup - 1;
  const int tidx = threadIdx.x % 128;
#ifdef FLASHGEN_FWD_PIN_EXPS
  // (Experiment, session 17.) ptxas moves the P V wait above most of the softmax's exps (SASS at
  // 128: 0-28 of 66 before it; the exps then run after the GEMM instead of under it). A shared
  // store of a value that needs every exp (the row sums) stays before the wait, and with it the
  // exps: one byte per thread into a slot nothing reads.
  const uint32_t pin_address = uint32_t(__cvta_generic_to_shared(&smem.exp_pin[consumer * 128 + tidx]));
  auto pin_before_wait = [&](auto const& s) {
    float sum = 0.f;
    CUTE_UNROLL
    for (float row_sum : s.row_sum) sum += row_sum;
    asm volatile("st.shared.b8 [%0], %1;" ::"r"(pin_address), "r"(__float_as_uint(sum)) : "memory");
  };
#endif
  const GemmTurns<Cfg> turns{consumer};
  turns.start();

  Tensor sQ = consumer_slice(smem.q(), consumer);
  Tensor sO = consumer_slice(smem.o(), consumer);
  // With O outside Q's buffer, Q's buffer is free once this thread has waited for its last S GEMM.
  auto release_q_if_o_elsewhere = [&] {
    if constexpr (Cfg::kEarlyQRelease) smem.q_empty.arrive();
  };
  Tensor sK = make_tensor(make_smem_ptr(smem.k()), typename Cfg::SmemLayoutKVStages{});
  Tensor sVt = make_tensor(make_smem_ptr(smem.v()), typename Cfg::SmemLayoutVtStages{});
  typename Cfg::TiledMmaS mma_s;
  typename Cfg::TiledMmaO mma_o;
  auto thr_s = mma_s.get_thread_slice(tidx);
  auto thr_o = mma_o.get_thread_slice(tidx);
  // Q: shared-memory descriptors, or (kQInRegisters) registers filled at each tile's start.
  Tensor tSrQ = [&] {
    if constexpr (Cfg::kQInRegisters) return thr_s.partition_fragment_A(sQ);
    else return thr_s.make_fragment_A(thr_s.partition_A(sQ));
  }();
  auto load_q_into_registers = [&] {
    if constexpr (Cfg::kQInRegisters) {
      auto smem_copy_q = make_tiled_copy_A(Copy_Atom<SM75_U32x4_LDSM_N, Element>{}, mma_s);
      auto thr_copy_q = smem_copy_q.get_thread_slice(tidx);
      cute::copy(smem_copy_q, thr_copy_q.partition_S(sQ), thr_copy_q.retile_D(tSrQ));
    }
  };
  Tensor tSrK = thr_s.make_fragment_B(thr_s.partition_B(sK));    // (MMA, N, K, stage)
  Tensor tOrVt = thr_o.make_fragment_B(thr_o.partition_B(sVt));  // (MMA, N, K, stage)
  Tensor acc_o = partition_fragment_C(mma_o, Shape<Int<kMmaRows>, Int<kHeadDim>>{});
  Tensor acc_o_rows = make_tensor(acc_o.data(), accumulator_as_rows_cols(acc_o.layout()));
  Tensor tScS = thr_s.partition_C(make_identity_tensor(Shape<Int<kMmaRows>, Int<kBlockN>>{}));
  Tensor coords = make_tensor(tScS.data(), accumulator_as_rows_cols(tScS.layout()));
  Tensor tOcO = thr_o.partition_C(make_identity_tensor(Shape<Int<kMmaRows>, Int<kHeadDim>>{}));
  Tensor o_coords = make_tensor(tOcO.data(), accumulator_as_rows_cols(tOcO.layout()));
  constexpr int kRows = decltype(size<0>(acc_o_rows))::value;
  auto smem_copy_o = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, mma_o);
  auto thr_copy_o = smem_copy_o.get_thread_slice(tidx);

  using AccS = decltype(partition_fragment_C(mma_s, Shape<Int<kMmaRows>, Int<kBlockN>>{}));
  using PLayout = decltype(AccS{}.layout());
  Tensor p = make_tensor<Element>(PLayout{});  // the probabilities of the block whose P V is next
  Tensor tOrP = make_tensor(p.data(), accumulator_as_operand_a(p.layout()));
  cutlass::PipelineState<Cfg::kStages> k_read, v_read;  // continue from tile to tile, as the producer's

  auto consume = [&](int t, int iteration) FLASHGEN_LAMBDA_INLINE {  // (one call site, but large: keep it inline)
    const ForwardTile tile = order.at(t);
    const SequenceLengthsFor<Cfg> seqlens = seqlens_of(tile);
    const AttentionMask mask = mask_of(seqlens);
    const auto key_blocks = mask.key_blocks(tile.m_block * kBlockM, kBlockM, kBlockN);
    const int row0 = tile.m_block * kBlockM + consumer * kMmaRows;
    OnlineSoftmax<kRows> softmax;
    float correction[kRows];
    auto needs_mask = [&](int n) { return mask.tile_needs_mask(row0, kMmaRows, n * kBlockN, kBlockN); };

    // S = Q K_n^T, masked where the tile crosses the diagonal or the end of the keys, turned into
    // probabilities: the softmax of one block, after the caller waited for its GEMM.
    // kMasking: kMaskIfNeeded tests the tile at run time; kMasked / kUnmasked are steps of the
    // split loops below, which know.
    auto scores_to_probabilities = [&](AccS& acc_s, int n, auto is_first, auto masking) {
      constexpr MaskStep kMasking = decltype(masking)::value;
      Tensor scores = make_tensor(acc_s.data(), accumulator_as_rows_cols(acc_s.layout()));
      softcap_scores<Cfg::kSoftcap>(acc_s, params.softcap_scale);
      if (kMasking == MaskStep::kMasked ||
          (kMasking == MaskStep::kMaskIfNeeded && needs_mask(n)))
        mask.apply(scores, coords, row0, n * kBlockN);
      softmax.template exponentiate<decltype(is_first)::value, Cfg::kLazyRescale>(scores, params.softmax_scale_log2,
                                                                            correction);
    };

    if constexpr (!kDynamic) smem.q_full.wait(iteration & 1);  // (dynamic: waited for to read t)
    if (key_blocks.end > key_blocks.first) {
      load_q_into_registers();
      int n = key_blocks.end - 1;
      {  // the first block: its S alone
        AccS acc_s;
        pipeline_k.consumer_wait(k_read);
        turns.wait();
        issue_gemm_batch(mma_s, tSrQ, tSrK(_, _, _, k_read.index()), acc_s, /*zero_init=*/true);
        turns.pass();
        warpgroup_wait<0>();
        pipeline_k.consumer_release(k_read);
        ++k_read;
        if (n == key_blocks.first) release_q_if_o_elsewhere();
        scores_to_probabilities(acc_s, n, cute::true_type{}, kMaskIfNeededStep);
        convert_fragment_into(acc_s, p);
      }
      // Then S of the next block and P V of this one go out together, the softmax of the next
      // under the P V GEMM.
      // (Forced inline: with two or three copies of it, ptxas outlined it at d256 with softcap and
      // a window, a call with a 1,120-byte stack frame.)
      auto step = [&](auto is_first_pv, auto masking) FLASHGEN_LAMBDA_INLINE {
        constexpr bool kFirstPv = decltype(is_first_pv)::value;
        AccS acc_s;
        pipeline_k.consumer_wait(k_read);
        turns.wait();
        issue_gemm_batch(mma_s, tSrQ, tSrK(_, _, _, k_read.index()), acc_s, /*zero_init=*/true);
#ifndef FLASHGEN_FWD_RESCALE_AFTER_PV
        if (!kFirstPv) softmax.template rescale<Cfg::kLazyRescale>(acc_o_rows, correction);  // for the previous block's max
#endif
        pipeline_v.consumer_wait(v_read);
        issue_gemm_batch(mma_o, tOrP, tOrVt(_, _, _, v_read.index()), acc_o, /*zero_init=*/kFirstPv);
        turns.pass();
        warpgroup_wait<1>();  // S done
        pipeline_k.consumer_release(k_read);
        ++k_read;
        if (n - 1 == key_blocks.first) release_q_if_o_elsewhere();
        scores_to_probabilities(acc_s, n - 1, cute::false_type{}, masking);
#ifdef FLASHGEN_FWD_PIN_EXPS
        pin_before_wait(softmax);
#endif
        warpgroup_wait<0>();  // P V done: p and acc_o are free
        pipeline_v.consumer_release(v_read);
        ++v_read;
#ifdef FLASHGEN_FWD_RESCALE_AFTER_PV
        // (Experiment, session 15: O rescaled for this step's max here, outside the GEMM turn,
        // as FA4 orders it, instead of between the S and P V issues of the next step.)
        softmax.template rescale<Cfg::kLazyRescale>(acc_o_rows, correction);
#endif
        convert_fragment_into(acc_s, p);
        --n;
      };
      const bool single_block = n == key_blocks.first;
      if (!single_block) {
        step(cute::true_type{}, kMaskIfNeededStep);
        if constexpr (Cfg::kSplitMaskedSteps && !kCausal) {
          // The blocks that need a mask (the ragged end first, a window's start last) and those
          // that do not, each in a loop of their own, so the common step has no masking branch
          // between its two waits (the branch kept ptxas from starting the softmax before the
          // P V wait; docs/perf.md, sessions 11 and 12). The outer loop comes back for a
          // window's start. Causal instantiations keep one loop: the split lost 1-3% there.
          while (n > key_blocks.first) {
            while (n > key_blocks.first && needs_mask(n - 1)) step(cute::false_type{}, kMaskedStep);
            while (n > key_blocks.first && !needs_mask(n - 1)) step(cute::false_type{}, kUnmaskedStep);
          }
        } else {
          while (n > key_blocks.first) step(cute::false_type{}, kMaskIfNeededStep);
        }
#ifndef FLASHGEN_FWD_RESCALE_AFTER_PV
        softmax.template rescale<Cfg::kLazyRescale>(acc_o_rows, correction);
#endif
      }
      // P V of the last block alone.
      pipeline_v.consumer_wait(v_read);
      turns.wait();
      issue_gemm_batch(mma_o, tOrP, tOrVt(_, _, _, v_read.index()), acc_o, /*zero_init=*/single_block);
      turns.pass();
      warpgroup_wait<0>();
      pipeline_v.consumer_release(v_read);
      ++v_read;
    } else {
      release_q_if_o_elsewhere();
      clear(acc_o);  // rows that see no key: O = 0, lse = +inf (finish() with an empty sum)
      CUTE_UNROLL
      for (int mi = 0; mi < kRows; ++mi) softmax.row_max[mi] = -INFINITY, softmax.row_sum[mi] = 0.f;
    }

    float lse[kRows];
    softmax.finish(acc_o_rows, params.softmax_scale, lse);

    // Epilogue: O -> shared memory (this consumer's O slice, which is its Q slice unless
    // kSeparateO) by stmatrix -> TMA store; the TMA unit clips rows past seqlen_q. In Q's slice,
    // the rows are free for the next tile's Q once the store has read them; in O's own slice,
    // the next tile's epilogue waits for that before writing. Varlen: 16-byte stores instead,
    // stopping at the sequence's end; sO is free when store_rows_from_smem returns.
    if constexpr (Cfg::kSeparateO) {
      if (!Cfg::kVarlen && tidx == 0) tma_store_wait<0>();  // the previous tile's store has read sO
      named_barrier_sync(kEpilogueBarrier0 + consumer, 128);
    }
    if constexpr (Cfg::kOInV) {
      // Every consumer's last P V GEMM has read V's ring (a slice spans other consumers' stages);
      // the next tile's V waits for o_read, so nothing else writes there now.
      named_barrier_sync(kVFreeBarrier, Cfg::kConsumers * 128);
    }
    Tensor o = convert_fragment<Element>(acc_o);
    cute::copy(smem_copy_o, thr_copy_o.retile_S(o), thr_copy_o.partition_D(sO));
    if constexpr (Cfg::kVarlen) {
      const int block = tile.m_block * Cfg::kConsumers + consumer;
      Tensor gO = head_row_tiles_at<Element, kMmaRows, kHeadDim>(params.out, seqlens.q_row_base(params.out),
                                                                 tile.head, seqlens.seqlen_q, block);
      store_rows_from_smem<Cfg>(sO, gO, seqlens.seqlen_q - row0, tidx, kEpilogueBarrier0 + consumer);
      if constexpr (Cfg::kOInV) {
        // The next tile's V lands here by TMA (the async proxy) after these generic accesses:
        // every thread fences its own, and the barrier puts them all before thread 0's o_read.
        cutlass::arch::fence_view_async_shared();
        named_barrier_sync(kEpilogueBarrier0 + consumer, 128);
      }
    } else {
      cutlass::arch::fence_view_async_shared();  // st.matrix writes, read next by the TMA unit
      named_barrier_sync(kEpilogueBarrier0 + consumer, 128);
    }
    if (!Cfg::kVarlen && tidx == 0) {
      Tensor gO = query_tiles(args.tma_o, tile, seqlens);
      auto [tOgO, tOsO] = tma_partition(args.tma_o, group_modes<0, 2>(sO), group_modes<0, 2>(gO));
      copy(args.tma_o, tOsO, tOgO(_, tile.m_block * Cfg::kConsumers + consumer));
      tma_store_arrive();
    }
    if (get<1>(o_coords(0, 0)) == 0) {  // the thread holding column 0 of its rows writes their lse
      // Varlen: (nheads, total_q). (Fixed lengths from the mask's seqlen_q, a register, as before
      // varlen: lse_offset's params.seqlen_q changes the plain kernel's code.)
      float* lse_rows = params.lse + (Cfg::kVarlen ? seqlens.lse_offset(params, tile.head)
                                                   : (int64_t(tile.batch) * params.nheads + tile.head) * mask.seqlen_q);
      CUTE_UNROLL
      for (int mi = 0; mi < kRows; ++mi) {
        const int row = row0 + get<0>(o_coords(mi, 0));
        if (row < mask.seqlen_q) lse_rows[row] = lse[mi];
      }
    }
    // O sat in Q's buffer (q_empty) or V's ring (o_read): free it once the store has read this
    // consumer's rows. (O in tiles of its own needs no release.)
    if (!Cfg::kSeparateO && tidx == 0) {
      if constexpr (!Cfg::kVarlen) tma_store_wait<0>();
      (Cfg::kOInV ? smem.o_read : smem.q_empty).arrive();
    }
  };
  if constexpr (kDynamic) {
    for (int iteration = 0;; ++iteration) {
      smem.q_full.wait(iteration & 1);
      const int t = load_shared_int(&smem.tile_index);
      if (t >= order.num_tiles()) break;
      consume(t, iteration);
    }
  } else {
    for_each_tile(consume);
  }
  if (Cfg::kSeparateO && !Cfg::kVarlen && tidx == 0) tma_store_wait<0>();  // shared memory outlives the last store's reads
}

// Which calls a launch_fwd instantiation serves: both (one plan for causal and non-causal
// calls), or one of them (a plan with causal_block_m runs two configs, each compiling only the
// kernel it launches).
enum class FwdCalls { kBoth, kCausal, kNonCausal };

template <class Cfg, FwdCalls kCalls = FwdCalls::kBoth>
cudaError_t launch_fwd(const FwdParams& params, cudaStream_t stream) {
  using Element = typename Cfg::Element;
  // Varlen: descriptors of the whole packed tensors (TmaTensors::kernel_tensor); each tile
  // offsets its own rows.
  auto gmem = [&](const TensorArg& t, bool keys) {
    return Cfg::Tma::template kernel_tensor<Cfg::kVarlen>(t, params, keys);
  };
  const FwdKernelArgs<Cfg> args{
      params,
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.q, false), typename Cfg::SmemLayoutQ{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.k, true), typename Cfg::SmemLayoutKV{}),
      make_tma_copy(SM90_TMA_LOAD{}, gmem(params.v, true), typename Cfg::SmemLayoutKV{}),
      make_tma_copy(SM90_TMA_STORE{}, gmem(params.out, false), typename Cfg::SmemLayoutQ{}),
  };
  const int m_blocks = ceil_div(params.seqlen_q, Cfg::kBlockM);
  if (m_blocks == 0 || params.nheads == 0 || params.batch == 0) return cudaSuccess;  // no query rows (varlen: all empty)
  dim3 grid(m_blocks, params.nheads, params.batch);
  if (params.causal ? persistent_grid<Cfg, true>() : persistent_grid<Cfg, false>()) {
    // One CTA per multiprocessor (a CTA takes a whole one).
    const int64_t tiles = int64_t(m_blocks) * params.nheads * params.batch;
    grid = dim3(unsigned(std::min<int64_t>(tiles, device_multiprocessors())), 1, 1);
  }
  if (params.causal ? dynamic_tiles<Cfg, true>() : dynamic_tiles<Cfg, false>()) {
    const cudaError_t err = cudaMemsetAsync(params.tile_counter, 0, sizeof(int), stream);  // tiles drawn so far
    if (err != cudaSuccess) return err;
  }
  // Only the kernels this instantiation may launch are instantiated (compiled).
  auto kernel = [&] {
    if constexpr (kCalls == FwdCalls::kCausal) return &fwd_kernel<Cfg, true>;
    else if constexpr (kCalls == FwdCalls::kNonCausal) return &fwd_kernel<Cfg, false>;
    else return params.causal ? &fwd_kernel<Cfg, true> : &fwd_kernel<Cfg, false>;
  }();
  return launch_with_smem(kernel, grid, Cfg::kNThreads, Cfg::kSmemBytes, stream, args);
}

}  // namespace flashgen::sm90
