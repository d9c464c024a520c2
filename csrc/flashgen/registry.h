// The dispatch table's shape. The table itself is generated (templates/dispatch_table.cpp.j2)
// from the build's selection; nothing hand-written lists kernels.
#pragma once
#include <cuda_runtime.h>

#include "flashgen/params.h"

namespace flashgen {

using FwdLauncher = cudaError_t (*)(const FwdParams&, cudaStream_t);
using BwdLauncher = cudaError_t (*)(const BwdParams&, cudaStream_t);

struct KernelEntry {
  const char* name;   // flashgen/naming.py: flash_{direction}_hdim{D}_{dtype}_sm{NN}[_{feature}...]
  FwdLauncher fwd;    // set for direction "fwd"
  BwdLauncher bwd;    // set for direction "bwd"
  int block_m;        // query rows per tile (kernels.yaml): the bwd's dQ accumulator comes in such tiles
  int block_n;        // key rows per tile: deterministic mode uses at most one dQ split per key block
};

// Kernels compiled into this build.
extern const KernelEntry kBuiltKernels[];
extern const int kNumBuiltKernels;
// Every kernel the catalog (kernels.yaml) defines, built or not: lets errors say what to build.
extern const char* const kCatalogKernels[];
extern const int kNumCatalogKernels;

}  // namespace flashgen
