// Two CTAs of a cluster pair talking through distributed shared memory (sm_90a): the launch with
// a (2, 1, 1) cluster, a bulk copy from this CTA's shared memory into the partner's that
// completes on the partner's transaction barrier, and the barrier both CTAs pass before either
// exits (a CTA's shared memory must outlive every access the partner makes to it).
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include <cute/arch/cluster_sm90.hpp>
#include <cute/arch/copy_sm90_desc.hpp>

#include "flashgen/common/utils.cuh"

namespace flashgen::sm90 {

// The shared::cluster address, in CTA `rank` of this cluster, of what sits at `local` in this
// CTA's shared memory (the partner's copy of the same member of the shared-storage struct).
__device__ __forceinline__ uint32_t peer_smem_address(const void* local, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
               : "=r"(remote)
               : "r"(cute::cast_smem_ptr_to_uint(local)), "r"(rank));
  return remote;
}

// `bytes` (a multiple of 16, both addresses 16-byte aligned) from this CTA's `src` to CTA
// `rank`'s `dst` (given as this CTA's address of the same member), by the bulk-copy engine;
// completes `bytes` transactions on CTA `rank`'s `barrier` (likewise given as this CTA's). The
// source may be rewritten only once the receiver says it has the data.
__device__ __forceinline__ void copy_to_peer(void* dst, const void* src, uint32_t bytes, const void* barrier,
                                             uint32_t rank) {
  asm volatile(
      "cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
          peer_smem_address(dst, rank)),
      "r"(cute::cast_smem_ptr_to_uint(src)), "r"(bytes), "r"(peer_smem_address(barrier, rank))
      : "memory");
}

// Every thread of both CTAs, once, before any of them exits: the partner's last remote arrives
// and copies into this CTA's shared memory are done.
__device__ __forceinline__ void leave_cluster() {
  cute::cluster_arrive();
  cute::cluster_wait();
}

// Launch `kernel` over `grid` (x a multiple of 2) in clusters of two CTAs along x; `programmatic`:
// as a programmatic dependent launch (common/utils.cuh).
template <class Kernel, class Args>
cudaError_t launch_cluster_pairs(Kernel kernel, dim3 grid, int threads, int smem_bytes, cudaStream_t stream,
                                 const Args& args, bool programmatic = false) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  if (err != cudaSuccess) return err;
  cudaLaunchAttribute attributes[2];
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = 2;
  attributes[0].val.clusterDim.y = 1;
  attributes[0].val.clusterDim.z = 1;
  attributes[1] = programmatic_launch_attribute();
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = programmatic ? 2 : 1;
  return cudaLaunchKernelEx(&config, kernel, args);
}

}  // namespace flashgen::sm90
