// The only translation unit that includes torch: turns tensors into raw pointers, strides and
// the current stream, and calls a kernel of the generated dispatch table by name. Shapes,
// dtypes and kernel choice are decided in Python (flashgen/); the checks here are a last guard
// against a caller that skips them.
// c10's CUDA headers only: ATen/cuda pulls in cuBLAS/cuSPARSE headers a bare toolkit may lack.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "flashgen/params.h"
#include "flashgen/registry.h"
#include "jit_kernel.h"

namespace flashgen {
namespace {

// Kernels compiled on first use (flashgen/jit.py), each from its own shared library. A deque
// keeps references stable as entries are added; libraries stay loaded for the process.
std::mutex loaded_mutex;
std::deque<KernelEntry> loaded_kernels;

const KernelEntry* find_loaded(const std::string& name) {
  const std::lock_guard<std::mutex> lock(loaded_mutex);
  for (const KernelEntry& entry : loaded_kernels) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

const KernelEntry& find_kernel(const std::string& name) {
  for (int i = 0; i < kNumBuiltKernels; ++i) {
    if (name == kBuiltKernels[i].name) return kBuiltKernels[i];
  }
  const KernelEntry* loaded = find_loaded(name);
  TORCH_CHECK(loaded != nullptr, "flashgen: kernel ", name,
              " is neither in this build nor loaded; run `python build.py --add ", name, "`");
  return *loaded;
}

// Loads a kernel library that flashgen's JIT built and registers its entry; returns the
// kernel's name. Loading the same kernel twice registers it once.
std::string load_kernel(const std::string& path) {
  // RTLD_LOCAL: each library's template instances stay its own.
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  TORCH_CHECK(library != nullptr, "flashgen: cannot load the kernel library ", path, ": ", dlerror());
  auto entry_point = reinterpret_cast<FlashgenJitEntry>(dlsym(library, FLASHGEN_JIT_ENTRY_SYMBOL));
  TORCH_CHECK(entry_point != nullptr, "flashgen: ", path, " has no ", FLASHGEN_JIT_ENTRY_SYMBOL,
              ": not a kernel library of this flashgen; delete it and call again to rebuild it");
  KernelEntry entry{};
  TORCH_CHECK(entry_point(&entry, sizeof(entry)) == 0, "flashgen: ", path,
              " was built against another KernelEntry layout than this binding; delete it and call again");
  const std::lock_guard<std::mutex> lock(loaded_mutex);
  const bool known = std::any_of(loaded_kernels.begin(), loaded_kernels.end(),
                                 [&](const KernelEntry& e) { return std::string(e.name) == entry.name; });
  if (!known) loaded_kernels.push_back(entry);
  return entry.name;
}

TensorArg tensor_arg(const at::Tensor& t, const char* what, const at::Tensor& like) {
  TORCH_CHECK(t.is_cuda() && t.device() == like.device(), "flashgen: ", what, " must be on ", like.device());
  TORCH_CHECK(t.dim() == 4 && t.stride(3) == 1, "flashgen: ", what, " must be 4-D with a contiguous last dim");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "flashgen: ", what, " must have q's dtype");
  return TensorArg{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

// The fields forward and backward parameters share: q, k, v, out, shapes, scale, mask.
template <class Params>
void set_attention_args(Params& p, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& out, double softmax_scale, bool causal, int64_t window_left,
                        int64_t window_right, double softcap) {
  p.q = tensor_arg(q, "q", q);
  p.k = tensor_arg(k, "k", q);
  p.v = tensor_arg(v, "v", q);
  p.out = tensor_arg(out, "out", q);
  p.batch = q.size(0);
  p.seqlen_q = q.size(1);
  p.nheads = q.size(2);
  p.seqlen_k = k.size(1);
  p.nheads_kv = k.size(2);
  TORCH_CHECK(p.nheads_kv > 0 && p.nheads % p.nheads_kv == 0, "flashgen: nheads must be a multiple of nheads_kv");
  TORCH_CHECK(window_left >= -1 && window_right >= -1, "flashgen: window bounds must be >= -1 (-1: unbounded), got (",
              window_left, ", ", window_right, ")");
  TORCH_CHECK(softcap >= 0.0, "flashgen: softcap must be >= 0 (0: off), got ", softcap);
  // The kernels take softmax_scale / softcap and softcap * log2(e) as normal float32 numbers (a
  // subnormal ratio would flush to 0 under fast math and switch the capping off).
  TORCH_CHECK(softcap == 0.0 || (std::isnormal(static_cast<float>(softmax_scale / softcap)) &&
                                 std::isfinite(static_cast<float>(softcap * M_LOG2E))),
              "flashgen: softcap ", softcap, " is out of range for softmax_scale ", softmax_scale,
              ": softmax_scale / softcap must be a normal float32 number (pass a softcap between about ",
              softmax_scale * 1e-37, " and ", softmax_scale * 1e37, ", or 0.0 for none)");
  p.causal = causal;
  p.window_left = static_cast<int>(std::min<int64_t>(window_left, 1 << 30));
  p.window_right = static_cast<int>(std::min<int64_t>(window_right, 1 << 30));
  // With softcap the kernels take tanh(S * scale / softcap) and exponentiate softcap times it
  // (params.h); the backward's softmax_scale stays the call's (bwd() below), for dQ and dK.
  const double exponent_scale = softcap > 0.0 ? softcap : softmax_scale;
  p.softcap_scale = softcap > 0.0 ? static_cast<float>(softmax_scale / softcap) : 0.f;
  p.softmax_scale = static_cast<float>(exponent_scale);
  p.softmax_scale_log2 = static_cast<float>(exponent_scale * M_LOG2E);
}

// Deterministic mode's dQ splits: floor(multiprocessors / (batch * nheads)) CTAs per head fill
// the GPU once without a second, nearly empty wave per launch (FlashAttention-2's ceil gave 144
// CTAs on 132 SMs at 2 x 8 heads), and more than one per key block has no work.
int deterministic_dq_splits(const BwdParams& p, int block_n, int device) {
  int sms = 0;
  TORCH_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) == cudaSuccess,
              "flashgen: could not read the multiprocessor count of device ", device);
  const int64_t heads = int64_t(p.batch) * p.nheads;
  const int64_t key_blocks = (p.seqlen_k + block_n - 1) / block_n;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(key_blocks, sms / heads)));
}

void fwd(const std::string& name, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
         at::Tensor& out, at::Tensor& lse, double softmax_scale, bool causal, int64_t window_left,
         int64_t window_right, double softcap) {
  const KernelEntry& entry = find_kernel(name);
  TORCH_CHECK(entry.fwd != nullptr, "flashgen: ", name, " is not a forward kernel");
  const c10::cuda::CUDAGuard guard(q.device());
  FwdParams p{};
  set_attention_args(p, q, k, v, out, softmax_scale, causal, window_left, window_right, softcap);
  TORCH_CHECK(lse.is_cuda() && lse.scalar_type() == at::kFloat && lse.is_contiguous() &&
                  lse.numel() == q.size(0) * q.size(2) * q.size(1),
              "flashgen: lse must be a contiguous float32 (batch, nheads, seqlen_q) tensor");
  p.lse = lse.data_ptr<float>();
  at::Tensor tile_counter = at::empty({1}, q.options().dtype(at::kInt));  // zeroed by the launchers that use it
  p.tile_counter = tile_counter.data_ptr<int>();
  const cudaError_t err = entry.fwd(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "flashgen: ", name, " failed to launch: ", cudaGetErrorString(err));
}

// Writes dq (q's dtype and shape) and dk, dv: in k's dtype and shape without GQA; with GQA
// float32 (batch, seqlen_k, nheads, head_dim) per query head, which the caller sums. The
// fp32 scratch (softmax_d, lse_log2, the dQ accumulator in the kernel's own tile order) is allocated here.
void bwd(const std::string& name, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
         const at::Tensor& out, const at::Tensor& dout, const at::Tensor& lse, at::Tensor& dq,
         at::Tensor& dk, at::Tensor& dv, double softmax_scale, bool causal, bool deterministic,
         int64_t window_left, int64_t window_right, double softcap) {
  const KernelEntry& entry = find_kernel(name);
  TORCH_CHECK(entry.bwd != nullptr, "flashgen: ", name, " is not a backward kernel");
  const c10::cuda::CUDAGuard guard(q.device());
  BwdParams p{};
  set_attention_args(p, q, k, v, out, softmax_scale, causal, window_left, window_right, softcap);
  p.softmax_scale = static_cast<float>(softmax_scale);  // dQ and dK are scaled by the call's scale
  p.dout = tensor_arg(dout, "dout", q);
  p.dq = tensor_arg(dq, "dq", q);
  TORCH_CHECK(dq.sizes() == q.sizes(), "flashgen: dq must have q's shape");
  auto check_f32 = [&](const at::Tensor& t, const char* what, int64_t numel) {
    TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == numel,
                "flashgen: ", what, " must be a contiguous float32 CUDA tensor of ", numel, " elements");
  };
  const int64_t rows_q = int64_t(p.batch) * p.nheads * p.seqlen_q;
  check_f32(lse, "lse", rows_q);
  if (p.nheads == p.nheads_kv) {
    p.dk = tensor_arg(dk, "dk", q);
    p.dv = tensor_arg(dv, "dv", q);
    TORCH_CHECK(dk.sizes() == k.sizes() && dv.sizes() == k.sizes(), "flashgen: dk and dv must have k's shape");
  } else {
    check_f32(dk, "dk (fp32 per query head, GQA)", int64_t(p.batch) * p.seqlen_k * p.nheads * q.size(3));
    check_f32(dv, "dv (fp32 per query head, GQA)", dk.numel());
    p.dk_accum = dk.data_ptr<float>();
    p.dv_accum = dv.data_ptr<float>();
  }
  const auto f32 = q.options().dtype(at::kFloat);
  // Whole block_m-row tiles per (batch, head) (params.h). Deterministic mode: enough splits
  // (CTAs per head) to give every multiprocessor a CTA, at most one per key block.
  const int64_t padded_rows_q = (p.seqlen_q + entry.block_m - 1) / entry.block_m * entry.block_m;
  at::Tensor row_stats = at::empty({2, int64_t(p.batch) * p.nheads * padded_rows_q}, f32);  // the preprocess fills them
  const int64_t split_elems = int64_t(p.batch) * p.nheads * padded_rows_q * q.size(3);
  p.deterministic = deterministic;
  p.dq_splits = deterministic ? deterministic_dq_splits(p, entry.block_n, q.get_device()) : 1;
  at::Tensor dq_accum = at::empty({p.dq_splits * split_elems}, f32);  // the preprocess zeroes it
  p.lse = lse.data_ptr<float>();
  p.softmax_d = row_stats[0].data_ptr<float>();
  p.lse_log2 = row_stats[1].data_ptr<float>();
  p.dq_accum = dq_accum.data_ptr<float>();
  p.dq_split_stride = deterministic ? split_elems : 0;
  const cudaError_t err = entry.bwd(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "flashgen: ", name, " failed to launch: ", cudaGetErrorString(err));
}


std::vector<std::string> names(const char* const* list, int n) {
  return std::vector<std::string>(list, list + n);
}

}  // namespace
}  // namespace flashgen

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "flashgen kernels (generated dispatch table + torch binding)";
  m.def("fwd", &flashgen::fwd, "Forward attention with the named kernel; writes out and lse");
  m.def("bwd", &flashgen::bwd, "Backward attention with the named kernel; writes dq, dk and dv (fp32 per query head with GQA)");
  m.def("built_kernels", [] {
    std::vector<std::string> result;
    for (int i = 0; i < flashgen::kNumBuiltKernels; ++i) result.emplace_back(flashgen::kBuiltKernels[i].name);
    return result;
  });
  m.def("load_kernel", &flashgen::load_kernel,
        "Load a kernel library built on first use (flashgen/jit.py) and register it; returns its name");
  m.def("loaded_kernels", [] {
    const std::lock_guard<std::mutex> lock(flashgen::loaded_mutex);
    std::vector<std::string> result;
    for (const auto& entry : flashgen::loaded_kernels) result.emplace_back(entry.name);
    return result;
  });
  m.def("catalog_kernels", [] { return flashgen::names(flashgen::kCatalogKernels, flashgen::kNumCatalogKernels); });
}
