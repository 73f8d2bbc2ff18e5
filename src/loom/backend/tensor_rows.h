// Row access for host kernels: a tensor of rank r is seen as rows of its last
// dimension (which is dense), addressed through the strides of the others.
#pragma once

#include <cstddef>
#include <cstdint>

#include "loom/core/tensor.h"

namespace loom::backend {

// Number of rows (product of all dims but the last).
inline int64_t row_count(const Tensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.rank() - 1; ++i) n *= t.dim(i);
  return n;
}

// Address of row `r` (row-major order over the leading dims).
inline std::byte* row_ptr(const Tensor& t, int64_t r) {
  std::byte* p = t.data();
  for (int i = t.rank() - 2; i >= 0; --i) {
    const int64_t d = t.dim(i);
    p += (r % d) * t.stride(i);
    r /= d;
  }
  return p;
}

template <typename T>
inline T* row_as(const Tensor& t, int64_t r) {
  return reinterpret_cast<T*>(row_ptr(t, r));
}

}  // namespace loom::backend
