// Kernels for scalar: see kernels_impl.h.
#include "loom/backend/cpu/simd/kernels_prelude.h"
#include "loom/backend/cpu/simd/vec_scalar.h"
#define LOOM_VEC VecScalar
#define LOOM_ISA_NS isa_scalar
#define LOOM_TABLE kKernelsScalar
#include "loom/backend/cpu/simd/kernels_impl.h"
