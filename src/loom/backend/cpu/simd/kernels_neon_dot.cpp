// Kernels for neon_dot: see kernels_impl.h. Only the region between the target pragmas is compiled
// for this instruction set (see kernels_prelude.h for why).
#if defined(__aarch64__)
#include "loom/backend/cpu/simd/kernels_prelude.h"
#define LOOM_NEON_DOTPROD 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("arch=armv8.2-a+dotprod"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
#include "loom/backend/cpu/simd/vec_neon.h"
#define LOOM_VEC neon_dotprod::VecNeon
#define LOOM_ISA_NS isa_neon_dot
#define LOOM_TABLE kKernelsNeonDot
#include "loom/backend/cpu/simd/kernels_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
