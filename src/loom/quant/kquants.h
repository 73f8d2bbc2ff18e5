// Quantizers for the K-quant formats Q4_K and Q6_K (layouts in core/dtype.h);
// quantize_row() in quantize.h dispatches to them.
#pragma once

#include <cstdint>

#include "loom/core/dtype.h"

namespace loom::quant {

void quantize_row_q4_k(const float* x, BlockQ4_K* out, int64_t nb);
void quantize_row_q6_k(const float* x, BlockQ6_K* out, int64_t nb);

}  // namespace loom::quant
