// Helpers every kernel family shares: integer and fragment arithmetic, the reductions over the
// 4 lanes that hold one accumulator row, GQA head mapping and launching with large shared memory.
#pragma once
#include <cuda_runtime.h>

#include <cute/tensor.hpp>
#include <cutlass/array.h>
#include <cutlass/numeric_conversion.h>

namespace flashgen {
using namespace cute;

// Placed after a lambda's parameter list: inline it at every call site even when it has several
// (ptxas otherwise may outline a large mainloop step into a call with a stack frame).
#define FLASHGEN_LAMBDA_INLINE __attribute__((always_inline))

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The K/V head that query head `head` reads (GQA/MQA: nheads / nheads_kv query heads share one).
template <class Params>
__device__ __forceinline__ int kv_head_of(const Params& params, int head) {
  return head / (params.nheads / params.nheads_kv);
}

// Dynamic shared memory one CTA may opt into on the current device.
inline int device_smem_optin() {
  int device = 0, bytes = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  return bytes;
}

// Multiprocessors of the current device (a persistent grid takes one CTA per multiprocessor).
inline int device_multiprocessors() {
  int device = 0, count = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
  return count > 0 ? count : 1;
}

// Programmatic dependent launch (compute capability 9.0+): a kernel launched with it may start
// while the kernel before it in the stream is still running; before its first access to memory
// that kernel writes, it calls wait_for_previous_grid(), which returns once that kernel has
// finished and its writes are visible (at once when the launch was an ordinary one).
inline cudaLaunchAttribute programmatic_launch_attribute() {
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  return attribute;
}

__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// This CTA lets the next kernel in the stream start (if that one is a programmatic launch) once
// every CTA of this kernel has said so or exited: called early, the next kernel's CTAs take the
// multiprocessors this kernel's last wave frees, instead of waiting for the whole grid to end.
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// Launch `kernel` with `smem_bytes` of dynamic shared memory, opting in above the 48 KB default;
// `programmatic`: as a programmatic dependent launch (above).
template <class Kernel, class Params>
cudaError_t launch_with_smem(Kernel kernel, dim3 grid, int threads, int smem_bytes, cudaStream_t stream,
                             const Params& params, bool programmatic = false) {
  if (smem_bytes > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (err != cudaSuccess) return err;
  }
  if (!programmatic) {
    kernel<<<grid, threads, smem_bytes, stream>>>(params);
    return cudaGetLastError();
  }
  cudaLaunchAttribute attribute = programmatic_launch_attribute();
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, params);
  return err != cudaSuccess ? err : cudaGetLastError();  // as the plain launch reports
}

// src's registers converted to dst's type, element for element (same size, any layouts).
template <class Src, class Dst>
__device__ __forceinline__ void convert_fragment_into(Src const& src, Dst& dst) {
  using From = typename Src::value_type;
  using To = typename Dst::value_type;
  constexpr int kN = decltype(size(src))::value;
  static_assert(kN == decltype(size(dst))::value, "one destination register per source register");
  cutlass::NumericArrayConverter<To, From, kN> convert;
  *reinterpret_cast<cutlass::Array<To, kN>*>(dst.data()) =
      convert(*reinterpret_cast<cutlass::Array<From, kN> const*>(src.data()));
}

template <class To, class Engine, class Layout>
__device__ __forceinline__ auto convert_fragment(Tensor<Engine, Layout> const& src) {
  Tensor dst = make_tensor<To>(src.layout());
  convert_fragment_into(src, dst);
  return dst;
}

// Reductions over the 4 threads (a "quad") that share a row of an m16n8 accumulator.
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 2);
  return x + __shfl_xor_sync(0xffffffff, x, 1);
}

}  // namespace flashgen
