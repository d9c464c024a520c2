// One wgmma GEMM per operand arrangement the sm90 kernels use, each checked against a host
// GEMM: the shared-memory layouts (K-major tiles and their transposed, MN-major views), the
// warpgroup tilings (along M, along N) and P's registers reused as a register-sourced A
// operand. Built and run by tests/gpu/test_wgmma_probe.py on a compute capability 9.0 GPU.
// When an attention kernel fails, this says whether the operands themselves are read right.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <cuda_runtime.h>
#include <cute/tensor.hpp>

#include "flashgen/sm90/bwd_kernel.cuh"
#include "flashgen/sm90/bwd_ws_kernel.cuh"
#include "flashgen/sm90/fwd_kernel.cuh"
#include "flashgen_configs.h"  // written by the test that builds this file

using namespace cute;
using bf16 = cutlass::bfloat16_t;

// smem A (M x K, layout LayoutA) and B (N x K, layout LayoutB) filled element-wise from
// row-major global copies; C = A B^T with TiledMma, written row-major. kRegisterA: A instead
// comes from registers, laid out as the (M x K) accumulator of MmaForA (as P comes from S).
template <class TiledMma, class MmaForA, class LayoutA, class LayoutB, int M, int N, int K, bool kRegisterA>
__global__ void probe_kernel(const bf16* a, const bf16* b, float* c) {
  extern __shared__ __align__(1024) char smem[];
  constexpr int kAElems = cosize(LayoutA{});
  constexpr int kAPadded = (kAElems * int(sizeof(bf16)) + 1023) / 1024 * 1024 / int(sizeof(bf16));
  Tensor sA = make_tensor(make_smem_ptr(reinterpret_cast<bf16*>(smem)), LayoutA{});
  Tensor sB = make_tensor(make_smem_ptr(reinterpret_cast<bf16*>(smem) + kAPadded), LayoutB{});
  if constexpr (!kRegisterA) {
    for (int i = threadIdx.x; i < M * K; i += blockDim.x) sA(i / K, i % K) = a[i];
  }
  for (int i = threadIdx.x; i < N * K; i += blockDim.x) sB(i / K, i % K) = b[i];
  flashgen::sm90::publish_smem_writes_to_wgmma();

  TiledMma mma;
  auto thr = mma.get_thread_slice(threadIdx.x);
  Tensor acc = partition_fragment_C(mma, Shape<Int<M>, Int<N>>{});
  Tensor tB = thr.make_fragment_B(thr.partition_B(sB));
  if constexpr (kRegisterA) {
    MmaForA mma_a;
    Tensor acc_a = partition_fragment_C(mma_a, Shape<Int<M>, Int<K>>{});
    Tensor coords = mma_a.get_thread_slice(threadIdx.x).partition_C(make_identity_tensor(Shape<Int<M>, Int<K>>{}));
    for (int i = 0; i < size(acc_a); ++i) acc_a(i) = float(a[get<0>(coords(i)) * K + get<1>(coords(i))]);
    Tensor p = flashgen::convert_fragment<bf16>(acc_a);
    Tensor tA = make_tensor(p.data(), flashgen::sm90::accumulator_as_operand_a(p.layout()));
    flashgen::sm90::warpgroup_gemm(mma, tA, tB, acc, /*zero_init=*/true);
  } else {
    Tensor tA = thr.make_fragment_A(thr.partition_A(sA));
    flashgen::sm90::warpgroup_gemm(mma, tA, tB, acc, /*zero_init=*/true);
  }
  Tensor gC = thr.partition_C(make_tensor(make_gmem_ptr(c), make_layout(Shape<Int<M>, Int<N>>{}, GenRowMajor{})));
  for (int i = 0; i < size(acc); ++i) gC(i) = acc(i);
}

static int failures = 0;

template <class TiledMma, class MmaForA, class LayoutA, class LayoutB, int M, int N, int K, bool kRegisterA = false>
void probe(const char* what) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<bf16> a(M * K), b(N * K);
  for (auto& x : a) x = bf16(dist(rng));
  for (auto& x : b) x = bf16(dist(rng));
  bf16 *da, *db;
  float* dc;
  cudaMalloc(&da, a.size() * sizeof(bf16));
  cudaMalloc(&db, b.size() * sizeof(bf16));
  cudaMalloc(&dc, M * N * sizeof(float));
  cudaMemcpy(da, a.data(), a.size() * sizeof(bf16), cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * sizeof(bf16), cudaMemcpyHostToDevice);
  cudaMemset(dc, 0xff, M * N * sizeof(float));  // NaN: an unwritten element fails
  auto kernel = probe_kernel<TiledMma, MmaForA, LayoutA, LayoutB, M, N, K, kRegisterA>;
  const int a_bytes = (int(cosize(LayoutA{})) * 2 + 1023) / 1024 * 1024;
  const int smem = a_bytes + int(cosize(LayoutB{})) * 2;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  kernel<<<1, int(size(TiledMma{})), smem>>>(da, db, dc);
  const cudaError_t err = cudaDeviceSynchronize();
  std::vector<float> c(M * N);
  cudaMemcpy(c.data(), dc, c.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
  double worst = 0;
  int bad = 0, first_m = -1, first_n = -1;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += double(float(a[m * K + k])) * double(float(b[n * K + k]));
      const double e = std::abs(double(c[m * N + n]) - ref);
      if (!(e <= 1e-3 * K)) {  // also catches NaN
        if (bad++ == 0) first_m = m, first_n = n;
      }
      if (e > worst || e != e) worst = e;
    }
  const bool ok = err == cudaSuccess && bad == 0;
  failures += !ok;
  std::printf("%-4s %-44s %4dx%-4dx%-4d max error %.2e, %d of %d wrong%s%s\n", ok ? "ok" : "FAIL", what, M, N, K,
              worst, bad, M * N, err == cudaSuccess ? "" : ", ", err == cudaSuccess ? "" : cudaGetErrorString(err));
  if (bad) std::printf("     first wrong element at (%d, %d)\n", first_m, first_n);
}

template <class Cfg>
void probe_fwd_sm90(const char* name) {
  constexpr int M = Cfg::kMmaRows, N = Cfg::kBlockN, D = Cfg::kHeadDim;  // one consumer warpgroup's MMAs
  using S = typename Cfg::TiledMmaS;
  using O = typename Cfg::TiledMmaO;
  char what[160];
  std::snprintf(what, sizeof what, "%s S = Q K^T (SS, K-major)", name);
  probe<S, S, typename Cfg::SmemLayoutQ, typename Cfg::SmemLayoutKV, M, N, D>(what);
  std::snprintf(what, sizeof what, "%s O = P V (RS, P from S regs, V^T view)", name);
  probe<O, S, typename Cfg::SmemLayoutQ /*unused*/, typename Cfg::SmemLayoutVt, M, D, N, true>(what);
}

template <class Cfg>
void probe_bwd_sm90(const char* name) {
  constexpr int M = Cfg::kBlockM, N = Cfg::kBlockN, D = Cfg::kHeadDim;
  using SdP = typename Cfg::TiledMmaSdP;
  using dKV = typename Cfg::TiledMmadKV;
  using dQ = typename Cfg::TiledMmadQ;
  char what[160];
  std::snprintf(what, sizeof what, "%s S = Q K^T (SS, K-major; one or two WGs along N)", name);
  probe<SdP, SdP, typename Cfg::SmemLayoutQ, typename Cfg::SmemLayoutKV, M, N, D>(what);
  std::snprintf(what, sizeof what, "%s dV = P^T dO (SS, both transposed)", name);
  probe<dKV, dKV, typename Cfg::SmemLayoutPdSt, typename Cfg::SmemLayoutQt, N, D, M>(what);
  std::snprintf(what, sizeof what, "%s dQ = dS K (SS, B transposed)", name);
  probe<dQ, dQ, typename Cfg::SmemLayoutPdS, typename Cfg::SmemLayoutKt, M, D, N>(what);
}

template <class Cfg>
void probe_bwd_sm90_ws(const char* name) {
  constexpr int M = Cfg::kBlockM, N = Cfg::kBlockN, D = Cfg::kHeadDim, R = Cfg::kKeyRows;
  using SdP = typename Cfg::TiledMmaSdP;
  using dKV = typename Cfg::TiledMmadKV;
  using dQ = typename Cfg::TiledMmadQ;
  char what[160];
  std::snprintf(what, sizeof what, "%s S^T = K Q^T (SS, K-major, one WG)", name);
  probe<SdP, SdP, typename Cfg::SmemLayoutKSlice, typename Cfg::SmemLayoutQ, R, M, D>(what);
  std::snprintf(what, sizeof what, "%s dV = P^T dO (RS, P^T from S^T regs, dO^T view)", name);
  probe<dKV, SdP, typename Cfg::SmemLayoutKSlice /*unused*/, typename Cfg::SmemLayoutQt, R, D, M, true>(what);
  if constexpr (Cfg::kDqTransposed) {
    std::snprintf(what, sizeof what, "%s dQ^T = K^T dS^T (SS, dS %s, two WGs along M)", name,
                  Cfg::kDsKeysContiguous ? "K-major" : "MN-major");
    probe<dQ, dQ, typename Cfg::SmemLayoutKt, typename Cfg::SmemLayoutDsOneTransposed, D, M, N>(what);
  } else {
    std::snprintf(what, sizeof what, "%s dQ = dS K (SS, dS %s, two WGs)", name,
                  Cfg::kDsKeysContiguous ? "K-major" : "MN-major");
    probe<dQ, dQ, typename Cfg::SmemLayoutDsOneTransposed, typename Cfg::SmemLayoutKt, M, D, N>(what);
  }
}

int main() {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major != 9 || prop.minor != 0) {
    std::printf("wgmma probe: needs a GPU of compute capability 9.0 (sm_90a code)\n");
    return 2;
  }
  // Every bf16 sm90 config of the tuning catalog (tests/catalog_configs.py).
#define PROBE_CONFIG(family, config, name) probe_##family<config>(name);
  FLASHGEN_CONFIGS(PROBE_CONFIG)
  std::printf("wgmma probe: %d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
