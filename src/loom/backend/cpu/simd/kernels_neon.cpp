// Kernels for neon: see kernels_impl.h.
#if defined(__aarch64__)
#include "loom/backend/cpu/simd/kernels_prelude.h"
#include "loom/backend/cpu/simd/vec_neon.h"
#define LOOM_VEC neon::VecNeon
#define LOOM_ISA_NS isa_neon
#define LOOM_TABLE kKernelsNeon
#include "loom/backend/cpu/simd/kernels_impl.h"
#endif
