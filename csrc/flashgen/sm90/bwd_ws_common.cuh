// What the two warp-specialized sm90 backwards share (bwd_ws_kernel.cuh: the consumers split the
// keys; bwd_ws_split_kernel.cuh: they split the head dim): the kernel's arguments and the setup
// of the TMA pipelines that carry Q and dO with their row statistics.
#pragma once
#include <cute/arch/copy_sm90_desc.hpp>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "flashgen/params.h"

namespace flashgen::sm90 {

// What the kernel takes: the parameters and the TMA descriptors built from them on the host.
template <class Cfg>
struct BwdWsKernelArgs {
  BwdParams params;
  typename Cfg::TmaLoadQ tma_q, tma_do;
  typename Cfg::TmaLoadK tma_k, tma_v;
  typename Cfg::TmaStoreK tma_dk, tma_dv;  // unused with GQA (fp32 stores per query head) and varlen

  // Fetches the load descriptors into the descriptor cache while the barriers are set up, so the
  // first TMA of each kind does not wait for it (one thread).
  __device__ void prefetch_descriptors() const {
    cute::prefetch_tma_descriptor(tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(tma_do.get_tma_descriptor());
    cute::prefetch_tma_descriptor(tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(tma_v.get_tma_descriptor());
  }
};

// A Q (or dO) pipeline's parameters: each stage lands one tile with its lse_log2 (D) rows,
// `stage_bytes` in all; warpgroup 0 produces (thread 0 arms the barriers), `consumers` threads
// consume.
template <class Pipeline>
__device__ __forceinline__ typename Pipeline::Params query_pipeline_params(uint32_t stage_bytes, int consumers) {
  typename Pipeline::Params p;
  p.transaction_bytes = stage_bytes;
  p.role = threadIdx.x < 128 ? Pipeline::ThreadCategory::Producer : Pipeline::ThreadCategory::Consumer;
  p.is_leader = threadIdx.x == 0;
  p.num_consumers = consumers;
  return p;
}

// A consumer thread's release of `state`'s stage to this CTA's producer. A pipeline built for one
// CTA (cluster shape 1) makes every consumer thread arrive on the empty barrier of the cluster's
// CTA 0, which is its own CTA when launched alone but the partner's for CTA 1 of a cluster pair
// (the first run of the ds_exchange backward hung so at its second query block). kInCluster:
// arrive on this CTA's barrier, the same one arrival per consumer thread the pipeline counts.
template <bool kInCluster, class Pipeline, class State>
__device__ __forceinline__ void release_stage(Pipeline& pipeline, typename Pipeline::SharedStorage& storage,
                                              State const& state) {
  if constexpr (kInCluster) storage.empty_barrier_[state.index()].arrive();
  else pipeline.consumer_release(state);
}

}  // namespace flashgen::sm90
