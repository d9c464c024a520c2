// Host-side checks of the kernels' own index algebra, for every MMA family (no GPU needed;
// tests/cpu/test_host_checks.py builds and runs this, for every config of the catalogs). They catch the bugs that give wrong
// numbers rather than compile errors: a transposed shared-memory view that reads another
// element, a (rows, cols) register view whose row reductions mix rows, P's registers fed to the
// P V MMA in the wrong order, an lse written by a thread that does not hold column 0, a
// backward CTA that skips or repeats a query block, a forward that misses a key block.
// What they cannot see: whether the hardware reads shared memory as CuTe's descriptors say.
#include <algorithm>
#include <cstdio>
#include <set>
#include <vector>

#include <cute/tensor.hpp>

#include "flashgen/sm80/bwd_kernel.cuh"
#include "flashgen/sm80/fwd_kernel.cuh"
#include "flashgen/sm90/bwd_kernel.cuh"
#include "flashgen/sm90/bwd_ws_kernel.cuh"
#include "flashgen/sm90/bwd_ws_split_kernel.cuh"
#include "flashgen/sm90/fwd_kernel.cuh"
#include "flashgen_configs.h"  // written by the test that builds this file

using namespace cute;
using bf16 = cutlass::bfloat16_t;

static int checks = 0, failures = 0;

#define CHECK(cond, ...)                                    \
  do {                                                      \
    ++checks;                                               \
    if (!(cond)) {                                          \
      if (++failures <= 20) {                               \
        std::printf("FAIL %s:%d: ", __FILE__, __LINE__);    \
        std::printf(__VA_ARGS__);                           \
        std::printf("\n");                                  \
      }                                                     \
    }                                                       \
  } while (0)

// view(c, r) must be the element tile(r, c) for a transposed view of a (rows, cols) tile.
template <class Tile, class View>
void check_transposed(const char* what, Tile const& tile, View const& view) {
  CHECK(size<0>(view) == size<1>(tile) && size<1>(view) == size<0>(tile), "%s: transposed shape", what);
  for (int r = 0; r < size<0>(tile); ++r)
    for (int c = 0; c < size<1>(tile); ++c) CHECK(view(c, r) == tile(r, c), "%s: element (%d, %d)", what, r, c);
}

// Each thread's (rows, cols) view of an accumulator: every element of row slot mi lies in one
// row, and together the threads hold each tile element exactly once. With quads: a row's
// elements live in the 4 lanes of one quad (what quad_max/quad_sum reduce over), and for each
// thread column slot 0 is one column for all its rows (the lse writers test that column).
template <class Mma, class Shape, class RowsCols>
void check_rows_cols(const char* what, Mma const& mma, Shape shape, int threads, RowsCols rows_cols, bool quads) {
  const int rows = size<0>(shape), cols = size<1>(shape);
  std::vector<int> holder(rows * cols, -1);
  for (int t = 0; t < threads; ++t) {
    Tensor coords = mma.get_thread_slice(t).partition_C(make_identity_tensor(shape));
    Tensor view = make_tensor(coords.data(), rows_cols(coords.layout()));
    CHECK(size(view) == size(coords), "%s: the view drops elements", what);
    for (int mi = 0; mi < size<0>(view); ++mi) {
      const int row = get<0>(view(mi, 0));
      CHECK(get<1>(view(mi, 0)) == get<1>(view(0, 0)), "%s: thread %d's column slot 0 moves", what, t);
      for (int ni = 0; ni < size<1>(view); ++ni) {
        const int r = get<0>(view(mi, ni)), c = get<1>(view(mi, ni));
        CHECK(r == row, "%s: thread %d row slot %d mixes rows %d and %d", what, t, mi, row, r);
        CHECK(holder[r * cols + c] == -1, "%s: (%d, %d) held twice", what, r, c);
        holder[r * cols + c] = t;
      }
    }
  }
  for (int r = 0; r < rows; ++r) {
    std::set<int> quads_of_row;
    for (int c = 0; c < cols; ++c) {
      CHECK(holder[r * cols + c] >= 0, "%s: (%d, %d) held by no thread", what, r, c);
      quads_of_row.insert(holder[r * cols + c] / 4);
    }
    if (quads) CHECK(quads_of_row.size() == 1, "%s: row %d spread over %zu quads", what, r, quads_of_row.size());
  }
}

// The score accumulator's registers, converted and re-viewed by operand_a_view, must be the A
// operand of the P V MMA in the order that MMA reads it, for every thread.
template <class MmaS, class MmaO, class ShapeS, class OperandAView>
void check_p_as_operand_a(const char* what, MmaS const& mma_s, MmaO const& mma_o, ShapeS shape, int threads,
                          OperandAView operand_a_view) {
  const int cols = size<1>(shape);
  for (int t = 0; t < threads; ++t) {
    Tensor coords_s = mma_s.get_thread_slice(t).partition_C(make_identity_tensor(shape));
    Tensor acc = partition_fragment_C(mma_s, shape);  // the kernel's register tensor
    CHECK(size(acc) == size(coords_s), "%s: fragment size", what);
    for (int i = 0; i < size(acc); ++i) acc(i) = float(get<0>(coords_s(i)) * cols + get<1>(coords_s(i)));
    Tensor as_a = make_tensor(acc.data(), operand_a_view(acc.layout()));
    Tensor coords_a = mma_o.get_thread_slice(t).partition_A(make_identity_tensor(shape));
    CHECK(size(as_a) == size(coords_a), "%s: thread %d: %d P registers, %d A operand values", what, t,
          int(size(as_a)), int(size(coords_a)));
    CHECK(rank(as_a) == rank(coords_a) && size<2>(as_a) == size<2>(coords_a), "%s: k steps", what);
    for (int i = 0; i < size(coords_a); ++i) {
      const int want = get<0>(coords_a(i)) * cols + get<1>(coords_a(i));
      CHECK(int(as_a(i)) == want, "%s: thread %d A value %d holds P element %d, the MMA reads %d", what, t, i,
            int(as_a(i)), want);
    }
  }
}

auto sm80_rows_cols = [](auto layout) { return flashgen::sm80::accumulator_as_rows_cols(layout); };
auto sm80_operand_a = [](auto layout) { return flashgen::sm80::accumulator_as_operand_a(layout); };
auto sm90_rows_cols = [](auto layout) { return flashgen::sm90::accumulator_as_rows_cols(layout); };
auto sm90_operand_a = [](auto layout) { return flashgen::sm90::accumulator_as_operand_a(layout); };

template <class Cfg>
void check_fwd_sm80(const char* what) {
  using Shape_S = Shape<Int<Cfg::kBlockM>, Int<Cfg::kBlockN>>;
  typename Cfg::TiledMma mma;
  check_rows_cols(what, mma, Shape_S{}, Cfg::kNThreads, sm80_rows_cols, true);
  check_p_as_operand_a(what, mma, mma, Shape_S{}, Cfg::kNThreads, sm80_operand_a);
  check_transposed(what, typename Cfg::SmemLayoutKV{}, typename Cfg::SmemLayoutVt{});
}

// store_tile_rows_from_smem (common/copies.cuh; the varlen O, dK and dV stores of sm90): its
// kThreads threads cover the first kRows rows of the tile once, each access 8 consecutive
// elements of a row, consecutive and 16-byte aligned in the swizzled shared-memory layout too
// (one 16-byte load each).
template <class Element, int kHeadDim, int kThreads, int kRows, class SmemLayout>
void check_smem_row_store(const char* what, const char* store_name, SmemLayout const& smem) {
  typename flashgen::GmemCopies<Element, kHeadDim, kThreads>::Store store;
  Tensor id = make_identity_tensor(Shape<Int<kRows>, Int<kHeadDim>>{});
  std::vector<int> stored(kRows * kHeadDim, 0);
  for (int t = 0; t < kThreads; ++t) {
    Tensor part = store.get_thread_slice(t).partition_S(id);  // (CPY, CPY_ROWS, CPY_COLS)
    for (int m = 0; m < size<1>(part); ++m)
      for (int k = 0; k < size<2>(part); ++k) {
        const int r0 = get<0>(part(0, m, k)), c0 = get<1>(part(0, m, k));
        CHECK(int(smem(r0, c0)) % 8 == 0, "%s: %s access (%d, %d) not 16-byte aligned in shared memory", what,
              store_name, r0, c0);
        for (int v = 0; v < size<0>(part); ++v) {
          const int r = get<0>(part(v, m, k)), c = get<1>(part(v, m, k));
          CHECK(r == r0 && c == c0 + v && int(smem(r, c)) == int(smem(r0, c0)) + v,
                "%s: %s access (%d, %d) element %d is not the next of its row", what, store_name, r0, c0, v);
          if (0 <= r && r < kRows && 0 <= c && c < kHeadDim) ++stored[r * kHeadDim + c];
        }
      }
  }
  for (int i = 0; i < kRows * kHeadDim; ++i)
    CHECK(stored[i] == 1, "%s: %s writes element (%d, %d) %d times", what, store_name, i / kHeadDim, i % kHeadDim,
          stored[i]);
}

template <class Cfg>
void check_fwd_sm90(const char* what) {
  // Each consumer warpgroup runs its own 64-row MMAs over its own Q slice.
  using Shape_S = Shape<Int<Cfg::kMmaRows>, Int<Cfg::kBlockN>>;
  typename Cfg::TiledMmaS mma_s;
  typename Cfg::TiledMmaO mma_o;
  check_rows_cols(what, mma_s, Shape_S{}, Cfg::kMmaThreads, sm90_rows_cols, true);
  check_rows_cols(what, mma_o, Shape<Int<Cfg::kMmaRows>, Int<Cfg::kHeadDim>>{}, Cfg::kMmaThreads, sm90_rows_cols,
                  true);
  check_p_as_operand_a(what, mma_s, mma_o, Shape_S{}, Cfg::kMmaThreads, sm90_operand_a);
  check_transposed(what, typename Cfg::SmemLayoutKV{}, typename Cfg::SmemLayoutVt{});
  // The staged rings: V^T of stage s reads V's stage s, and stage s is the one-stage layout
  // shifted by whole stages (the TMA loads and the descriptors both assume it).
  typename Cfg::SmemLayoutKVStages kv;
  typename Cfg::SmemLayoutVtStages vt;
  typename Cfg::SmemLayoutKV one;
  for (int stage = 0; stage < Cfg::kStages; ++stage)
    for (int r = 0; r < Cfg::kBlockN; ++r)
      for (int c = 0; c < Cfg::kHeadDim; ++c) {
        CHECK(vt(c, r, stage) == kv(r, c, stage), "%s: V^T stage %d element (%d, %d)", what, stage, r, c);
        CHECK(kv(r, c, stage) == one(r, c) + stage * cosize(one), "%s: stage %d is not a whole shift", what, stage);
      }
  // Varlen's O store (store_rows_from_smem): a consumer's 128 threads, its 64 O rows.
  check_smem_row_store<typename Cfg::Element, Cfg::kHeadDim, Cfg::kMmaThreads, Cfg::kMmaRows>(
      what, "O store", typename Cfg::SmemLayoutQ{});
}

template <class Cfg>
void check_bwd_sm80(const char* what) {
  typename Cfg::TiledMmaSdP mma_sdp;
  check_rows_cols(what, mma_sdp, Shape<Int<Cfg::kBlockM>, Int<Cfg::kBlockN>>{}, Cfg::kNThreads, sm80_rows_cols,
                  false);
  check_transposed(what, typename Cfg::SmemLayoutQ{}, typename Cfg::SmemLayoutQt{});
  check_transposed(what, typename Cfg::SmemLayoutKV{}, typename Cfg::SmemLayoutKt{});
  check_transposed(what, typename Cfg::SmemLayoutPdS{}, typename Cfg::SmemLayoutPdSt{});
}

template <class Cfg>
void check_bwd_sm90(const char* what) {
  // With kSdpByWarpgroup one warpgroup computes all of S (and the other all of dP).
  typename Cfg::TiledMmaSdP mma_sdp;
  check_rows_cols(what, mma_sdp, Shape<Int<Cfg::kBlockM>, Int<Cfg::kBlockN>>{}, Cfg::kSdpThreads, sm90_rows_cols,
                  false);
  typename Cfg::TiledMmadKV mma_dkv;
  check_rows_cols(what, mma_dkv, Shape<Int<Cfg::kBlockN>, Int<Cfg::kHeadDim>>{}, Cfg::kNThreads, sm90_rows_cols,
                  false);
  typename Cfg::TiledMmadQ mma_dq;
  check_rows_cols(what, mma_dq, Shape<Int<Cfg::kBlockM>, Int<Cfg::kHeadDim>>{}, Cfg::kNThreads, sm90_rows_cols,
                  false);
  check_transposed(what, typename Cfg::SmemLayoutQ{}, typename Cfg::SmemLayoutQt{});
  check_transposed(what, typename Cfg::SmemLayoutKV{}, typename Cfg::SmemLayoutKt{});
  check_transposed(what, typename Cfg::SmemLayoutPdS{}, typename Cfg::SmemLayoutPdSt{});
}

// The warp-specialized backward: each consumer's S^T accumulator (keys, queries) as rows and
// columns, P^T's registers as the dV GEMM's A operand, the transposed views of K, Q (per stage)
// and dS (per buffer), the consumers' K slices and dS slices where the kernel's pointer
// arithmetic puts them, and the dQ fragments covering the accumulator tile once in
// Cfg::dq_offset's order (consumer-major with the writer warp, which adds each consumer's half).
// The step's index algebra (sm90/bwd_ws_kernel.cuh): dS^T's stmatrix destinations
// computed once for buffer 0 (StsmDestinations) must be buffer b's minus b * (the buffer's
// bytes) for every thread, consumer and call (the swizzle commutes with the offset), each call's
// 8 values contiguous and 16-byte aligned; and the dQ operands sliced by a warpgroup's first
// thread must be every thread's own slice. Addresses are taken in a 1 KB-aligned host buffer
// standing in for shared memory (the swizzle reads the address bits, as on the GPU).
template <class Cfg>
void check_bwd_ws_step_addresses(const char* what) {
  using Element = typename Cfg::Element;
  alignas(1024) static char smem_raw[sizeof(typename Cfg::SharedStorage) + 1024];
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_raw);
  auto smem_tensor = [](Element* ptr, auto layout) { return make_tensor(make_smem_ptr(ptr), layout); };
  typename Cfg::TiledMmaSdP mma_sdp;
  auto copy_ds = make_tiled_copy_C(Copy_Atom<typename Cfg::DsStoreAtom, Element>{}, mma_sdp);
  constexpr int kSliceElems = cosize_v<typename Cfg::SmemLayoutDsSliceStored>;
  constexpr intptr_t kBufferBytes = Cfg::kConsumers * kSliceElems * sizeof(Element);
  for (int consumer = 0; consumer < Cfg::kConsumers; ++consumer) {
    auto ds_slice = [&](int buffer) {
      return smem_tensor(smem.ds.data() + (buffer * Cfg::kConsumers + consumer) * kSliceElems,
                         typename Cfg::SmemLayoutDsSlice{});
    };
    for (int t = 0; t < 128; ++t) {
      auto thr = copy_ds.get_thread_slice(t);
      auto buffer0 = thr.partition_D(ds_slice(0));
      constexpr int kCalls = flashgen::sm90::stsm_calls<decltype(buffer0)>();
      for (int b = 0; b < 2; ++b) {
        auto dst = thr.partition_D(ds_slice(b));
        for (int j = 0; j < kCalls; ++j) {
          const intptr_t first = reinterpret_cast<char*>(&dst(make_coord(0, j), 0, 0)) - smem_raw;
          const intptr_t from0 = reinterpret_cast<char*>(&buffer0(make_coord(0, j), 0, 0)) - smem_raw;
          CHECK(first == from0 + b * kBufferBytes, "%s: stmatrix address, consumer %d thread %d buffer %d call %d",
                what, consumer, t, b, j);
          CHECK(first % 16 == 0, "%s: stmatrix address alignment", what);
          for (int v = 1; v < 8; ++v)
            CHECK(reinterpret_cast<char*>(&dst(make_coord(v, j), 0, 0)) - smem_raw == first + 2 * v,
                  "%s: stmatrix call %d's values not contiguous", what, j);
        }
      }
    }
  }
  typename Cfg::TiledMmadQ mma_dq;
  Tensor sDs = smem_tensor(smem.ds.data(), typename Cfg::SmemLayoutDsTransposed{});
  Tensor sKt = smem_tensor(smem.k.data(), typename Cfg::SmemLayoutKt{});
  auto same = [&](auto const& x, auto const& y, int tidx) {
    CHECK(size(x) == size(y), "%s: dQ operand slice size", what);
    for (int i = 0; i < size(x); ++i) CHECK(&x(i) == &y(i), "%s: dQ operand slice of thread %d, element %d", what, tidx, i);
  };
  for (int tidx = 0; tidx < Cfg::kDqThreads; ++tidx) {
    auto own = mma_dq.get_thread_slice(tidx), first = mma_dq.get_thread_slice(tidx / 128 * 128);
    if constexpr (Cfg::kDqTransposed) {  // dQ^T = K^T dS^T
      same(own.partition_A(sKt), first.partition_A(sKt), tidx);
      same(own.partition_B(sDs), first.partition_B(sDs), tidx);
    } else {  // dQ = dS K
      same(own.partition_A(sDs), first.partition_A(sDs), tidx);
      same(own.partition_B(sKt), first.partition_B(sKt), tidx);
    }
  }
}

// dS^T's stmatrix in the warp-specialized backward, emulated for one consumer: each thread's dS^T
// fragment element (its (key, query) from the S^T GEMM's C partition) goes through retile_S's
// registers (two 16-bit values a register, the low one first) and the stmatrix rows of its warp
// (lane 8i + r gives row r of matrix i; the value pair of lane l in register i is row l / 4,
// columns 2 (l % 4) and + 1, which .trans stores at row address 2 (l % 4) (+ 1), column l / 4)
// and must land at that (key, query)'s offset in the dS^T slice layout, every offset once: the
// whole store, CuTe's register order for the atom (plain or transposed) included.
template <class Cfg>
void check_bwd_ws_ds_store(const char* what) {
  using Element = typename Cfg::Element;
  constexpr int kKeys = Cfg::kKeyRows, kQueries = Cfg::kBlockM;
  constexpr bool kTransposed = flashgen::sm90::stsm_is_transposed<typename Cfg::DsStoreAtom>();
  typename Cfg::TiledMmaSdP mma_sdp;
  auto copy_ds = make_tiled_copy_C(Copy_Atom<typename Cfg::DsStoreAtom, Element>{}, mma_sdp);
  typename Cfg::SmemLayoutDsSlice slice;  // (key, query) -> element offset
  constexpr int kSliceElems = cosize_v<typename Cfg::SmemLayoutDsSliceStored>;
  alignas(1024) static Element base[kSliceElems];
  Tensor sds = make_tensor(make_smem_ptr(base), slice);
  std::vector<int> stored(kSliceElems, -1), writes(kSliceElems, 0);
  for (int warp = 0; warp < 4; ++warp) {
    // Per lane and call: its row address (an element offset) and the (key, query) of its 8 values.
    std::vector<std::vector<int>> row(32), value(32);
    int calls = 0;
    for (int lane = 0; lane < 32; ++lane) {
      const int t = warp * 32 + lane;
      Tensor coords = mma_sdp.get_thread_slice(t).partition_C(make_identity_tensor(Shape<Int<kKeys>, Int<kQueries>>{}));
      Tensor ids = make_tensor<int>(partition_fragment_C(mma_sdp, Shape<Int<kKeys>, Int<kQueries>>{}).layout());
      for (int i = 0; i < size(ids); ++i) ids(i) = get<0>(coords(i)) * kQueries + get<1>(coords(i));
      auto thr = copy_ds.get_thread_slice(t);
      Tensor src = thr.retile_S(ids);
      Tensor dst = thr.partition_D(sds);
      calls = flashgen::sm90::stsm_calls<decltype(dst)>();
      for (int j = 0; j < calls; ++j) {
        row[lane].push_back(int(&dst(make_coord(0, j), 0, 0) - base));
        for (int v = 0; v < 8; ++v) value[lane].push_back(src(make_coord(v, j), 0, 0));
      }
    }
    for (int j = 0; j < calls; ++j)
      for (int lane = 0; lane < 32; ++lane)
        for (int reg = 0; reg < 4; ++reg)
          for (int half = 0; half < 2; ++half) {
            const int r = lane / 4, c = 2 * (lane % 4) + half;  // within matrix `reg`
            const int offset = kTransposed ? row[8 * reg + c][j] + r : row[8 * reg + r][j] + c;
            CHECK(0 <= offset && offset < kSliceElems, "%s: dS store offset %d out of the slice", what, offset);
            if (0 <= offset && offset < kSliceElems) {
              stored[offset] = value[lane][8 * j + 2 * reg + half];
              ++writes[offset];
            }
          }
  }
  for (int key = 0; key < kKeys; ++key)
    for (int query = 0; query < kQueries; ++query) {
      const int offset = int(&sds(key, query) - base);
      CHECK(writes[offset] == 1 && stored[offset] == key * kQueries + query,
            "%s: dS^T (%d, %d) at offset %d holds (%d, %d), written %d times", what, key, query, offset,
            stored[offset] / kQueries, stored[offset] % kQueries, writes[offset]);
    }
}

template <class Cfg>
void check_bwd_sm90_ws(const char* what) {
  using ShapeSt = Shape<Int<Cfg::kKeyRows>, Int<Cfg::kBlockM>>;
  typename Cfg::TiledMmaSdP mma_sdp;
  typename Cfg::TiledMmadKV mma_dkv;
  typename Cfg::TiledMmadQ mma_dq;
  check_rows_cols(what, mma_sdp, ShapeSt{}, 128, sm90_rows_cols, true);
  check_rows_cols(what, mma_dkv, Shape<Int<Cfg::kKeyRows>, Int<Cfg::kHeadDim>>{}, 128, sm90_rows_cols, true);
  // dQ's C: (queries, head_dim), or (head_dim, queries) for dQ^T (kDqTransposed).
  using DqShape = typename Cfg::DqTileShape;
  CHECK((Cfg::kDqTransposed ? size<1>(DqShape{}) : size<0>(DqShape{})) == Cfg::kBlockM, "%s: dQ tile's query mode", what);
  check_rows_cols(what, mma_dq, DqShape{}, Cfg::kDqThreads, sm90_rows_cols, false);
  check_p_as_operand_a(what, mma_sdp, mma_dkv, ShapeSt{}, 128, sm90_operand_a);
  check_transposed(what, typename Cfg::SmemLayoutK{}, typename Cfg::SmemLayoutKt{});
  check_transposed(what, typename Cfg::SmemLayoutQ{}, typename Cfg::SmemLayoutQt{});
  check_transposed(what, typename Cfg::SmemLayoutDsOne{}, typename Cfg::SmemLayoutDsOneTransposed{});
  typename Cfg::SmemLayoutQStages q;
  typename Cfg::SmemLayoutQtStages qt;
  typename Cfg::SmemLayoutQ q_one;
  for (int stage = 0; stage < Cfg::kStages; ++stage)
    for (int r = 0; r < Cfg::kBlockM; ++r)
      for (int c = 0; c < Cfg::kHeadDim; ++c) {
        CHECK(qt(c, r, stage) == q(r, c, stage), "%s: Q^T stage %d element (%d, %d)", what, stage, r, c);
        CHECK(q(r, c, stage) == q_one(r, c) + stage * cosize(q_one), "%s: Q stage %d is not a whole shift", what, stage);
      }
  typename Cfg::SmemLayoutK k;
  typename Cfg::SmemLayoutKSlice k_slice;
  for (int consumer = 0; consumer < Cfg::kConsumers; ++consumer)
    for (int r = 0; r < Cfg::kKeyRows; ++r)
      for (int c = 0; c < Cfg::kHeadDim; ++c)
        CHECK(k(consumer * Cfg::kKeyRows + r, c) == k_slice(r, c) + consumer * cosize(k_slice),
              "%s: K slice %d element (%d, %d)", what, consumer, r, c);
  typename Cfg::SmemLayoutDs ds;
  typename Cfg::SmemLayoutDsTransposed ds_t;
  typename Cfg::SmemLayoutDsSlice ds_slice;
  for (int buffer = 0; buffer < 2; ++buffer)
    for (int key = 0; key < Cfg::kBlockN; ++key)
      for (int query = 0; query < Cfg::kBlockM; ++query) {
        const int consumer = key / Cfg::kKeyRows;
        CHECK(ds_t(query, key, buffer) == ds(key, query, buffer), "%s: dS buffer %d element (%d, %d)", what, buffer,
              key, query);
        CHECK(ds(key, query, buffer) == ds_slice(key % Cfg::kKeyRows, query) +
                                            (buffer * Cfg::kConsumers + consumer) *
                                                cosize(typename Cfg::SmemLayoutDsSliceStored{}),
              "%s: dS^T slice of consumer %d, buffer %d", what, consumer, buffer);
      }
  // dQ: thread t's fragment element i at dq_offset(i, t) of the tile, every offset once.
  std::vector<int> taken(Cfg::kDqTileElems, 0);
  for (int t = 0; t < Cfg::kDqThreads; ++t) {
    Tensor frag = partition_fragment_C(mma_dq, DqShape{});
    CHECK(int(size(frag)) == Cfg::kDqFragElems, "%s: dQ fragment size", what);
    for (int i = 0; i < Cfg::kDqFragElems; ++i) {
      // The writer's consumer-major order, or the float4 DqAccumulatorOrder: the device's, which
      // the sm90 configs fix (kVec 4) so this host code computes it too.
      const int offset = Cfg::dq_offset(i, t);
      if (offset >= 0 && offset < Cfg::kDqTileElems) ++taken[offset];
    }
  }
  for (int i = 0; i < Cfg::kDqTileElems; ++i) CHECK(taken[i] == 1, "%s: dQ tile float %d taken %d times", what, i, taken[i]);
  // Varlen's dK/dV store: a consumer's 128 threads, its 64-key slice of K's (V's) tile.
  check_smem_row_store<typename Cfg::Element, Cfg::kHeadDim, 128, Cfg::kKeyRows>(what, "dK/dV store",
                                                                                   typename Cfg::SmemLayoutKSlice{});
  check_bwd_ws_step_addresses<Cfg>(what);
  check_bwd_ws_ds_store<Cfg>(what);
}

// The head-dim-split backward: each consumer's S_c accumulator as rows and columns, the
// transposed views of Q, dO (per buffer), K and P/dS (per buffer), and its dQ pieces: piece p of
// consumer c, element i of thread t, is the postprocess's TiledMmadQ element p * piece_elems + i
// of thread 128 c + t (so the accumulator order the atomics write is the one read back), and
// the fragments cover the dQ tile once.
template <class Cfg>
void check_bwd_sm90_ws_split(const char* what) {
  typename Cfg::TiledMmaSdP mma_sdp;
  typename Cfg::TiledMmadQPiece mma_piece;
  typename Cfg::TiledMmadQ mma_dq;
  check_rows_cols(what, mma_sdp, Shape<Int<Cfg::kBlockM>, Int<Cfg::kKeysPerConsumer>>{}, 128, sm90_rows_cols, true);
  check_rows_cols(what, mma_dq, Shape<Int<Cfg::kBlockM>, Int<Cfg::kHeadDim>>{}, Cfg::kDqThreads, sm90_rows_cols,
                  false);
  check_transposed(what, typename Cfg::SmemLayoutK{}, typename Cfg::SmemLayoutKt{});
  typename Cfg::SmemLayoutQStages q;
  typename Cfg::SmemLayoutQtStages qt;
  for (int stage = 0; stage < Cfg::kStages; ++stage)
    for (int r = 0; r < Cfg::kBlockM; ++r)
      for (int c = 0; c < Cfg::kHeadDim; ++c)
        CHECK(qt(c, r, stage) == q(r, c, stage), "%s: Q^T stage %d element (%d, %d)", what, stage, r, c);
  typename Cfg::SmemLayoutDo d_o;
  typename Cfg::SmemLayoutDot d_ot;
  for (int r = 0; r < Cfg::kBlockM; ++r)
    for (int c = 0; c < Cfg::kHeadDim; ++c) CHECK(d_ot(c, r, 0) == d_o(r, c, 0), "%s: dO^T element (%d, %d)", what, r, c);
  typename Cfg::SmemLayoutPdS pds;
  typename Cfg::SmemLayoutPdSTransposed pds_t;
  std::vector<int> pds_taken(cosize(pds), 0);
  for (int buffer = 0; buffer < Cfg::kPdsBuffers; ++buffer)
    for (int query = 0; query < Cfg::kBlockM; ++query)
      for (int key = 0; key < Cfg::kBlockN; ++key) {
        CHECK(pds_t(key, query, buffer) == pds(query, key, buffer), "%s: P^T buffer %d element (%d, %d)", what, buffer,
              query, key);
        ++pds_taken[pds(query, key, buffer)];
      }
  for (size_t i = 0; i < pds_taken.size(); ++i) CHECK(pds_taken[i] == 1, "%s: P/dS element %d taken %d times", what, int(i), pds_taken[i]);

  using TileShape = Shape<Int<Cfg::kBlockM>, Int<Cfg::kHeadDim>>;
  using PieceShape = Shape<Int<Cfg::kBlockM>, Int<Cfg::kDqPieceDims>>;
  constexpr int kPieceElems = Cfg::kBlockM * Cfg::kDqPieceDims / 128;
  CHECK(kPieceElems * Cfg::kDqPieces == Cfg::kDqFragElems, "%s: dQ pieces make up the fragment", what);
  std::vector<int> taken(Cfg::kDqTileElems, 0);
  for (int consumer = 0; consumer < Cfg::kConsumers; ++consumer)
    for (int t = 0; t < 128; ++t) {
      Tensor whole = mma_dq.get_thread_slice(128 * consumer + t).partition_C(make_identity_tensor(TileShape{}));
      Tensor piece = mma_piece.get_thread_slice(t).partition_C(make_identity_tensor(PieceShape{}));
      CHECK(int(size(piece)) == kPieceElems && int(size(whole)) == Cfg::kDqFragElems, "%s: dQ fragment sizes", what);
      for (int p = 0; p < Cfg::kDqPieces; ++p)
        for (int i = 0; i < kPieceElems; ++i) {
          const int row = get<0>(piece(i)), col = get<1>(piece(i)) + Cfg::dq_piece_dim0(consumer, p);
          const auto w = whole(p * kPieceElems + i);
          CHECK(get<0>(w) == row && get<1>(w) == col,
                "%s: dQ piece %d of consumer %d, thread %d, element %d: (%d, %d) vs the postprocess's (%d, %d)", what,
                p, consumer, t, i, row, col, int(get<0>(w)), int(get<1>(w)));
          const int offset = ((p * kPieceElems + i) / 4) * (Cfg::kDqThreads * 4) + (128 * consumer + t) * 4 + i % 4;
          if (offset >= 0 && offset < Cfg::kDqTileElems) ++taken[offset];
        }
    }
  for (int i = 0; i < Cfg::kDqTileElems; ++i) CHECK(taken[i] == 1, "%s: dQ tile float %d taken %d times", what, i, taken[i]);
  // Varlen's dK (dV) store: one consumer's 128 threads, the whole block_n-key tile of K (V).
  check_smem_row_store<typename Cfg::Element, Cfg::kHeadDim, 128, Cfg::kBlockN>(what, "dK/dV store",
                                                                                  typename Cfg::SmemLayoutK{});
}

// AttentionMask::apply_transposed on a (keys, queries) tile masks exactly what apply masks on the
// (queries, keys) tile, for tiles on and off the causal diagonal and past the sequence ends.
void check_transposed_mask() {
  constexpr int kRows = 8, kCols = 16;
  auto rows_cols_coords = [](int rows, int cols) {
    return make_identity_tensor(make_shape(rows, cols));
  };
  const int seqlens[][2] = {{17, 17}, {64, 100}, {100, 64}, {1, 30}};
  for (auto const& s : seqlens)
    for (bool causal : {false, true})
      for (int query0 : {0, 8, 48, 96})
        for (int key0 : {0, 16, 48, 80}) {
          const flashgen::AttentionMask mask{s[0], s[1], causal, 5, causal ? -1 : 20};
          float scores[kRows][kCols], transposed[kCols][kRows];
          Tensor tile = make_tensor(&scores[0][0], make_layout(make_shape(Int<kRows>{}, Int<kCols>{}), GenRowMajor{}));
          Tensor tile_t = make_tensor(&transposed[0][0], make_layout(make_shape(Int<kCols>{}, Int<kRows>{}), GenRowMajor{}));
          for (int r = 0; r < kRows; ++r)
            for (int c = 0; c < kCols; ++c) tile(r, c) = tile_t(c, r) = 1.f;
          mask.apply(tile, rows_cols_coords(kRows, kCols), query0, key0);
          mask.apply_transposed(tile_t, rows_cols_coords(kCols, kRows), key0, query0);
          for (int r = 0; r < kRows; ++r)
            for (int c = 0; c < kCols; ++c) {
              const bool visible = mask.visible(query0 + r, key0 + c);
              CHECK((tile(r, c) == 1.f) == visible && (tile_t(c, r) == 1.f) == visible,
                    "mask %dx%d causal=%d query %d key %d: apply %g, apply_transposed %g, visible %d", s[0], s[1],
                    causal, query0 + r, key0 + c, tile(r, c), tile_t(c, r), visible);
            }
        }
}

// FlashAttention's visibility rule, written out independently of common/mask.cuh: query i sees
// key j iff 0 <= j < seqlen_k and i + d - left <= j <= i + d + right (d = seqlen_k - seqlen_q, a
// bound of -1 unbounded, causal meaning right = 0). [start, limit) of row i, empty if start >= limit.
struct VisibleKeys {
  int seqlen_q, seqlen_k, left, right;
  int start(int i) const { return left < 0 ? 0 : std::max(0, i + seqlen_k - seqlen_q - left); }
  int limit(int i) const { return right < 0 ? seqlen_k : std::min(seqlen_k, i + seqlen_k - seqlen_q + right + 1); }
  bool sees_range(int i, int c0, int c1) const { return std::max(start(i), c0) < std::min(limit(i), c1); }
};

// Against that rule: the mask's per-element answer; the backward's QueryBlockOrder visits exactly
// the query blocks with a real row that sees some key of its key block, each once (unbounded:
// starting at n_block mod m_blocks); the forward's key_blocks covers every key block a real row
// of its query block sees; a tile the mask calls unmasked has every element visible.
void check_block_schedules() {
  const int seqlens[] = {1, 17, 63, 64, 65, 113, 300, 1000};
  const int tiles[][2] = {{64, 64}, {64, 128}, {128, 64}, {128, 128}, {128, 32}, {64, 80}};
  const int windows[][2] = {{-1, -1}, {0, 0}, {5, 0}, {128, 64}, {-1, 3}, {3, -1}, {4096, 0}};
  for (int seqlen_q : seqlens)
    for (int seqlen_k : seqlens)
      for (auto const& window : windows)
        for (bool causal : {false, true}) {
          const flashgen::AttentionMask mask{seqlen_q, seqlen_k, causal, window[0], window[1]};
          const VisibleKeys rule{seqlen_q, seqlen_k, window[0], causal ? 0 : window[1]};
          const bool unbounded = rule.left < 0 && rule.right < 0;
          for (int i = 0; i < seqlen_q; i += 7)
            for (int j = 0; j < seqlen_k; j += 3)
              CHECK(mask.visible(i, j) == rule.sees_range(i, j, j + 1), "mask %dx%d window (%d, %d) causal=%d: "
                    "(%d, %d)", seqlen_q, seqlen_k, window[0], window[1], causal, i, j);
          for (auto const& tile : tiles) {
            const int block_m = tile[0], block_n = tile[1];
            const int m_blocks = ceil_div(seqlen_q, block_m), n_blocks = ceil_div(seqlen_k, block_n);
            auto sees = [&](int m, int n) {  // some real row of query block m sees a key of key block n
              for (int row = m * block_m; row < std::min((m + 1) * block_m, seqlen_q); ++row)
                if (rule.sees_range(row, n * block_n, std::min((n + 1) * block_n, seqlen_k))) return true;
              return false;
            };
            for (int n = 0; n < n_blocks; ++n) {
              const flashgen::QueryBlockOrder order(mask, block_m, block_n, n);
              std::vector<int> visits(m_blocks, 0);
              for (int step = 0; step < order.steps; ++step) {
                const int m = order.at(step);
                CHECK(0 <= m && m < m_blocks, "order %dx%d causal=%d n=%d: step %d visits block %d", seqlen_q,
                      seqlen_k, causal, n, step, m);
                if (0 <= m && m < m_blocks) ++visits[m];
              }
              for (int m = 0; m < m_blocks; ++m)
                CHECK(visits[m] == (sees(m, n) ? 1 : 0), "order %dx%d tile %dx%d window (%d, %d) causal=%d: key block "
                      "%d visits query block %d %d times", seqlen_q, seqlen_k, block_m, block_n, window[0], window[1],
                      causal, n, m, visits[m]);
              if (unbounded && !causal) CHECK(order.at(0) == n % m_blocks, "order: non-causal start of key block %d", n);
            }
            // A cluster pair (key blocks n, n + 1) walks the query blocks either block's keys are
            // seen from, each once, and no other (a step seen by neither would have no dS at all).
            for (int n = 0; n < n_blocks; n += 2) {
              const flashgen::QueryBlockOrder pair(mask, block_m, block_n, n, 2);
              std::vector<int> visits(m_blocks, 0);
              for (int step = 0; step < pair.steps; ++step) ++visits[pair.at(step)];
              for (int m = 0; m < m_blocks; ++m)
                CHECK(visits[m] == ((sees(m, n) || (n + 1 < n_blocks && sees(m, n + 1))) ? 1 : 0),
                      "pair %dx%d tile %dx%d window (%d, %d) causal=%d: key blocks %d, %d visit query block %d %d "
                      "times", seqlen_q, seqlen_k, block_m, block_n, window[0], window[1], causal, n, n + 1, m,
                      visits[m]);
            }
            // visits(m): the same answer without walking the steps, also for a key block past
            // the keys (a cluster pair's second block at an odd block count): none.
            for (int n = 0; n <= n_blocks; ++n) {
              const flashgen::QueryBlockOrder order(mask, block_m, block_n, n);
              for (int m = 0; m < m_blocks; ++m)
                CHECK(order.visits(m) == (n < n_blocks && sees(m, n)), "visits %dx%d tile %dx%d window (%d, %d) "
                      "causal=%d: key block %d, query block %d", seqlen_q, seqlen_k, block_m, block_n, window[0],
                      window[1], causal, n, m);
            }
            for (int m = 0; m < m_blocks; ++m) {
              const auto blocks = mask.key_blocks(m * block_m, block_m, block_n);
              CHECK(0 <= blocks.first && blocks.first <= blocks.end && blocks.end <= n_blocks,
                    "fwd %dx%d: key blocks [%d, %d) of %d", seqlen_q, seqlen_k, blocks.first, blocks.end, n_blocks);
              for (int n = 0; n < n_blocks; ++n) {
                if (sees(m, n))
                  CHECK(blocks.first <= n && n < blocks.end, "fwd %dx%d tile %dx%d window (%d, %d) causal=%d: query "
                        "block %d misses key block %d", seqlen_q, seqlen_k, block_m, block_n, window[0], window[1],
                        causal, m, n);
                if (!mask.tile_needs_mask(m * block_m, block_m, n * block_n, block_n)) {
                  bool all_visible = true;
                  for (int row = m * block_m; row < std::min((m + 1) * block_m, seqlen_q); ++row)
                    for (int col = n * block_n; col < (n + 1) * block_n; ++col)
                      all_visible &= rule.sees_range(row, col, col + 1);
                  CHECK(all_visible, "tile_needs_mask %dx%d tile %dx%d window (%d, %d) causal=%d: block (%d, %d) has "
                        "masked elements", seqlen_q, seqlen_k, block_m, block_n, window[0], window[1], causal, m, n);
                }
              }
            }
          }
        }
}

// BackwardCta maps the launch grid onto (key block, head, batch) one to one; with heavy-first
// groups (the sm80 causal backward), in launch order no CTA has more query blocks to visit than one launched before it in its head group,
// and groups stay within the L2 budget.
void check_backward_cta_order() {
  const int grids[][3] = {{1, 1, 1}, {128, 8, 2}, {32, 8, 8}, {7, 3, 5}, {9, 16, 2}, {33, 1, 13}};
  const int64_t dq_bytes[] = {1, 2ll << 20, 8ll << 20, 64ll << 20};
  for (auto const& g : grids)
    for (int64_t bytes : dq_bytes)
      for (bool causal : {false, true}) {
        const int key_blocks = g[0], heads = g[1], batches = g[2];
        std::vector<int> seen(size_t(key_blocks) * heads * batches, 0);
        int previous_n = -1, previous_group = -1;
        const int64_t group = std::max<int64_t>(1, std::min<int64_t>(int64_t(heads) * batches,
                                                flashgen::BackwardCta::kL2GroupBytes / bytes));
        for (int z = 0; z < batches; ++z)
          for (int y = 0; y < heads; ++y)
            for (int x = 0; x < key_blocks; ++x) {
              const flashgen::BackwardCta cta(x, y, z, key_blocks, heads, batches, bytes, causal);
              const bool in_range = 0 <= cta.n_block_local && cta.n_block_local < key_blocks && 0 <= cta.head &&
                                    cta.head < heads && 0 <= cta.batch && cta.batch < batches;
              CHECK(in_range, "cta (%d,%d,%d) of %dx%dx%d maps outside the grid", x, y, z, key_blocks, heads, batches);
              if (!in_range) continue;
              ++seen[(size_t(cta.batch) * heads + cta.head) * key_blocks + cta.n_block_local];
              if (!causal) {
                CHECK(cta.n_block_local == x && cta.head == y && cta.batch == z, "non-causal cta (%d,%d,%d) moved", x,
                      y, z);
                continue;
              }
              // Launch order is x fastest: within a group key blocks never go back (heaviest first).
              const int group_index = int((int64_t(cta.batch) * heads + cta.head) / group);
              if (group_index == previous_group)
                CHECK(cta.n_block_local >= previous_n, "causal %dx%dx%d: key block %d after %d in group %d",
                      key_blocks, heads, batches, cta.n_block_local, previous_n, group_index);
              else
                CHECK(group_index == previous_group + 1, "causal: group %d after %d", group_index, previous_group);
              previous_n = cta.n_block_local, previous_group = group_index;
            }
        for (size_t i = 0; i < seen.size(); ++i)
          CHECK(seen[i] == 1, "grid %dx%dx%d causal=%d: tile %zu computed %d times", key_blocks, heads, batches, causal,
                i, seen[i]);
      }
}

// ForwardTileOrder (the sm90 forward's tiles, one per CTA or persistent): tile indices map one to
// one onto (query block, head, batch); the query blocks of a head are consecutive, longest first
// when causal; a persistent grid of any size, CTA b taking tiles b, b + grid, ..., covers each
// tile once.
void check_forward_tile_order() {
  CHECK(flashgen::causal_section_heads(32, 32, 512 * 64 * 4) == 256, "section: 32 MB of 128 KB heads");
  CHECK(flashgen::causal_section_heads(16, 2, 8192 * 128 * 4) == 8, "section: 32 MB of 4 MB heads");
  CHECK(flashgen::causal_section_heads(4, 1, 64ll << 20) == 1, "section: at least one head");
  CHECK(flashgen::causal_section_heads(4, 2, 1024) == 8, "section: at most every head");
  const int shapes[][3] = {{1, 1, 1}, {64, 16, 2}, {3, 32, 32}, {7, 5, 3}};
  for (auto const& shape : shapes)
    for (bool causal : {false, true}) {
      const flashgen::ForwardTileOrder order{shape[0], shape[1], shape[2], causal};
      const int tiles = order.num_tiles();
      std::vector<int> seen(tiles, 0);
      for (int t = 0; t < tiles; ++t) {
        const flashgen::ForwardTile tile = order.at(t);
        const bool in_range = 0 <= tile.m_block && tile.m_block < shape[0] && 0 <= tile.head && tile.head < shape[1] &&
                              0 <= tile.batch && tile.batch < shape[2];
        CHECK(in_range, "tile order %dx%dx%d: tile %d outside the grid", shape[0], shape[1], shape[2], t);
        if (!in_range) continue;
        ++seen[(tile.batch * shape[1] + tile.head) * shape[0] + tile.m_block];
        if (t % shape[0] != 0) {
          const flashgen::ForwardTile previous = order.at(t - 1);
          CHECK(previous.head == tile.head && previous.batch == tile.batch, "tile order: head changes inside a head");
          CHECK(causal ? previous.m_block == tile.m_block + 1 : previous.m_block + 1 == tile.m_block,
                "tile order causal=%d: query block %d after %d", causal, tile.m_block, previous.m_block);
        }
      }
      for (int i = 0; i < tiles; ++i) CHECK(seen[i] == 1, "tile order: tile %d computed %d times", i, seen[i]);
      // Sections of heads (the dynamic scheduler's causal order): every tile once; inside a
      // section the query blocks go longest first (causal), each block over the section's heads.
      for (int section_heads : {2, 3, 64}) {
        flashgen::ForwardTileOrder sectioned = order;
        sectioned.section_heads = section_heads;
        std::vector<int> once(tiles, 0);
        for (int t = 0; t < tiles; ++t) {
          const flashgen::ForwardTile tile = sectioned.at(t);
          const bool in_range = 0 <= tile.m_block && tile.m_block < shape[0] && 0 <= tile.head &&
                                tile.head < shape[1] && 0 <= tile.batch && tile.batch < shape[2];
          CHECK(in_range, "sectioned order %dx%dx%d/%d: tile %d outside the grid", shape[0], shape[1], shape[2],
                section_heads, t);
          if (!in_range) continue;
          ++once[(tile.batch * shape[1] + tile.head) * shape[0] + tile.m_block];
          const int head_index = tile.batch * shape[1] + tile.head;
          if (t > 0 && t % (shape[0] * section_heads) != 0) {
            const flashgen::ForwardTile previous = sectioned.at(t - 1);
            const int previous_head = previous.batch * shape[1] + previous.head;
            CHECK(previous_head / section_heads == head_index / section_heads, "sectioned order: section changes early");
            const bool next_block = previous_head >= head_index;  // wrapped to the section's first head
            CHECK(next_block ? (causal ? previous.m_block == tile.m_block + 1 : previous.m_block + 1 == tile.m_block)
                             : previous.m_block == tile.m_block && previous_head + 1 == head_index,
                  "sectioned order causal=%d: (block %d, head %d) after (block %d, head %d)", causal, tile.m_block,
                  head_index, previous.m_block, previous_head);
          }
        }
        for (int i = 0; i < tiles; ++i)
          CHECK(once[i] == 1, "sectioned order %d: tile %d computed %d times", section_heads, i, once[i]);
      }
      for (int grid : {1, 7, 132}) {
        std::vector<int> covered(tiles, 0);
        for (int b = 0; b < std::min(grid, tiles); ++b)
          for (int t = b; t < tiles; t += std::min(grid, tiles)) ++covered[t];
        for (int i = 0; i < tiles; ++i) CHECK(covered[i] == 1, "persistent grid %d: tile %d taken %d times", grid, i, covered[i]);
        // The dynamic scheduler (sm90 forward): CTA b takes tile b, then counter + grid for each
        // draw, CTAs drawing in any interleaving; every tile once, and every CTA ends on a
        // draw past the last tile (its stop signal).
        std::vector<int> dynamic(tiles, 0);
        const int ctas = std::min(grid, tiles);
        std::vector<int> current(ctas);
        for (int b = 0; b < ctas; ++b) current[b] = b;
        int counter = 0, active = ctas;
        unsigned lcg = 12345u + unsigned(grid);
        while (active > 0) {
          lcg = lcg * 1103515245u + 12345u;
          const int b = int((lcg >> 8) % unsigned(ctas));
          if (current[b] >= tiles) continue;
          ++dynamic[current[b]];
          current[b] = counter++ + ctas;
          if (current[b] >= tiles) --active;
        }
        for (int i = 0; i < tiles; ++i) CHECK(dynamic[i] == 1, "dynamic grid %d: tile %d taken %d times", grid, i, dynamic[i]);
      }
    }
}

// The varlen sm90 forward's tiles: an order over the longest sequence's query blocks for every
// sequence, the tiles past a sequence's rows skipped (has_query_rows, common/tile_scheduler.cuh),
// in each of the kernel's schedules (one CTA per tile, a persistent grid, the dynamic hand-out).
// No computed tile starts past its sequence's end, and the 64-row consumer slices of the
// computed tiles, clipped at the sequence's end as the O store clips them, hold every row of
// every (sequence, head) exactly once; empty sequences get no tile.
void check_varlen_forward_tiles() {
  unsigned state = 4242u;
  auto next = [&](int bound) { state = state * 1664525u + 1013904223u; return int((state >> 8) % unsigned(bound)); };
  for (int trial = 0; trial < 200; ++trial) {
    const int batch = 1 + next(8), heads = 1 + next(3), block_m = 64 * (1 + next(3));
    std::vector<int> lengths(batch);
    int longest = 0;
    for (int& len : lengths) {
      len = next(4) == 0 ? 0 : next(trial % 2 ? 5 * block_m : 70);  // about a quarter empty
      longest = std::max(longest, len);
    }
    // section_heads 1 (the static orders), and sections of heads as the dynamic scheduler's
    // causal calls order them.
    for (int section_heads : {1, 2, 5})
    for (bool causal : {false, true}) {
      const flashgen::ForwardTileOrder order{(longest + block_m - 1) / block_m, heads, batch, causal, section_heads};
      const int tiles = order.num_tiles();
      auto computed = [&](int t) {
        const flashgen::ForwardTile tile = order.at(t);
        return flashgen::has_query_rows(tile, block_m, lengths[tile.batch]);
      };
      auto check_cover = [&](std::vector<int> const& visited, const char* schedule) {
        std::vector<std::vector<int>> rows(batch * heads);
        for (int b = 0; b < batch; ++b)
          for (int h = 0; h < heads; ++h) rows[b * heads + h].assign(lengths[b], 0);
        for (int t : visited) {
          const flashgen::ForwardTile tile = order.at(t);
          const int len = lengths[tile.batch];
          CHECK(tile.m_block * block_m < len, "varlen tiles (%s): tile %d starts at row %d of a %d-row sequence",
                schedule, t, tile.m_block * block_m, len);
          for (int consumer = 0; consumer < block_m / 64; ++consumer) {
            const int row0 = tile.m_block * block_m + consumer * 64;
            for (int r = 0; r < 64 && r < len - row0; ++r) ++rows[tile.batch * heads + tile.head][row0 + r];
          }
        }
        for (int i = 0; i < batch * heads; ++i)
          for (int r = 0; r < int(rows[i].size()); ++r)
            CHECK(rows[i][r] == 1, "varlen tiles (%s, causal=%d): sequence %d head %d row %d stored %d times",
                  schedule, causal, i / heads, i % heads, r, rows[i][r]);
      };
      std::vector<int> one_per_cta;
      for (int t = 0; t < tiles; ++t)
        if (computed(t)) one_per_cta.push_back(t);
      check_cover(one_per_cta, "one CTA per tile");
      for (int grid : {1, 5, 132}) {
        const int ctas = std::min(grid, tiles);
        std::vector<int> persistent, dynamic;
        for (int b = 0; b < ctas; ++b)
          for (int t = b; t < tiles; t += ctas)
            if (computed(t)) persistent.push_back(t);
        check_cover(persistent, "persistent");
        // The dynamic hand-out, CTAs drawing in a random interleaving; the producer skips what
        // it draws past a sequence's rows, announcing only computed tiles.
        std::vector<int> current(ctas);
        for (int b = 0; b < ctas; ++b) current[b] = b;
        int counter = 0, active = ctas;
        while (active > 0) {
          const int b = next(ctas);
          if (current[b] >= tiles) continue;
          if (computed(current[b])) dynamic.push_back(current[b]);
          current[b] = counter++ + ctas;
          if (current[b] >= tiles) --active;
        }
        check_cover(dynamic, "dynamic");
      }
    }
  }
}

// VarlenSequenceLengths' padded offsets (common/seqlen.cuh) over random length lists, zeros
// included: each sequence gets ceil(len / block_m) whole tiles starting at a multiple of block_m,
// no two sequences' tiles overlap, and they all lie within the head's padded_total rows; the
// dQ accumulator tiles are the same rows times head_dim, heads padded_total rows apart.
template <int kBlockM>
void check_varlen_padded_offsets_for() {
  unsigned state = 12345u + kBlockM;
  auto next = [&](int bound) { state = state * 1664525u + 1013904223u; return int((state >> 8) % unsigned(bound)); };
  for (int trial = 0; trial < 300; ++trial) {
    const int batch = 1 + next(12);
    std::vector<int> cu_q(batch + 1, 0), cu_k(batch + 1, 0);
    const int longest = trial % 3 == 0 ? 4 : 3 * kBlockM;
    for (int b = 0; b < batch; ++b) {
      const int len = next(4) == 0 ? 0 : next(longest + 1);  // about a quarter empty
      cu_q[b + 1] = cu_q[b] + len;
      cu_k[b + 1] = cu_k[b] + next(longest + 1);
    }
    flashgen::BwdParams p{};
    p.batch = batch;
    p.nheads = 1 + next(3);
    p.cu_seqlens_q = cu_q.data();
    p.cu_seqlens_k = cu_k.data();
    p.total_q = cu_q[batch];
    p.total_k = cu_k[batch];
    const int64_t padded_total = flashgen::VarlenSequenceLengths::padded_total<kBlockM>(p.total_q, batch);
    std::vector<int> owner(size_t(padded_total), -1);
    for (int b = 0; b < batch; ++b) {
      const flashgen::VarlenSequenceLengths seqlens(p, b);
      CHECK(seqlens.seqlen_q == cu_q[b + 1] - cu_q[b] && seqlens.seqlen_k == cu_k[b + 1] - cu_k[b],
            "varlen block_m %d: sequence %d's lengths", kBlockM, b);
      const int64_t start = seqlens.padded_start<kBlockM>();
      const int tiles = (seqlens.seqlen_q + kBlockM - 1) / kBlockM;
      CHECK(start % kBlockM == 0, "varlen block_m %d: sequence %d starts at row %lld", kBlockM, b, (long long)start);
      CHECK(start >= 0 && start + int64_t(tiles) * kBlockM <= padded_total,
            "varlen block_m %d: sequence %d's %d tiles from %lld leave the %lld padded rows", kBlockM, b, tiles,
            (long long)start, (long long)padded_total);
      for (int64_t row = start; row < start + int64_t(tiles) * kBlockM && row < padded_total; ++row) {
        CHECK(owner[size_t(row)] == -1, "varlen block_m %d: row %lld of sequences %d and %d", kBlockM,
              (long long)row, owner[size_t(row)], b);
        owner[size_t(row)] = b;
      }
      for (int head = 0; head < p.nheads; ++head) {
        CHECK(seqlens.padded_rows_offset<kBlockM>(p, head) == head * padded_total + start,
              "varlen block_m %d: sequence %d head %d row statistics", kBlockM, b, head);
        constexpr int kTileElems = kBlockM * 64;
        CHECK((seqlens.dq_tiles_offset<kBlockM, kTileElems>(p, head, seqlens.query_blocks<kBlockM>(p))) == (head * padded_total + start) * 64,
              "varlen block_m %d: sequence %d head %d dQ tiles", kBlockM, b, head);
        CHECK(seqlens.lse_offset(p, head) == int64_t(head) * p.total_q + cu_q[b],
              "varlen: sequence %d head %d lse", b, head);
      }
      flashgen::TensorArg t{nullptr, 0, 7, 1};
      CHECK(seqlens.q_row_base(t) == int64_t(cu_q[b]) * 7 && seqlens.k_row_base(t) == int64_t(cu_k[b]) * 7 &&
                seqlens.dkv_accum_rows_before() == cu_k[b],
            "varlen: sequence %d row bases", b);
    }
  }
}

// The varlen sm90 backwards' key blocks (bwd_ws_kernel.cuh: 64-key stores per consumer of a
// 128-key block; bwd_ws_split_kernel.cuh: one block_n-key store): over random length lists,
// empty sequences included, and launch_bwd_pipeline's launches (all key blocks at once, or
// deterministic mode's dq_splits at a time), the CTAs that do not exit (n_block * block_n <
// seqlen_k) store every key row of every (sequence, head) exactly once, clipped at seqlen_k as
// store_rows clips them (row < rows_left), and no row of another sequence; a CTA that exits has
// no key of its sequence.
template <int kBlockN, int kStoreRows>
void check_varlen_backward_key_blocks_for() {
  unsigned state = 777u + kBlockN;
  auto next = [&](int bound) { state = state * 1664525u + 1013904223u; return int((state >> 8) % unsigned(bound)); };
  for (int trial = 0; trial < 200; ++trial) {
    const int batch = 1 + next(8), heads = 1 + next(3);
    std::vector<int> cu_q(batch + 1, 0), cu_k(batch + 1, 0);
    int longest_k = 0;
    for (int b = 0; b < batch; ++b) {
      const int len_k = next(4) == 0 ? 0 : next(trial % 2 ? 4 * kBlockN : 70);  // about a quarter empty
      cu_k[b + 1] = cu_k[b] + len_k;
      cu_q[b + 1] = cu_q[b] + next(100);
      longest_k = std::max(longest_k, len_k);
    }
    flashgen::BwdParams p{};
    p.batch = batch;
    p.nheads = heads;
    p.cu_seqlens_q = cu_q.data();
    p.cu_seqlens_k = cu_k.data();
    p.total_q = cu_q[batch];
    p.total_k = cu_k[batch];
    const int n_blocks = (longest_k + kBlockN - 1) / kBlockN;
    for (int per_launch : {n_blocks, 1, 3}) {
      if (per_launch <= 0) continue;
      std::vector<int> stored(size_t(p.total_k) * heads, 0);
      for (int first = 0; first < n_blocks; first += per_launch)
        for (int local = 0; local < std::min(per_launch, n_blocks - first); ++local)
          for (int head = 0; head < heads; ++head)
            for (int b = 0; b < batch; ++b) {
              const int n_block = first + local;
              const flashgen::VarlenSequenceLengths seqlens(p, b);
              if (n_block * kBlockN >= seqlens.seqlen_k) {  // the kernels' early exit
                CHECK(n_block * kBlockN >= cu_k[b + 1] - cu_k[b], "varlen bwd: a CTA with keys exits");
                continue;
              }
              for (int key0 = n_block * kBlockN; key0 < (n_block + 1) * kBlockN; key0 += kStoreRows) {
                const int rows_left = seqlens.seqlen_k - key0;
                for (int r = 0; r < kStoreRows && r < rows_left; ++r) {
                  const int64_t row = seqlens.k_row_base(flashgen::TensorArg{nullptr, 0, 1, 1}) + key0 + r;
                  CHECK(row >= cu_k[b] && row < cu_k[b + 1], "varlen bwd: sequence %d stores packed key row %lld", b,
                        (long long)row);
                  if (row >= 0 && row < p.total_k) ++stored[size_t(row) * heads + head];
                }
              }
            }
      for (size_t i = 0; i < stored.size(); ++i)
        CHECK(stored[i] == 1, "varlen bwd (block_n %d, %d key blocks a launch): key row %d head %d stored %d times",
              kBlockN, per_launch, int(i / heads), int(i % heads), stored[i]);
    }
  }
}

void check_varlen_backward_key_blocks() {
  check_varlen_backward_key_blocks_for<128, 64>();  // bwd_ws_kernel.cuh
  check_varlen_backward_key_blocks_for<80, 80>();   // bwd_ws_split_kernel.cuh at head dim 256
  check_varlen_backward_key_blocks_for<96, 96>();
}

// The backward preprocess's 16-byte pieces (common/bwd_pipeline.cuh PreprocessPieces): every
// (row, element) of the rows is in exactly one slot's piece; every row has one first lane; a
// slot's xor-shuffle partners are in its warp and its row (so each row's sum is over its own
// pieces, in a fixed order).
template <int kRows, int kHeadDim, int kElementBytes>
void check_preprocess_pieces_for() {
  using Pieces = flashgen::PreprocessPieces<kRows, kHeadDim, kElementBytes>;
  std::vector<int> covered(kRows * kHeadDim, 0), firsts(kRows, 0);
  for (int slot = 0; slot < Pieces::kSlots; ++slot) {
    if (Pieces::piece(slot) == 0) ++firsts[Pieces::row(slot)];
    if (Pieces::piece(slot) >= Pieces::kPiecesPerRow) continue;
    for (int i = 0; i < Pieces::kPieceElems; ++i) ++covered[Pieces::row(slot) * kHeadDim + Pieces::first_element(slot) + i];
    for (int offset = Pieces::kLanesPerRow / 2; offset > 0; offset /= 2) {
      const int partner = slot ^ offset;
      CHECK(partner / 32 == slot / 32 && Pieces::row(partner) == Pieces::row(slot),
            "preprocess %dx%d: slot %d's shuffle partner %d is in another warp or row", kRows, kHeadDim, slot, partner);
    }
  }
  for (size_t i = 0; i < covered.size(); ++i)
    CHECK(covered[i] == 1, "preprocess %dx%d/%dB: element %zu in %d pieces", kRows, kHeadDim, kElementBytes, i, covered[i]);
  for (int r = 0; r < kRows; ++r) CHECK(firsts[r] == 1, "preprocess %dx%d: row %d has %d first lanes", kRows, kHeadDim, r, firsts[r]);
  CHECK(Pieces::kSlots % flashgen::kPreprocessThreads == 0 || Pieces::kSlots < flashgen::kPreprocessThreads,
        "preprocess %dx%d: slots fill whole passes", kRows, kHeadDim);
}

void check_preprocess_pieces() {
  check_preprocess_pieces_for<64, 64, 2>();
  check_preprocess_pieces_for<64, 96, 2>();
  check_preprocess_pieces_for<64, 128, 2>();
  check_preprocess_pieces_for<64, 192, 2>();
  check_preprocess_pieces_for<64, 256, 2>();
  check_preprocess_pieces_for<16, 64, 2>();
  check_preprocess_pieces_for<32, 96, 2>();
  CHECK((flashgen::PreprocessPieces<64, 96, 2>::kLanesPerRow == 16), "preprocess: 12 pieces a row take 16 lanes");
  CHECK((flashgen::PreprocessPieces<64, 192, 2>::kLanesPerRow == 32), "preprocess: 24 pieces a row take 32 lanes");
  CHECK((flashgen::PreprocessPieces<64, 64, 2>::kLanesPerRow == 8), "preprocess: 8 pieces a row take 8 lanes");
}

void check_varlen_padded_offsets() {
  check_varlen_padded_offsets_for<64>();
  check_varlen_padded_offsets_for<128>();
}

int main() {
  check_preprocess_pieces();
  check_varlen_padded_offsets();
  check_block_schedules();
  check_transposed_mask();
  check_forward_tile_order();
  check_varlen_forward_tiles();
  check_varlen_backward_key_blocks();
  check_backward_cta_order();
  // Every bf16 config of kernels.yaml and the sm90 tuning catalog (tests/catalog_configs.py).
#define CHECK_CONFIG(family, config, name) check_##family<config>(name);
  FLASHGEN_CONFIGS(CHECK_CONFIG)
  std::printf("host checks: %d run, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
