// Quantization: float rows -> block formats (and F16/BF16). The inverse,
// dequantize_row, is in core/dtype.h because every backend needs it.
// The rounding rules follow the GGUF reference quantizers so that files
// written by loom and by llama.cpp hold the same bytes for the same floats.
//
//   std::vector<std::byte> q(row_bytes(DType::Q4_0, n));
//   quant::quantize_row(DType::Q4_0, x, q.data(), n);
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "loom/core/dtype.h"

namespace loom::quant {

// Converts n floats to dtype `t` (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K); n must be a
// multiple of the block size.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// Converts a [rows, n] float matrix; returns rows * row_bytes(t, n) bytes.
std::vector<std::byte> quantize_rows(DType t, const float* src, int64_t rows, int64_t n);

}  // namespace loom::quant
