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
};

}  // namespace flashgen
