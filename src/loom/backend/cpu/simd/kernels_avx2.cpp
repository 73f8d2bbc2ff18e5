// Kernels for avx2: see kernels_impl.h. Only the region between the target pragmas is compiled
// for this instruction set (see kernels_prelude.h for why).
#if defined(__x86_64__)
#include "loom/backend/cpu/simd/kernels_prelude.h"
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#include "loom/backend/cpu/simd/vec_avx2.h"
#define LOOM_VEC VecAvx2
#define LOOM_ISA_NS isa_avx2
#define LOOM_TABLE kKernelsAvx2
#include "loom/backend/cpu/simd/kernels_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
