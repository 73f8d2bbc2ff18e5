// Checks of data-dependent kernel arguments (token ids, cache slots, block
// tables) that every host backend runs before computing, on the calling
// thread, so a bad value is a loom::Error and never an out-of-bounds access.
#pragma once

#include <cstdint>

#include "loom/core/error.h"
#include "loom/core/tensor.h"

namespace loom::backend {

// Every element of the i32 vector `v` lies in [0, limit).
inline void check_indices(const Tensor& v, int64_t limit, const char* op, const char* what) {
  for (int64_t i = 0; i < v.dim(0); ++i) {
    const int32_t x = *reinterpret_cast<const int32_t*>(v.data() + i * v.stride(0));
    LOOM_CHECK(x >= 0 && x < limit, "[backend] {}: {}[{}] = {} is outside [0, {})", op, what, i, x, limit);
  }
}

// Attention metadata: sequence ids index the block table, positions stay
// inside the table's blocks, and every block id used names a cache block.
inline void check_attention_indices(const Tensor& pos, const Tensor& seq, const Tensor& table, int64_t cache_slots,
                                    int block_size) {
  const int64_t T = pos.dim(0), NS = table.dim(0), MB = table.dim(1);
  const int64_t n_blocks = cache_slots / block_size;
  check_indices(seq, NS, "attention", "seq_ids");
  check_indices(pos, MB * block_size, "attention", "positions");
  for (int64_t t = 0; t < T; ++t) {
    const int32_t s = *reinterpret_cast<const int32_t*>(seq.data() + t * seq.stride(0));
    const int32_t p = *reinterpret_cast<const int32_t*>(pos.data() + t * pos.stride(0));
    const auto* brow = reinterpret_cast<const int32_t*>(table.data() + s * table.stride(0));
    for (int64_t b = 0; b <= p / block_size; ++b)
      LOOM_CHECK(brow[b] >= 0 && brow[b] < n_blocks, "[backend] attention: block_table[{}][{}] = {} is outside [0, {})",
                 s, b, brow[b], n_blocks);
  }
}

}  // namespace loom::backend
