// Kernel parameters shared by the binding (host, torch) and the kernels (device, no torch).
// Strides are in elements; the last (head_dim) dimension of every tensor is contiguous.
#pragma once
#include <cstdint>

namespace flashgen {

// One (batch, seqlen, heads, head_dim) tensor as the kernels see it.
struct TensorArg {
  void* ptr;
  int64_t batch_stride;
  int64_t row_stride;   // between consecutive sequence positions
  int64_t head_stride;
};

struct FwdParams {
  TensorArg q, k, v, out;
  float* lse;           // (batch, nheads, seqlen_q), natural log; +inf for rows that see no key
  int batch, nheads, nheads_kv, seqlen_q, seqlen_k;
  float softmax_scale;
  float softmax_scale_log2;  // softmax_scale * log2(e): the kernels exponentiate with exp2
  bool causal;               // bottom-right aligned: query i sees keys j <= i + seqlen_k - seqlen_q
  // Sliding window (read by kernels built with the window feature): query i sees keys j with
  // i + seqlen_k - seqlen_q - window_left <= j <= i + seqlen_k - seqlen_q + window_right;
  // -1 is unbounded (common/mask.cuh).
  int window_left, window_right;
  // Softcap (read by kernels built with the softcap feature, common/softcap.cuh): raw scores S
  // become tanh(S * softcap_scale) with softcap_scale = scale / softcap, and softmax_scale and
  // softmax_scale_log2 above are then softcap and softcap * log2(e) (the softmax's scale of the
  // capped scores, as FlashAttention does it).
  float softcap_scale;
  // One int of scratch for forwards that hand out tiles dynamically (the sm90 forward's
  // dynamic_scheduler option); the launcher zeroes it.
  int* tile_counter;
  // Variable-length batches (kernels built with the varlen feature, common/seqlen.cuh): batch
  // sequences packed along one dimension, sequence b being rows cu_seqlens_q[b]:cu_seqlens_q[b+1]
  // of q and out and cu_seqlens_k[b]:cu_seqlens_k[b+1] of k and v (int32, batch + 1 entries);
  // q, k, v, out then describe (1, total, heads, head_dim) tensors (batch_stride unused),
  // seqlen_q/seqlen_k are the longest sequences (grid sizing only) and lse is (nheads, total_q).
  // nullptr for fixed-length calls. (Last, so the fixed-length kernels' parameter offsets stay.)
  const int* cu_seqlens_q;
  const int* cu_seqlens_k;
  int total_q, total_k;
};

// Backward. dQ is accumulated in fp32 by atomics into dq_accum (zeroed by the preprocess):
// dq_splits slices of dq_split_stride floats, each batch x nheads x ceil(seqlen_q / block_m)
// tiles of block_m x head_dim in the order the kernel's BwdConfig describes. Without
// deterministic mode there is one split, and every key block's CTA adds into it. In
// deterministic mode the launcher runs the key blocks dq_splits at a time (at most one split
// per key block): split s receives key blocks s, s + dq_splits, ... one launch after another,
// and the postprocess sums the splits in a fixed order. The launcher's
// postprocess writes dq (input dtype, scaled). dK, dV: without GQA (nheads == nheads_kv) the
// kernel writes dk, dv in the input dtype and dk_accum = dv_accum = nullptr; with GQA it
// writes dk_accum, dv_accum per *query* head as fp32, (batch, seqlen_k, nheads, head_dim)
// contiguous, and the caller sums the heads that share a kv head and converts.
// softmax_d is rowsum(dO * O) and lse_log2 is lse * log2(e), both filled by the launcher's
// preprocess per (batch, head) in whole block_m-row tiles (padded_rows = ceil(seqlen_q /
// block_m) * block_m rows each): padding rows hold D = 0 and lse_log2 = +inf (P = 0 there), so
// a kernel may copy a whole tile's rows with one bulk copy.
struct BwdParams {
  TensorArg q, k, v, out, dout, dq, dk, dv;  // dk, dv unused when dk_accum is set
  const float* lse;      // (batch, nheads, seqlen_q) from the forward
  float* softmax_d;      // (batch, nheads, padded_rows) scratch
  float* lse_log2;       // (batch, nheads, padded_rows) scratch
  float* dq_accum;
  int64_t dq_split_stride;  // 0 when dq_splits == 1
  int dq_splits;
  bool deterministic;
  int n_block_offset;       // the first key block of a launch (set by the launcher)
  float* dk_accum;
  float* dv_accum;
  int batch, nheads, nheads_kv, seqlen_q, seqlen_k;
  float softmax_scale;       // the call's scale: dQ and dK are scaled by it (softcap or not)
  float softmax_scale_log2;  // the probabilities' exponent scale: as FwdParams's (softcap * log2(e) with softcap)
  bool causal;
  int window_left, window_right;  // as FwdParams's
  float softcap_scale;            // as FwdParams's
  // Varlen as FwdParams's: q, out, dout, dq (total_q rows) and k, v, dk, dv (total_k rows) are
  // packed, lse is (nheads, total_q). softmax_d, lse_log2 are (nheads, padded_total) and each
  // dQ split nheads * padded_total * head_dim floats, padded_total = (total_q / block_m + batch)
  // * block_m: sequence b's whole tiles start at row (cu_seqlens_q[b] / block_m + b) * block_m
  // (common/seqlen.cuh). GQA's dk_accum, dv_accum are (total_k, nheads, head_dim).
  const int* cu_seqlens_q;
  const int* cu_seqlens_k;
  int total_q, total_k;
};

}  // namespace flashgen
