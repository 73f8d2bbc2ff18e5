// Everything a kernels_<isa>.cpp needs from outside its instruction set,
// included BEFORE the region compiled for that set. Inline functions of these
// headers (half conversions, std::min, ...) thus stay baseline code: if the
// linker keeps a copy from an AVX-512 translation unit, it must still run on
// every CPU. Only the vector layer and kernels_impl.h sit inside the region.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "loom/backend/cpu/simd/kernels.h"
#include "loom/core/dtype.h"
#include "loom/core/half.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif
