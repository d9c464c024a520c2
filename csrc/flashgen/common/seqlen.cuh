// The sequence lengths a kernel sees for one batch entry: kernels ask this object, not the
// params, so that variable-length batches (cu_seqlens) change one place.
#pragma once
#include <cute/config.hpp>

namespace flashgen {

// Every batch entry has the same lengths (the (batch, seqlen, heads, head_dim) layout).
struct FixedSequenceLengths {
  int seqlen_q, seqlen_k;

  template <class Params>
  CUTE_HOST_DEVICE FixedSequenceLengths(Params const& params, int /*batch*/)
      : seqlen_q(params.seqlen_q), seqlen_k(params.seqlen_k) {}
};

}  // namespace flashgen
