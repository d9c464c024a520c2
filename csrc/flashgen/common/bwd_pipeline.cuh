// What every backward kernel shares around its main kernel: the dQ accumulator's order, the row
// statistics' layout, the pieces of the FlashAttention-2 step that the sm80 and the first sm90
// backward both run (a key block's tiles, the rows' LSE and D, P and dS from S and dP, dK and dV
// out), the preprocess (D, lse_log2, zeroed dQ accumulator), the dQ postprocess, and the launch
// sequence with deterministic mode's splits. A main kernel fits it by adding dQ in
// DqAccumulatorOrder with its Cfg::TiledMmadQ fragments over Cfg::kDqThreads threads.
#pragma once
#include <type_traits>

#include <cuda_runtime.h>

#include <cute/tensor.hpp>

#include "flashgen/common/copies.cuh"
#include "flashgen/common/seqlen.cuh"
#include "flashgen/common/softcap.cuh"
#include "flashgen/common/utils.cuh"
#include "flashgen/params.h"

namespace flashgen {
using namespace cute;

// dQ's fp32 accumulator: one contiguous kBlockM x kHeadDim tile per (split, batch, head,
// query block), kept in the dQ GEMM's *thread order*: fragment element i of thread t sits at
// (i / kVec) * kNThreads * kVec + t * kVec + i % kVec. For one i a warp's atomics cover
// 32 * kVec consecutive floats (whole 32-byte sectors, half the L2 atomic traffic of the
// row-major layout, whose sectors were half used), the addresses are compile-time offsets
// from one base, and rows past seqlen_q need no predicate (they add zeros into the padding).
// Only the main kernel (which adds) and the postprocess (which reads back with the same
// tiled MMA) know it. kVec, the floats per atomic: 4 for the sm90-only kernels (which pass it,
// so host code sees their order too); 0 takes it from the compile target, 4 on sm90 and 1
// before (the sm80 family is built for both).
template <int kBlockM, int kHeadDim, int kNThreads, int kVec = 0>
struct DqAccumulatorOrder {
  static_assert(kVec == 0 || kVec == 1 || kVec == 4);
  static constexpr int kDqTileElems = kBlockM * kHeadDim;
  static constexpr int kDqFragElems = kDqTileElems / kNThreads;
  CUTE_HOST_DEVICE static constexpr int dq_vec() {
    if constexpr (kVec != 0) {
      return kVec;
    } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      return 4;
#else
      return 1;
#endif
    }
  }
  CUTE_HOST_DEVICE static constexpr int dq_offset(int i, int tidx) {
    return (i / dq_vec()) * (kNThreads * dq_vec()) + tidx * dq_vec() + i % dq_vec();
  }
  static_assert(kDqFragElems % 4 == 0, "each thread's dQ fragment must split into float4s");

  // Add thread tidx's dQ GEMM fragment into its accumulator tile (fp32 atomics: other key
  // blocks add into the same tile).
  template <class Frag>
  __device__ static void add_fragment(float* tile, Frag const& acc_dq, int tidx) {
    static_assert(decltype(size(acc_dq))::value == kDqFragElems);
    if constexpr (dq_vec() == 4) {
      CUTE_UNROLL
      for (int i = 0; i < kDqFragElems; i += 4) {
        atomicAdd(reinterpret_cast<float4*>(tile + dq_offset(i, tidx)),
                  make_float4(acc_dq(i), acc_dq(i + 1), acc_dq(i + 2), acc_dq(i + 3)));
      }
    } else {
      CUTE_UNROLL
      for (int i = 0; i < kDqFragElems; ++i) atomicAdd(tile + dq_offset(i, tidx), acc_dq(i));
    }
  }
};

// An accumulator fragment of `mma`, converted to the input dtype, out to the (rows, head_dim)
// global tile `out` through the shared tile `stage` (free when called): 16-byte row stores,
// rows at or past rows_left skipped. `stage_as_c`: the same tile as `mma`'s C sees it (`stage`
// itself, or its transposed view for a GEMM that computes the transposed tile).
template <class Cfg, class Mma, class Frag, class StageAsC, class Stage, class Out>
__device__ __forceinline__ void store_fragment_via_smem(Mma const& mma, Frag const& frag, StageAsC&& stage_as_c,
                                                        Stage&& stage, Out&& out, int rows_left, int tidx) {
  using Element = typename Cfg::Element;
  auto smem_copy = make_tiled_copy_C(Copy_Atom<AutoVectorizingCopyWithAssumedAlignment<32>, Element>{}, mma);
  auto thr_copy = smem_copy.get_thread_slice(tidx);
  cute::copy(smem_copy, thr_copy.retile_S(convert_fragment<Element>(frag)), thr_copy.partition_D(stage_as_c));
  __syncthreads();
  typename Cfg::Gmem::Store gmem_store;
  auto thr_store = gmem_store.get_thread_slice(tidx);
  Tensor tg = thr_store.partition_D(out);
  Tensor tr = make_fragment_like(tg);
  cute::copy(gmem_store, thr_store.partition_S(stage), tr);
  store_rows(gmem_store, tr, tg, thr_store.partition_D(make_identity_tensor(shape(out))), rows_left);
}
template <class Cfg, class Mma, class Frag, class Stage, class Out>
__device__ __forceinline__ void store_fragment_via_smem(Mma const& mma, Frag const& frag, Stage&& stage, Out&& out,
                                                        int rows_left, int tidx) {
  store_fragment_via_smem<Cfg>(mma, frag, stage, stage, out, rows_left, tidx);
}

// Key block n_block of head `head`, batch `batch`, as a backward CTA sees it: every query block
// of Q and dO ((kBlockM, head_dim, m_block) tiles), its own K and V tiles (of the kv head), the
// rows' LSE and D, and the dQ accumulator tiles of split `split`.
template <class QueryTiles, class KeyTile>
struct BackwardBlock {
  QueryTiles q, dout;
  KeyTile k, v;
  const float* lse;
  const float* softmax_d;
  float* dq_tiles;
};

// seqlens: the batch entry's lengths and offsets (common/seqlen.cuh).
template <class Cfg, class SequenceLengths>
__device__ __forceinline__ auto backward_block_for(const BwdParams& params, SequenceLengths const& seqlens, int n_block,
                                                   int head, int split) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  const int head_kv = kv_head_of(params, head);
  auto query_tiles = [&](const TensorArg& t) {
    return head_row_tiles_at<Element, kBlockM, kHeadDim>(t, seqlens.q_row_base(t), head, seqlens.seqlen_q_of(params), _);
  };
  auto key_tile = [&](const TensorArg& t) {
    return head_row_tiles_at<Element, kBlockN, kHeadDim>(t, seqlens.k_row_base(t), head_kv, seqlens.seqlen_k_of(params), n_block);
  };
  // (Offsets in the order the fixed-length kernel computed them before varlen: the same code.)
  const int64_t lse_rows = seqlens.lse_offset(params, head);  // the forward's
  const int m_blocks = seqlens.template query_blocks<kBlockM>(params);
  return BackwardBlock<decltype(query_tiles(params.q)), decltype(key_tile(params.k))>{
      query_tiles(params.q), query_tiles(params.dout), key_tile(params.k), key_tile(params.v),
      params.lse + lse_rows, params.softmax_d + seqlens.template padded_rows_offset<kBlockM>(params, head),
      params.dq_accum + split * params.dq_split_stride +
          seqlens.template dq_tiles_offset<kBlockM, Cfg::kDqTileElems>(params, head, m_blocks)};
}

template <class Cfg>
__device__ __forceinline__ auto backward_block(const BwdParams& params, int n_block, int head, int batch, int split) {
  return backward_block_for<Cfg>(params, FixedSequenceLengths(params, batch), n_block, head, split);
}

// This thread's score rows' LSE (times log2(e), as the exp2 wants it) and D. Rows past
// seqlen_q (zero-filled Q, dO) get lse = +inf, so P = 0 there.
template <int kRows, class Coords>
__device__ __forceinline__ void load_row_stats(Coords const& coords, const float* lse, const float* softmax_d,
                                               int row0, int rows_left, float (&lse_log2)[kRows],
                                               float (&d_row)[kRows]) {
  CUTE_UNROLL
  for (int mi = 0; mi < kRows; ++mi) {
    const int row = get<0>(coords(mi, 0));
    const bool in_range = row < rows_left;
    lse_log2[mi] = in_range ? lse[row0 + row] * float(M_LOG2E) : INFINITY;
    d_row[mi] = in_range ? softmax_d[row0 + row] : 0.f;
  }
}

// In a (rows, cols) view: P = exp2(S * scale * log2(e) - LSE * log2(e)) replaces the scores.
template <int kRows, class Scores>
__device__ __forceinline__ void probabilities(Scores& scores, const float (&lse_log2)[kRows], float scale_log2) {
  CUTE_UNROLL
  for (int mi = 0; mi < kRows; ++mi) {
    CUTE_UNROLL
    for (int ni = 0; ni < size<1>(scores); ++ni) scores(mi, ni) = exp2f(scores(mi, ni) * scale_log2 - lse_log2[mi]);
  }
}

// In (rows, cols) views: P = exp2(S * scale * log2(e) - LSE * log2(e)) replaces the scores,
// dS = P * (dP - D) replaces dP. kSoftcap with `capped`: the scores are t = tanh(x) (common/
// softcap.cuh) and dS takes the factor 1 - t^2.
template <bool kSoftcap = false, int kRows, class Scores, class Grads>
__device__ __forceinline__ void probabilities_and_score_grads(Scores& scores, Grads& dp, const float (&lse_log2)[kRows],
                                                              const float (&d_row)[kRows], float scale_log2,
                                                              bool capped = false) {
  CUTE_UNROLL
  for (int mi = 0; mi < kRows; ++mi) {
    CUTE_UNROLL
    for (int ni = 0; ni < size<1>(scores); ++ni) {
      const float t = scores(mi, ni);
      const float p = exp2f(t * scale_log2 - lse_log2[mi]);
      const float ds = p * (dp(mi, ni) - d_row[mi]);
      if constexpr (kSoftcap) dp(mi, ni) = capped ? ds * softcap_derivative(t) : ds;
      else dp(mi, ni) = ds;
      scores(mi, ni) = p;
    }
  }
}

// With GQA the kernels write dK and dV as fp32 per query head into dk_accum and dv_accum,
// (batch, seqlen_k, nheads, head_dim), which the caller sums over the heads that share a kv
// head: here the kRows rows from key `key0` of this thread's fragments (thr: its slice of the
// dK/dV MMA), rows past seqlen_k skipped.
// rows_before: the accumulator rows before this batch entry's (a sequence-lengths object's
// dkv_accum_rows_before(); varlen: (total_k, nheads, head_dim)).
template <int kRows, int kHeadDim, class ThrMma, class Acc>
__device__ __forceinline__ void store_dk_dv_per_query_head_at(const BwdParams& params, ThrMma const& thr,
                                                              Acc const& acc_dk, Acc const& acc_dv,
                                                              int64_t rows_before, int head, int seqlen_k, int key0) {
  auto accum_tile = [&](float* base) {
    const int64_t row_stride = int64_t(params.nheads) * kHeadDim;
    Tensor rows = make_tensor(make_gmem_ptr(base + rows_before * row_stride + head * kHeadDim),
                              make_shape(seqlen_k, Int<kHeadDim>{}), make_stride(row_stride, _1{}));
    return local_tile(rows, Shape<Int<kRows>, Int<kHeadDim>>{}, make_coord(key0 / kRows, 0));
  };
  Tensor coords = thr.partition_C(make_identity_tensor(Shape<Int<kRows>, Int<kHeadDim>>{}));
  Tensor tdKgdK = thr.partition_C(accum_tile(params.dk_accum));
  Tensor tdVgdV = thr.partition_C(accum_tile(params.dv_accum));
  const int rows_left = seqlen_k - key0;
  CUTE_UNROLL
  for (int i = 0; i < size(acc_dk); ++i) {
    if (get<0>(coords(i)) < rows_left) {
      tdKgdK(i) = acc_dk(i);
      tdVgdV(i) = acc_dv(i);
    }
  }
}

template <int kRows, int kHeadDim, class ThrMma, class Acc>
__device__ __forceinline__ void store_dk_dv_per_query_head(const BwdParams& params, ThrMma const& thr, Acc const& acc_dk,
                                                           Acc const& acc_dv, int batch, int head, int seqlen_k,
                                                           int key0) {
  store_dk_dv_per_query_head_at<kRows, kHeadDim>(params, thr, acc_dk, acc_dv, int64_t(batch) * seqlen_k, head,
                                                 seqlen_k, key0);
}

// dK (scaled by softmax_scale here) and dV of key block n_block out. Without GQA in the input
// dtype through shared memory (K's and V's tiles sK, sV: this waits until every warp is done
// reading them) as 16-byte row stores; with GQA as fp32 per query head into dk_accum and
// dv_accum, (batch, seqlen_k, nheads, head_dim), which the caller sums over the heads.
template <class Cfg, class Mma, class Acc, class SmemK, class SmemV, class SequenceLengths>
__device__ __forceinline__ void store_dk_dv_for(const BwdParams& params, SequenceLengths const& seqlens,
                                                Mma const& mma_dkv, Acc& acc_dk, Acc const& acc_dv, SmemK&& sK,
                                                SmemV&& sV, int head, int n_block, int tidx) {
  using Element = typename Cfg::Element;
  constexpr int kBlockN = Cfg::kBlockN, kHeadDim = Cfg::kHeadDim;
  const int k_rows_left = seqlens.seqlen_k_of(params) - n_block * kBlockN;
  CUTE_UNROLL
  for (int i = 0; i < size(acc_dk); ++i) acc_dk(i) *= params.softmax_scale;
  if (params.dk_accum != nullptr) {
    store_dk_dv_per_query_head_at<kBlockN, kHeadDim>(params, mma_dkv.get_thread_slice(tidx), acc_dk, acc_dv,
                                                     seqlens.dkv_accum_rows_before(), head, seqlens.seqlen_k_of(params),
                                                     n_block * kBlockN);
    return;
  }
  auto out_tile = [&](const TensorArg& out) {
    return head_row_tiles_at<Element, kBlockN, kHeadDim>(out, seqlens.k_row_base(out), head,
                                                         seqlens.seqlen_k_of(params), n_block);
  };
  __syncthreads();  // every warp is done reading K and V
  store_fragment_via_smem<Cfg>(mma_dkv, acc_dk, sK, out_tile(params.dk), k_rows_left, tidx);
  store_fragment_via_smem<Cfg>(mma_dkv, acc_dv, sV, out_tile(params.dv), k_rows_left, tidx);
}

template <class Cfg, class Mma, class Acc, class SmemK, class SmemV>
__device__ __forceinline__ void store_dk_dv(const BwdParams& params, Mma const& mma_dkv, Acc& acc_dk, Acc const& acc_dv,
                                            SmemK&& sK, SmemV&& sV, int batch, int head, int n_block, int tidx) {
  store_dk_dv_for<Cfg>(params, FixedSequenceLengths(params, batch), mma_dkv, acc_dk, acc_dv, sK, sV, head, n_block,
                       tidx);
}

// Whether the sm90 backwards launch their main kernel and dQ postprocess as programmatic dependent
// launches (common/utils.cuh). (Experiment, session 17: FA4 launches its sm90 backward's main
// kernel so; the main kernel's start-up (barriers, descriptors, K and V loads) then overlaps the
// preprocess's end.)
#ifdef FLASHGEN_BWD_PDL
inline constexpr bool kBwdProgrammaticLaunch = true;
#else
inline constexpr bool kBwdProgrammaticLaunch = false;
#endif

// D[row] = sum_d dO[row, d] * O[row, d] and lse_log2[row] = lse[row] * log2(e), over whole
// block_m tiles (padding rows: D = 0, lse_log2 = +inf), and zeros for the dQ accumulator (every
// split), so no separate memset runs. One CTA per preprocess_rows<Cfg>() rows; a row's 16-byte
// pieces go to a group of neighbouring lanes, summed by shuffles in a fixed order (deterministic
// mode needs D bit-identical run to run), and the group's first lane writes the row. A
// memory-bound pass over O and dO: few large CTAs with vector loads (a warp per row with 2-byte
// loads launched 8x the CTAs and spent its time in their start-up at short sequences).
constexpr int kPreprocessThreads = 256;

template <class Cfg>
constexpr int preprocess_rows() {
  constexpr int kLowestBit = Cfg::kBlockM & -Cfg::kBlockM;  // the largest power of two dividing block_m
  return kLowestBit < 64 ? kLowestBit : 64;
}

// How the preprocess's threads split kRows rows of kHeadDim elements of kElementBytes into
// 16-byte pieces: each row gets a group of kLanesPerRow lanes (its piece count rounded up to a
// power of two, at most 32, so a group sits inside one warp); slot s is row s / kLanesPerRow,
// piece s % kLanesPerRow of it (none for the round-up's extra lanes); thread t takes slots t,
// t + kPreprocessThreads, ... (tests/cpu/host_checks.cu checks the mapping).
template <int kRows, int kHeadDim, int kElementBytes>
struct PreprocessPieces {
  static constexpr int kPieceElems = 16 / kElementBytes;
  static constexpr int kPiecesPerRow = kHeadDim / kPieceElems;
  static constexpr int kLanesPerRow = kPiecesPerRow <= 1 ? 1 : 2 * (1 << (31 - __builtin_clz(kPiecesPerRow - 1)));
  static constexpr int kSlots = kRows * kLanesPerRow;
  static_assert(kHeadDim % kPieceElems == 0 && kLanesPerRow <= 32 && kSlots % 32 == 0);
  CUTE_HOST_DEVICE static constexpr int row(int slot) { return slot / kLanesPerRow; }
  CUTE_HOST_DEVICE static constexpr int piece(int slot) { return slot % kLanesPerRow; }  // >= kPiecesPerRow: none
  CUTE_HOST_DEVICE static constexpr int first_element(int slot) { return piece(slot) * kPieceElems; }
};

template <class Cfg>
__global__ void __launch_bounds__(kPreprocessThreads) bwd_preprocess_kernel(const BwdParams params) {
  using Element = typename Cfg::Element;
  constexpr int kHeadDim = Cfg::kHeadDim, kRows = preprocess_rows<Cfg>();
  using Pieces = PreprocessPieces<kRows, kHeadDim, int(sizeof(Element))>;
  static_assert(Cfg::kBlockM % kRows == 0 && kRows * kHeadDim % 4 == 0);
  if constexpr (kBwdProgrammaticLaunch) allow_dependent_launch();  // the main kernel waits for our writes itself
  const int row0 = blockIdx.x * kRows;
  const int head = blockIdx.y, batch = blockIdx.z;
  const SequenceLengthsFor<Cfg> seqlens(params, batch);
  if constexpr (has_varlen_feature<Cfg>()) {
    // The grid covers the longest sequence's tiles; this sequence owns ceil(seqlen_q / block_m).
    if (row0 >= ceil_div(seqlens.seqlen_q, Cfg::kBlockM) * Cfg::kBlockM) return;
  }
  // The accumulator holds whole block_m-row tiles: this CTA zeroes rows [row0, row0 + kRows) of
  // that padded range, in its (batch, head) slice of each split (the order inside a tile does
  // not matter for zeros).
  const int m_blocks = seqlens.template query_blocks<Cfg::kBlockM>(params);
  float* zero_base = params.dq_accum +
                     seqlens.template dq_tiles_offset<Cfg::kBlockM, Cfg::kDqTileElems>(params, head, m_blocks) +
                     int64_t(row0) * kHeadDim;
  for (int split = 0; split < params.dq_splits; ++split) {
    float4* dst = reinterpret_cast<float4*>(zero_base + split * params.dq_split_stride);
    for (int i = threadIdx.x; i < kRows * kHeadDim / 4; i += kPreprocessThreads) dst[i] = make_float4(0, 0, 0, 0);
  }

  const int seqlen_q = seqlens.seqlen_q_of(params);
  const int64_t stats_row0 = seqlens.template padded_rows_offset<Cfg::kBlockM>(params, head) + row0;
  auto row_ptr = [&](const TensorArg& t, int row) {
    return static_cast<const Element*>(t.ptr) + seqlens.q_row_base(t) + head * t.head_stride + row * t.row_stride;
  };
  CUTE_UNROLL
  for (int first = 0; first < Pieces::kSlots; first += kPreprocessThreads) {
    const int slot = first + threadIdx.x;
    if (first + threadIdx.x / 32 * 32 >= Pieces::kSlots) break;  // a whole warp past the end
    const int local_row = Pieces::row(slot), row = row0 + local_row;
    float sum = 0.f;
    if (Pieces::piece(slot) < Pieces::kPiecesPerRow && row < seqlen_q) {
      const int col = Pieces::first_element(slot);
      const uint4 o_bits = *reinterpret_cast<const uint4*>(row_ptr(params.out, row) + col);
      const uint4 do_bits = *reinterpret_cast<const uint4*>(row_ptr(params.dout, row) + col);
      const Element* o = reinterpret_cast<const Element*>(&o_bits);
      const Element* dout = reinterpret_cast<const Element*>(&do_bits);
      CUTE_UNROLL
      for (int i = 0; i < Pieces::kPieceElems; ++i) sum += float(o[i]) * float(dout[i]);
    }
    CUTE_UNROLL
    for (int offset = Pieces::kLanesPerRow / 2; offset > 0; offset /= 2) {
      sum += __shfl_xor_sync(0xffffffff, sum, offset);
    }
    if (Pieces::piece(slot) == 0) {
      const bool real = row < seqlen_q;
      params.softmax_d[stats_row0 + local_row] = real ? sum : 0.f;
      params.lse_log2[stats_row0 + local_row] =
          real ? params.lse[seqlens.lse_offset(params, head) + row] * float(M_LOG2E) : INFINITY;
    }
  }
}

// The postprocess's shared staging tile for dQ: a Cfg's SmemLayoutDqStage where the dQ GEMM's
// column split needs narrower swizzle atoms than Q's tile (the sm90 warp-specialized backward
// at head dim 96: 48 columns per consumer), else its Q tile.
template <class Cfg, class = void>
struct DqStageLayout {
  using type = typename Cfg::SmemLayoutQ;
};
template <class Cfg>
struct DqStageLayout<Cfg, std::void_t<typename Cfg::SmemLayoutDqStage>> {
  using type = typename Cfg::SmemLayoutDqStage;
};

// Whether a Cfg's dQ GEMM computes dQ^T (head_dim, queries): its kDqTransposed
// (sm90/bwd_ws_kernel.cuh), else false.
template <class Cfg, class = void>
struct DqIsTransposed : std::false_type {};
template <class Cfg>
struct DqIsTransposed<Cfg, std::void_t<decltype(Cfg::kDqTransposed)>> : std::bool_constant<Cfg::kDqTransposed> {};

// dQ = softmax_scale * (the sum over splits of the thread-ordered accumulator), in the input
// dtype. One CTA per (query block, head, batch) with the main kernel's dQ GEMM thread count, so
// thread t reads back exactly the elements thread t of each main CTA's dQ GEMM added. Splits (deterministic
// mode) are summed in a fixed order.
template <class Cfg>
__global__ void __launch_bounds__(Cfg::kDqThreads) bwd_dq_postprocess_kernel(const BwdParams params) {
  using Element = typename Cfg::Element;
  constexpr int kBlockM = Cfg::kBlockM, kHeadDim = Cfg::kHeadDim;
  const int m_block = blockIdx.x, head = blockIdx.y, batch = blockIdx.z, tidx = threadIdx.x;
  const SequenceLengthsFor<Cfg> seqlens(params, batch);
  if constexpr (has_varlen_feature<Cfg>()) {
    if (m_block * kBlockM >= seqlens.seqlen_q) return;  // past this sequence's rows
  }
  if constexpr (kBwdProgrammaticLaunch) wait_for_previous_grid();  // the main kernel's dQ sums
  const float* tile = params.dq_accum + seqlens.template dq_tile_offset<kBlockM, Cfg::kDqTileElems>(params, head, m_block);
  typename Cfg::TiledMmadQ mma_dq;
  constexpr bool kTransposed = DqIsTransposed<Cfg>::value;
  using TileShape = std::conditional_t<kTransposed, Shape<Int<kHeadDim>, Int<kBlockM>>, Shape<Int<kBlockM>, Int<kHeadDim>>>;
  Tensor acc_dq = partition_fragment_C(mma_dq, TileShape{});  // the main kernel's order
  static_assert(decltype(size(acc_dq))::value == Cfg::kDqFragElems);
  // All of one split's loads before any add: they are independent, so they overlap in flight
  // (a loop over a runtime split count around each element had kept one load in flight).
  auto add_split = [&](int split, bool first) {
    const float* src = tile + split * params.dq_split_stride;
    CUTE_UNROLL
    for (int i = 0; i < Cfg::kDqFragElems; i += Cfg::dq_vec()) {
      if constexpr (Cfg::dq_vec() == 4) {
        const float4 v = *reinterpret_cast<const float4*>(src + Cfg::dq_offset(i, tidx));
        acc_dq(i) = first ? v.x : acc_dq(i) + v.x;
        acc_dq(i + 1) = first ? v.y : acc_dq(i + 1) + v.y;
        acc_dq(i + 2) = first ? v.z : acc_dq(i + 2) + v.z;
        acc_dq(i + 3) = first ? v.w : acc_dq(i + 3) + v.w;
      } else {
        const float v = src[Cfg::dq_offset(i, tidx)];
        acc_dq(i) = first ? v : acc_dq(i) + v;
      }
    }
  };
  add_split(0, true);
  for (int split = 1; split < params.dq_splits; ++split) add_split(split, false);
  CUTE_UNROLL
  for (int i = 0; i < Cfg::kDqFragElems; ++i) acc_dq(i) *= params.softmax_scale;
  __shared__ __align__(128) Element stage[Cfg::kQTileBytes / sizeof(Element)];
  Tensor gdQ = head_row_tiles_at<Element, kBlockM, kHeadDim>(params.dq, seqlens.q_row_base(params.dq), head,
                                                             seqlens.seqlen_q_of(params), m_block);
  using StageLayout = typename DqStageLayout<Cfg>::type;
  static_assert(cosize_v<StageLayout> * sizeof(Element) <= Cfg::kQTileBytes, "dQ's staging tile fits `stage`");
  Tensor sdQ = make_tensor(make_smem_ptr(stage), StageLayout{});  // (queries, head_dim)
  // The dQ GEMM's view of it: sdQ itself, or (head_dim, queries) for a dQ^T GEMM.
  auto sdQ_as_c = [&] {
    if constexpr (!kTransposed) {
      return sdQ;
    } else {
      return make_tensor(sdQ.data(), composition(StageLayout{}, make_layout(TileShape{}, GenRowMajor{})));
    }
  }();
  store_fragment_via_smem<Cfg>(mma_dq, acc_dq, sdQ_as_c, sdQ, gdQ, seqlens.seqlen_q_of(params) - m_block * kBlockM,
                               tidx);
}

// Key blocks whose CTAs share one dQ split in deterministic mode, and whose count a launch's grid
// rounds up to: a Cfg's kClusterKeyBlocks (the sm90 head-dim-split backward's cluster pairs add
// disjoint dQ columns, so a pair needs one split), else 1.
template <class Cfg, class = void>
struct ClusterKeyBlocks : std::integral_constant<int, 1> {};
template <class Cfg>
struct ClusterKeyBlocks<Cfg, std::void_t<decltype(Cfg::kClusterKeyBlocks)>>
    : std::integral_constant<int, Cfg::kClusterKeyBlocks> {};

// The backward's launches: the preprocess (D, lse_log2, zeroed dQ accumulator), the main kernel
// (one CTA per key block; deterministic mode launches dq_splits key blocks at a time, block
// n_block_offset + s adding into split s (with cluster pairs: pair s into split s), and
// launches on a stream run in order, so each split receives its key blocks in the same order
// on every run), the dQ postprocess. Any main kernel that adds dQ in Cfg's DqAccumulatorOrder
// with Cfg::TiledMmadQ's fragments fits: launch_main(launch_params, grid) launches it over grid =
// (key blocks, heads, batches).
// kProgrammatic: the dQ postprocess goes out as a programmatic dependent launch (its launch and
// start-up overlap the main kernel's end); main kernels that take one pass it to their own
// launches in launch_main, and call wait_for_previous_grid() before reading what the preprocess
// (or an earlier deterministic launch) writes.
template <class Cfg, bool kProgrammatic = false, class LaunchMain>
cudaError_t launch_bwd_pipeline(const BwdParams& params, cudaStream_t stream, LaunchMain&& launch_main) {
  static_assert(!kProgrammatic || kBwdProgrammaticLaunch, "the postprocess waits for the main kernel only with the flag");
  const int padded_rows = ceil_div(params.seqlen_q, Cfg::kBlockM) * Cfg::kBlockM;
  // Varlen: the grids cover the longest sequences (params.seqlen_q/k), which may be empty: no
  // query rows skips the pre- and postprocess (the main kernel still writes dK = dV = 0), no
  // keys the main kernel (the postprocess still writes dQ = 0).
  constexpr bool kVarlen = has_varlen_feature<Cfg>();
  const bool has_rows = !kVarlen || padded_rows > 0;
  if (has_rows) {
    bwd_preprocess_kernel<Cfg><<<dim3(padded_rows / preprocess_rows<Cfg>(), params.nheads, params.batch),
                                 kPreprocessThreads, 0, stream>>>(params);
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const int n_blocks = ceil_div(params.seqlen_k, Cfg::kBlockN);
  constexpr int kCluster = ClusterKeyBlocks<Cfg>::value;  // a launch's key blocks come in whole clusters
  // Deterministic: dq_splits CTAs per head fill the GPU once (binding.cpp); with clusters that
  // is dq_splits / kCluster clusters, one split each (the other splits stay zero).
  const int per_launch = params.deterministic ? max(1, params.dq_splits / kCluster) * kCluster : n_blocks;
  for (int first = 0; first < n_blocks; first += per_launch) {
    BwdParams launch_params = params;
    launch_params.n_block_offset = first;
    const int blocks = ceil_div(min(per_launch, n_blocks - first), kCluster) * kCluster;
    err = launch_main(launch_params, dim3(blocks, params.nheads, params.batch));
    if (err != cudaSuccess) return err;
  }
  if (has_rows) {
    return launch_with_smem(&bwd_dq_postprocess_kernel<Cfg>, dim3(ceil_div(params.seqlen_q, Cfg::kBlockM), params.nheads,
                            params.batch), Cfg::kDqThreads, 0, stream, params, kProgrammatic);
  }
  return cudaGetLastError();
}

// A launch_main for kernels that take the parameters as they are.
template <class Cfg, class Kernel>
auto launch_kernel_with_params(Kernel non_causal, Kernel causal, cudaStream_t stream) {
  return [=](const BwdParams& launch_params, dim3 grid) {
    return launch_with_smem(launch_params.causal ? causal : non_causal, grid, Cfg::kNThreads, Cfg::kSmemBytes, stream,
                            launch_params);
  };
}

}  // namespace flashgen
