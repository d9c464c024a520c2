// The one C entry point of a JIT-compiled kernel library (templates/jit_kernel.cpp.j2 defines it,
// csrc/binding.cpp looks it up with dlsym). A kernel built on first use is its own shared library,
// since a process cannot reload a relinked extension; the torch binding is built once and
// registers each library's entry next to the ahead-of-time table (kBuiltKernels).
#pragma once
#include <cstddef>

#include "flashgen/registry.h"

// Fills *entry and returns 0, or returns 1 when the caller's KernelEntry has another size (a
// library built from other sources than the binding: rebuild it). The name ends in the entry's
// layout version: change both together.
#define FLASHGEN_JIT_ENTRY_SYMBOL "flashgen_kernel_entry_v1"
extern "C" int flashgen_kernel_entry_v1(flashgen::KernelEntry* entry, std::size_t entry_size);
using FlashgenJitEntry = int (*)(flashgen::KernelEntry*, std::size_t);
