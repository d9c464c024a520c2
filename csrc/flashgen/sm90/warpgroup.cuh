// Warpgroup MMA (wgmma) building blocks every sm90 kernel shares: issuing and waiting for
// batches, the accumulator's register views, and publishing shared memory to the tensor cores.
#pragma once
#include <type_traits>

#include <cute/arch/copy_sm90.hpp>
#include <cute/tensor.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/cutlass.h>

namespace flashgen::sm90 {
using namespace cute;

// This thread's warpgroup, through cutlass::canonical_warp_group_idx (lane 0's value by a
// shuffle), which ptxas knows is warp-uniform, so shared-memory addresses and GMMA descriptors
// derived from it live in uniform registers instead of the thread's own (docs/perf.md: with
// threadIdx.x / 128 the d256 forward's step had no register free for the softmax but P's (session
// 12), and the backward moved every wgmma descriptor by R2UR (session 13)).
__device__ __forceinline__ int warpgroup_index() { return cutlass::canonical_warp_group_idx(); }

// setmaxnreg's split of the 64K registers between the producer warpgroup and kConsumers consumer
// warpgroups, as a kernel's tile struct gives it (Plan::kProducerRegisters, kConsumerRegisters:
// gen/families.py _SM90_REGISTER_SPLIT, the one table): checked here against what setmaxnreg
// takes and the register file holds.
template <int kConsumers, int kProducer, int kConsumer>
constexpr bool check_register_split() {
  static_assert(kConsumers >= 1 && kConsumers <= 3, "1 to 3 consumer warpgroups");
  static_assert(kProducer % 8 == 0 && kConsumer % 8 == 0 && kProducer >= 24 && kConsumer <= 256,
                "setmaxnreg takes multiples of 8 from 24 to 256");
  static_assert(128 * (kProducer + kConsumers * kConsumer) <= 65536, "register file");
  return true;
}

// A wgmma accumulator fragment ((2, 2, N/8), MMA_M, MMA_N) viewed as this thread's
// (rows, cols): ((2, MMA_M), (2, N/8, MMA_N)). Lane l of a warp holds rows l/4 and l/4 + 8 of
// its warp's 16, columns 2(l%4) + {0, 1} of each 8, like sm80's m16n8: the same quad reductions
// serve the softmax.
template <class AccLayout>
CUTE_HOST_DEVICE auto accumulator_as_rows_cols(AccLayout const& acc) {
  static_assert(decltype(rank<0>(acc))::value == 3, "expects a wgmma accumulator layout");
  return make_layout(make_layout(get<0, 1>(acc), get<1>(acc)),
                     make_layout(get<0, 0>(acc), get<0, 2>(acc), get<2>(acc)));
}

// The registers of a 64 x N accumulator, converted to 16 bits, are the A operand of a
// 64 x * x N register-sourced wgmma: ((2, 2, N/8), MMA_M, MMA_N) -> ((2, 2, 2), MMA_M, N/16),
// each k step of 16 taking two adjacent 8-column groups.
template <class AccLayout>
CUTE_HOST_DEVICE auto accumulator_as_operand_a(AccLayout const& acc) {
  static_assert(decltype(size<2>(acc))::value == 1, "one wgmma along N per accumulator");
  auto cols = logical_divide(get<0, 2>(acc), Layout<_2>{});  // (2, N/16)
  return make_layout(make_layout(get<0, 0>(acc), get<0, 1>(acc), get<0>(cols)), get<1>(acc), get<1>(cols));
}

// Issue acc (+)= A B over every k step into the warpgroup's current wgmma batch (the caller
// fences the accumulators, calls warpgroup_arrive() before the first issue of a batch, then
// commits and waits). zero_init: the first step overwrites acc instead of adding to it.
template <class TiledMma, class FragA, class FragB, class Acc>
__device__ __forceinline__ void issue_wgmma(TiledMma& mma, FragA const& a, FragB const& b, Acc& acc, bool zero_init) {
  mma.accumulate_ = zero_init ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
  CUTE_UNROLL
  for (int k = 0; k < size<2>(a); ++k) {
    cute::gemm(mma, a(_, _, k), b(_, _, k), acc);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
}

// acc (+)= A B as one wgmma batch of this warpgroup, committed but not waited for: the caller
// waits with warpgroup_wait<N>() (N: batches it lets run on) before reading acc or changing A.
template <class TiledMma, class FragA, class FragB, class Acc>
__device__ __forceinline__ void issue_gemm_batch(TiledMma& mma, FragA& a, FragB const& b, Acc& acc, bool zero_init) {
  constexpr bool kRegisterA = !is_same_v<typename FragA::engine_type::iterator, GMMA::DescriptorIterator>;
  if constexpr (kRegisterA) warpgroup_fence_operand(a);
  warpgroup_fence_operand(acc);
  warpgroup_arrive();
  issue_wgmma(mma, a, b, acc, zero_init);
  warpgroup_commit_batch();
  warpgroup_fence_operand(acc);
}

// acc (+)= A B as one wgmma batch per warpgroup, waited for. A may be registers (RS) or
// shared-memory descriptors (SS).
template <class TiledMma, class FragA, class FragB, class Acc>
__device__ __forceinline__ void warpgroup_gemm(TiledMma& mma, FragA& a, FragB const& b, Acc& acc, bool zero_init) {
  issue_gemm_batch(mma, a, b, acc, zero_init);
  warpgroup_wait<0>();
  warpgroup_fence_operand(acc);
  if constexpr (!is_same_v<typename FragA::engine_type::iterator, GMMA::DescriptorIterator>) warpgroup_fence_operand(a);
}

// One thread's stmatrix (x4, 16-bit) writes into a swizzled shared-memory tile of several
// buffers, as 32-bit shared addresses computed once for buffer 0. Buffer b lies b * buffer_bytes
// further, a whole number of swizzle periods, so each swizzled address moves by that offset.
// (cute::copy through the tile's layout re-swizzled 64-bit pointers on every call: 33
// instructions a step in the 128 backward's loop.) Dst: the thread's partition of buffer 0 by the
// stmatrix tiled copy, ((8 values, kCalls), 1, 1); store's src: its retile_S of the registers.
template <class Dst>
__host__ __device__ constexpr int stsm_calls() {
  using Shape0 = decltype(shape<0>(std::declval<Dst>()));
  static_assert(is_tuple<Shape0>::value && decltype(size<0>(Shape0{}))::value == 8 &&
                    decltype(size<1>(std::declval<Dst>()) * size<2>(std::declval<Dst>()))::value == 1,
                "a thread's stmatrix destinations as ((8 values, calls), 1, 1)");
  return decltype(size<1>(Shape0{}))::value;
}

// Whether a CuTe stmatrix atom (x4, 16-bit) stores its matrices transposed.
template <class Atom>
CUTE_HOST_DEVICE constexpr bool stsm_is_transposed() {
  static_assert(std::is_same_v<Atom, SM90_U32x4_STSM_N> || std::is_same_v<Atom, SM90_U16x8_STSM_T>,
                "an x4 stmatrix atom: SM90_U32x4_STSM_N or SM90_U16x8_STSM_T");
  return std::is_same_v<Atom, SM90_U16x8_STSM_T>;
}

// Atom: the stmatrix whose tiled copy partitioned Dst (plain, or .trans for SM90_U16x8_STSM_T).
template <int kCalls, class Atom = SM90_U32x4_STSM_N>
struct StsmDestinations {
  uint32_t address[kCalls];
  uint32_t buffer_bytes;

  template <class Dst>
  __device__ __forceinline__ StsmDestinations(Dst const& buffer0, uint32_t bytes_per_buffer)
      : buffer_bytes(bytes_per_buffer) {
    CUTE_UNROLL
    for (int j = 0; j < kCalls; ++j) {
      address[j] = cast_smem_ptr_to_uint(&buffer0(make_coord(0, j), 0, 0));
      asm volatile("" : "+r"(address[j]));  // computed here: NVVM would sink it back into the loop
    }
  }

  template <class Src>
  __device__ __forceinline__ void store(Src const& src, int buffer) const {
    const uint32_t offset = uint32_t(buffer) * buffer_bytes;
    CUTE_UNROLL
    for (int j = 0; j < kCalls; ++j) {
      Tensor r = recast<uint32_t>(src(make_coord(_, j), 0, 0));
      if constexpr (stsm_is_transposed<Atom>()) {
        asm volatile("stmatrix.sync.aligned.x4.trans.m8n8.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(address[j] + offset),
                     "r"(r(0)), "r"(r(1)), "r"(r(2)), "r"(r(3)));
      } else {
        asm volatile("stmatrix.sync.aligned.x4.m8n8.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(address[j] + offset),
                     "r"(r(0)), "r"(r(1)), "r"(r(2)), "r"(r(3)));
      }
    }
  }
};

// Shared memory written by threads (cp.async, st.shared) is read by wgmma through the async
// proxy: each writer fences, then a barrier publishes the data to every warpgroup.
__device__ __forceinline__ void publish_smem_writes_to_wgmma() {
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
}

// Named barriers between warpgroups (id 0 is __syncthreads'): a producer's arrive orders its
// earlier shared-memory writes before the consumer's sync returns; neither waits for the other
// warpgroup's other work. num_threads counts both sides.
constexpr int kExchangeBarrier = 1;  // sm90 backward: warpgroup 1's dP - D for warpgroup 0
constexpr int kSchedulerBarrier0 = 2;  // sm90 forward ping-pong: one per consumer warpgroup (2..4)
constexpr int kEpilogueBarrier0 = 5;   // sm90 forward: one per consumer warpgroup's epilogue (5..7)
constexpr int kDsReadyBarrier = 8;     // sm90 warp-specialized backwards: every consumer's dS (dS^T) written
constexpr int kDqEmptyBarrier0 = 9;    // ... the dQ writer has read consumer c's half of the staged tile (9..10)
constexpr int kBwdEpilogueBarrier0 = 11;  // ... one per consumer's dK, dV epilogue (11..12)
constexpr int kPdsFreeBarrier = 13;    // ... one P/dS buffer: every consumer's GEMMs of the last step read it
constexpr int kDqFullBarrier0 = 13;    // ... consumer c staged its half of a dQ tile (13..14; that kernel uses neither else)
constexpr int kVFreeBarrier = 14;      // sm90 forward with O in V's ring: every consumer's last P V GEMM is done

__device__ __forceinline__ void named_barrier_sync(int id, int num_threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(num_threads) : "memory");
}

__device__ __forceinline__ void named_barrier_arrive(int id, int num_threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(num_threads) : "memory");
}

}  // namespace flashgen::sm90
