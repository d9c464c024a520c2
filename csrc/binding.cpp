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

// Whether kernel `name` is built with `feature` (flashgen/naming.py: flash_..._sm{NN}[_{feature}...]).
bool has_feature(const std::string& name, const std::string& feature) {
  const std::string token = "_" + feature;
  for (size_t at = name.find(token); at != std::string::npos; at = name.find(token, at + 1)) {
    const size_t end = at + token.size();
    if (end == name.size() || name[end] == '_') return true;
  }
  return false;
}

// Variable-length batches (FlashAttention-2's varlen layout): with cu_seqlens_q and
// cu_seqlens_k (int32, contiguous, batch + 1 offsets on q's device) q, out, dout, dq are
// (total_q, nheads, head_dim) and k, v, dk, dv (total_k, nheads_kv, head_dim), 3-D: sequence b
// is rows cu_seqlens_q[b]:cu_seqlens_q[b+1] of the first and cu_seqlens_k[b]:cu_seqlens_k[b+1]
// of the others; max_seqlen_q/k are at least the longest (grid sizing). lse is (nheads,
// total_q). Only kernels built with the varlen feature take them, and they take nothing else.
struct Varlen {
  bool on = false;
  at::Tensor cu_q, cu_k;
  int64_t max_seqlen_q = 0, max_seqlen_k = 0;
};

Varlen varlen_args(const std::string& name, const at::Tensor& q, const c10::optional<at::Tensor>& cu_seqlens_q,
                   const c10::optional<at::Tensor>& cu_seqlens_k, int64_t max_seqlen_q, int64_t max_seqlen_k) {
  Varlen v;
  v.on = cu_seqlens_q.has_value() || cu_seqlens_k.has_value();
  TORCH_CHECK(v.on == has_feature(name, "varlen"), "flashgen: ", name,
              v.on ? " is not a varlen kernel but cu_seqlens were given"
                   : " is a varlen kernel: it needs cu_seqlens_q and cu_seqlens_k");
  if (!v.on) return v;
  TORCH_CHECK(cu_seqlens_q.has_value() && cu_seqlens_k.has_value(),
              "flashgen: varlen needs both cu_seqlens_q and cu_seqlens_k");
  v.cu_q = *cu_seqlens_q;
  v.cu_k = *cu_seqlens_k;
  for (const at::Tensor* t : {&v.cu_q, &v.cu_k}) {
    TORCH_CHECK(t->device() == q.device() && t->scalar_type() == at::kInt && t->is_contiguous() && t->dim() == 1 &&
                    t->numel() >= 2,
                "flashgen: cu_seqlens must be contiguous int32 (batch + 1,) tensors on ", q.device());
  }
  TORCH_CHECK(v.cu_q.numel() == v.cu_k.numel(), "flashgen: cu_seqlens_q and cu_seqlens_k must have the same length");
  TORCH_CHECK(q.dim() == 3, "flashgen: with cu_seqlens q must be 3-D (total_q, nheads, head_dim)");
  TORCH_CHECK(max_seqlen_q >= 0 && max_seqlen_k >= 0 && max_seqlen_q <= (1 << 30) && max_seqlen_k <= (1 << 30),
              "flashgen: max_seqlen_q and max_seqlen_k must be given (>= 0) with cu_seqlens");
  v.max_seqlen_q = max_seqlen_q;
  v.max_seqlen_k = max_seqlen_k;
  return v;
}

// The 4-D (batch, seqlen, heads, head_dim) view the kernels' TensorArgs describe: varlen's
// (total, heads, head_dim) tensors as (1, total, heads, head_dim).
at::Tensor as_4d(const at::Tensor& t, const Varlen& varlen) {
  if (!varlen.on) return t;
  TORCH_CHECK(t.dim() == 3, "flashgen: with cu_seqlens every tensor must be 3-D (total, heads, head_dim)");
  return t.unsqueeze(0);
}

// Batch, longest lengths and totals of a varlen call (after set_attention_args saw the 4-D views).
template <class Params>
void set_varlen_args(Params& p, const Varlen& varlen) {
  if (!varlen.on) return;
  p.total_q = p.seqlen_q;
  p.total_k = p.seqlen_k;
  p.batch = static_cast<int>(varlen.cu_q.numel() - 1);
  p.seqlen_q = static_cast<int>(varlen.max_seqlen_q);
  p.seqlen_k = static_cast<int>(varlen.max_seqlen_k);
  p.cu_seqlens_q = varlen.cu_q.data_ptr<int>();
  p.cu_seqlens_k = varlen.cu_k.data_ptr<int>();
}

// What to do about a launch error the user can fix: a build compiled for another GPU (build.py
// compiles for the visible GPUs only unless --all-targets) has no machine code for this one.
static const char* launch_hint(cudaError_t err) {
  return err == cudaErrorNoKernelImageForDevice
             ? " (this extension was built for another GPU: rebuild it on this machine with `python build.py`, "
               "or with `python build.py --all-targets` for every GPU the kernel families run on)"
             : "";
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

// The sm90 kernels' TMA descriptors are built by a driver call (cuTensorMapEncodeTiled), which
// needs a context current on the calling thread. CUDAGuard sets the device lazily (no runtime
// call when the thread's device already matches), and a thread that has made no CUDA runtime call
// has no current context: torch's autograd worker thread, running the backward straight from
// flashgen's autograd.Function, failed so with CUDA_ERROR_INVALID_CONTEXT (session 13). So: ask
// the driver (cuCtxGetCurrent, through the runtime's entry point: the extension links no libcuda)
// on every call, tens of nanoseconds, and only without a context call cudaFree(nullptr), which
// makes the device's primary context current and does nothing else (never inside a stream
// capture: a capturing thread has a context).
using CtxGetCurrentFn = int (*)(void**);  // CUresult cuCtxGetCurrent(CUcontext*)

CtxGetCurrentFn ctx_get_current() {
  static const CtxGetCurrentFn fn = [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult status;
    const bool found = cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &entry, 12000, cudaEnableDefault,
                                                        &status) == cudaSuccess &&
                       status == cudaDriverEntryPointSuccess;
    return found ? reinterpret_cast<CtxGetCurrentFn>(entry) : nullptr;
  }();
  return fn;
}

void make_context_current() {
  void* context = nullptr;
  const CtxGetCurrentFn get = ctx_get_current();
  if (get != nullptr && get(&context) == 0 && context != nullptr) return;
  const cudaError_t err = cudaFree(nullptr);
  TORCH_CHECK(err == cudaSuccess, "flashgen: CUDA error while making the device's context current: ",
              cudaGetErrorString(err));
}

void fwd(const std::string& name, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
         at::Tensor& out_in, at::Tensor& lse, double softmax_scale, bool causal, int64_t window_left,
         int64_t window_right, double softcap, const c10::optional<at::Tensor>& cu_seqlens_q,
         const c10::optional<at::Tensor>& cu_seqlens_k, int64_t max_seqlen_q, int64_t max_seqlen_k) {
  const KernelEntry& entry = find_kernel(name);
  TORCH_CHECK(entry.fwd != nullptr, "flashgen: ", name, " is not a forward kernel");
  const c10::cuda::CUDAGuard guard(q_in.device());
  make_context_current();
  const Varlen varlen = varlen_args(name, q_in, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k);
  const at::Tensor q = as_4d(q_in, varlen), k = as_4d(k_in, varlen), v = as_4d(v_in, varlen);
  at::Tensor out = as_4d(out_in, varlen);
  FwdParams p{};
  set_attention_args(p, q, k, v, out, softmax_scale, causal, window_left, window_right, softcap);
  // (batch, nheads, seqlen_q), or varlen's (nheads, total_q): the same count with q's 4-D view.
  TORCH_CHECK(lse.is_cuda() && lse.scalar_type() == at::kFloat && lse.is_contiguous() &&
                  lse.numel() == q.size(0) * q.size(2) * q.size(1),
              "flashgen: lse must be a contiguous float32 (batch, nheads, seqlen_q) tensor ((nheads, total_q) with cu_seqlens)");
  set_varlen_args(p, varlen);
  p.lse = lse.data_ptr<float>();
  at::Tensor tile_counter = at::empty({1}, q.options().dtype(at::kInt));  // zeroed by the launchers that use it
  p.tile_counter = tile_counter.data_ptr<int>();
  const cudaError_t err = entry.fwd(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "flashgen: ", name, " failed to launch: ", cudaGetErrorString(err), launch_hint(err));
}

// Writes dq (q's dtype and shape) and dk, dv: in k's dtype and shape without GQA; with GQA
// float32 (batch, seqlen_k, nheads, head_dim) per query head, which the caller sums. The
// fp32 scratch (softmax_d, lse_log2, the dQ accumulator in the kernel's own tile order) is allocated here.
void bwd(const std::string& name, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
         const at::Tensor& out_in, const at::Tensor& dout_in, const at::Tensor& lse, at::Tensor& dq_in,
         at::Tensor& dk_in, at::Tensor& dv_in, double softmax_scale, bool causal, bool deterministic,
         int64_t window_left, int64_t window_right, double softcap, const c10::optional<at::Tensor>& cu_seqlens_q,
         const c10::optional<at::Tensor>& cu_seqlens_k, int64_t max_seqlen_q, int64_t max_seqlen_k) {
  const KernelEntry& entry = find_kernel(name);
  TORCH_CHECK(entry.bwd != nullptr, "flashgen: ", name, " is not a backward kernel");
  const c10::cuda::CUDAGuard guard(q_in.device());
  make_context_current();
  const Varlen varlen = varlen_args(name, q_in, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k);
  const at::Tensor q = as_4d(q_in, varlen), k = as_4d(k_in, varlen), v = as_4d(v_in, varlen);
  const at::Tensor out = as_4d(out_in, varlen), dout = as_4d(dout_in, varlen);
  at::Tensor dq = as_4d(dq_in, varlen);
  // GQA's fp32 dk, dv: (total_k, nheads, head_dim) with varlen, checked by element count below.
  at::Tensor dk = varlen.on && dk_in.dim() == 3 ? dk_in.unsqueeze(0) : dk_in;
  at::Tensor dv = varlen.on && dv_in.dim() == 3 ? dv_in.unsqueeze(0) : dv_in;
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
  set_varlen_args(p, varlen);
  // Whole block_m-row tiles per (batch, head) (params.h); varlen: per (head, sequence), every
  // sequence's tiles apart, padded_total = (total_q / block_m + batch) * block_m rows per head
  // (common/seqlen.cuh). Deterministic mode: enough splits (CTAs per head) to give every
  // multiprocessor a CTA, at most one per key block.
  const int64_t padded_rows_q = (p.seqlen_q + entry.block_m - 1) / entry.block_m * entry.block_m;
  const int64_t padded_rows_per_head =
      varlen.on ? (int64_t(p.total_q) / entry.block_m + p.batch) * entry.block_m : int64_t(p.batch) * padded_rows_q;
  at::Tensor row_stats = at::empty({2, p.nheads * padded_rows_per_head}, f32);  // the preprocess fills them
  const int64_t split_elems = p.nheads * padded_rows_per_head * q.size(3);
  p.deterministic = deterministic;
  p.dq_splits = deterministic ? deterministic_dq_splits(p, entry.block_n, q.get_device()) : 1;
  at::Tensor dq_accum = at::empty({p.dq_splits * split_elems}, f32);  // the preprocess zeroes it
  p.lse = lse.data_ptr<float>();
  p.softmax_d = row_stats[0].data_ptr<float>();
  p.lse_log2 = row_stats[1].data_ptr<float>();
  p.dq_accum = dq_accum.data_ptr<float>();
  p.dq_split_stride = deterministic ? split_elems : 0;
  const cudaError_t err = entry.bwd(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "flashgen: ", name, " failed to launch: ", cudaGetErrorString(err), launch_hint(err));
}


std::vector<std::string> names(const char* const* list, int n) {
  return std::vector<std::string>(list, list + n);
}

}  // namespace
}  // namespace flashgen

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "flashgen kernels (generated dispatch table + torch binding)";
  namespace py = pybind11;
  // The varlen arguments trail with defaults, so fixed-length calls keep their positional form.
  m.def("fwd", &flashgen::fwd,
        "Forward attention with the named kernel; writes out and lse. With cu_seqlens_q/k (varlen kernels) "
        "q, k, v, out are 3-D packed (total, heads, head_dim) and lse is (nheads, total_q)",
        py::arg("name"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"),
        py::arg("softmax_scale"), py::arg("causal"), py::arg("window_left"), py::arg("window_right"),
        py::arg("softcap"), py::arg("cu_seqlens_q") = py::none(), py::arg("cu_seqlens_k") = py::none(),
        py::arg("max_seqlen_q") = -1, py::arg("max_seqlen_k") = -1);
  m.def("bwd", &flashgen::bwd,
        "Backward attention with the named kernel; writes dq, dk and dv (fp32 per query head with GQA). "
        "With cu_seqlens_q/k (varlen kernels) every tensor is 3-D packed, GQA's dk, dv (total_k, nheads, head_dim)",
        py::arg("name"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("dout"), py::arg("lse"),
        py::arg("dq"), py::arg("dk"), py::arg("dv"), py::arg("softmax_scale"), py::arg("causal"),
        py::arg("deterministic"), py::arg("window_left"), py::arg("window_right"), py::arg("softcap"),
        py::arg("cu_seqlens_q") = py::none(), py::arg("cu_seqlens_k") = py::none(), py::arg("max_seqlen_q") = -1,
        py::arg("max_seqlen_k") = -1);
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
