// The sequence lengths a kernel sees for one batch entry, and where that entry's rows sit in the
// tensors and scratch buffers: kernels ask this object, not the params, so that variable-length
// batches (cu_seqlens) change one place. Two types with one interface:
//   FixedSequenceLengths   (batch, seqlen, heads, head_dim) tensors, every entry the same lengths;
//   VarlenSequenceLengths  FlashAttention-2's packed layout: (1, total, heads, head_dim) tensors,
//                          entry b is rows cu_seqlens[b]:cu_seqlens[b+1] (params.h).
// A kernel picks one by its Cfg's kVarlen (SequenceLengthsFor<Cfg>).
#pragma once
#include <type_traits>

#include <cute/config.hpp>
#include "flashgen/common/utils.cuh"

#include "flashgen/params.h"

namespace flashgen {

// Every batch entry has the same lengths (the (batch, seqlen, heads, head_dim) layout).
struct FixedSequenceLengths {
  int seqlen_q, seqlen_k;
  int batch;

  template <class Params>
  CUTE_HOST_DEVICE FixedSequenceLengths(Params const& params, int batch_)
      : seqlen_q(params.seqlen_q), seqlen_k(params.seqlen_k), batch(batch_) {}

  // The lengths at a point of use: read from the params there, as the kernels did before
  // varlen (a register copy taken once changes the fixed-length kernels' code: the params are
  // reloaded after stores).
  template <class Params>
  CUTE_HOST_DEVICE int seqlen_q_of(Params const& params) const { return params.seqlen_q; }
  template <class Params>
  CUTE_HOST_DEVICE int seqlen_k_of(Params const& params) const { return params.seqlen_k; }

  // Where this entry's rows of t start (elements; the head's offset is added by the caller).
  CUTE_HOST_DEVICE int64_t q_row_base(const TensorArg& t) const { return batch * t.batch_stride; }
  CUTE_HOST_DEVICE int64_t k_row_base(const TensorArg& t) const { return batch * t.batch_stride; }

  // The forward's lse rows of (this entry, head): (batch, nheads, seqlen_q).
  template <class Params>
  CUTE_HOST_DEVICE int64_t lse_offset(Params const& params, int head) const {
    return (int64_t(batch) * params.nheads + head) * params.seqlen_q;
  }

  // The backward's row statistics (softmax_d, lse_log2) of (this entry, head): whole
  // kBlockM-row tiles per (batch, head), ceil(seqlen_q / kBlockM) of them.
  template <int kBlockM>
  CUTE_HOST_DEVICE int64_t padded_rows_offset(const BwdParams& params, int head) const {
    return (int64_t(batch) * params.nheads + head) * (ceil_div(params.seqlen_q, kBlockM) * kBlockM);
  }
  // Query blocks of this entry: ceil(seqlen_q / kBlockM).
  template <int kBlockM, class Params>
  CUTE_HOST_DEVICE int query_blocks(Params const& params) const { return ceil_div(params.seqlen_q, kBlockM); }
  // The first dQ accumulator tile of (this entry, head) (kTileElems = kBlockM * head_dim floats
  // each); the same rows as padded_rows_offset, times head_dim. m_blocks: query_blocks().
  template <int kBlockM, int kTileElems>
  CUTE_HOST_DEVICE int64_t dq_tiles_offset(const BwdParams& params, int head, int m_blocks) const {
    return (int64_t(batch) * params.nheads + head) * m_blocks * kTileElems;
  }
  // Its query block m_block's tile.
  template <int kBlockM, int kTileElems>
  CUTE_HOST_DEVICE int64_t dq_tile_offset(const BwdParams& params, int head, int m_block) const {
    return ((int64_t(batch) * params.nheads + head) * ceil_div(params.seqlen_q, kBlockM) + m_block) * kTileElems;
  }
  // The rows before this entry's in the GQA fp32 dK/dV accumulators ((batch, seqlen_k, nheads, d)).
  CUTE_HOST_DEVICE int64_t dkv_accum_rows_before() const { return int64_t(batch) * seqlen_k; }
};

// Sequences packed along one dimension (FlashAttention-2's varlen): entry b is rows
// [cu_seqlens_q[b], cu_seqlens_q[b+1]) of q, out, dout, dq and [cu_seqlens_k[b],
// cu_seqlens_k[b+1]) of k, v, dk, dv; params.seqlen_q/k are the longest (grid sizing only).
struct VarlenSequenceLengths {
  int seqlen_q, seqlen_k;
  int batch;
  int start_q, start_k;  // cu_seqlens_q[batch], cu_seqlens_k[batch]

  template <class Params>
  CUTE_HOST_DEVICE VarlenSequenceLengths(Params const& params, int batch_)
      : batch(batch_), start_q(params.cu_seqlens_q[batch_]), start_k(params.cu_seqlens_k[batch_]) {
    seqlen_q = params.cu_seqlens_q[batch_ + 1] - start_q;
    seqlen_k = params.cu_seqlens_k[batch_ + 1] - start_k;
  }

  template <class Params>
  CUTE_HOST_DEVICE int seqlen_q_of(Params const&) const { return seqlen_q; }
  template <class Params>
  CUTE_HOST_DEVICE int seqlen_k_of(Params const&) const { return seqlen_k; }

  CUTE_HOST_DEVICE int64_t q_row_base(const TensorArg& t) const { return int64_t(start_q) * t.row_stride; }
  CUTE_HOST_DEVICE int64_t k_row_base(const TensorArg& t) const { return int64_t(start_k) * t.row_stride; }

  // lse is (nheads, total_q), as FlashAttention-2's varlen returns it.
  template <class Params>
  CUTE_HOST_DEVICE int64_t lse_offset(Params const& params, int head) const {
    return int64_t(head) * params.total_q + start_q;
  }

  // Whole kBlockM-row tiles per sequence without overlap (FlashAttention-2's): sequence b's
  // start at (cu_q[b] / kBlockM + b) * kBlockM, and each head holds padded_total rows:
  // (cu_q[b+1] / B + 1) - cu_q[b] / B >= ceil(len_b / B) tiles lie between two starts.
  template <int kBlockM>
  CUTE_HOST_DEVICE static int64_t padded_total(int total_q, int batch_count) {
    return (int64_t(total_q) / kBlockM + batch_count) * kBlockM;
  }
  template <int kBlockM>
  CUTE_HOST_DEVICE int64_t padded_start() const {
    return (int64_t(start_q) / kBlockM + batch) * kBlockM;
  }
  template <int kBlockM>
  CUTE_HOST_DEVICE int64_t padded_rows_offset(const BwdParams& params, int head) const {
    return head * padded_total<kBlockM>(params.total_q, params.batch) + padded_start<kBlockM>();
  }
  template <int kBlockM, class Params>
  CUTE_HOST_DEVICE int query_blocks(Params const&) const { return ceil_div(seqlen_q, kBlockM); }
  template <int kBlockM, int kTileElems>
  CUTE_HOST_DEVICE int64_t dq_tiles_offset(const BwdParams& params, int head, int /*m_blocks*/) const {
    return padded_rows_offset<kBlockM>(params, head) / kBlockM * kTileElems;
  }
  template <int kBlockM, int kTileElems>
  CUTE_HOST_DEVICE int64_t dq_tile_offset(const BwdParams& params, int head, int m_block) const {
    return (padded_rows_offset<kBlockM>(params, head) / kBlockM + m_block) * kTileElems;
  }
  // GQA fp32 dK/dV accumulators: (total_k, nheads, d).
  CUTE_HOST_DEVICE int64_t dkv_accum_rows_before() const { return start_k; }
};

// Whether a kernel's plan (or a config that forwards it as kVarlen) is built with the varlen
// feature: kernels.yaml's `varlen` renders kVarlen = 1 in the tile struct.
template <class Plan, class = void>
struct VarlenFeature : std::false_type {};
template <class Plan>
struct VarlenFeature<Plan, std::void_t<decltype(Plan::kVarlen)>> : std::bool_constant<Plan::kVarlen != 0> {};
template <class Plan>
constexpr bool has_varlen_feature() { return VarlenFeature<Plan>::value; }

// The sequence-lengths type of a kernel config (or plan).
template <class Cfg>
using SequenceLengthsFor = std::conditional_t<has_varlen_feature<Cfg>(), VarlenSequenceLengths, FixedSequenceLengths>;

}  // namespace flashgen
