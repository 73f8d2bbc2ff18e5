// Element types of tensors, including GGUF's block-quantized formats.
// A block type stores `block_size` consecutive elements of a row in
// `block_bytes` bytes; rows of a block type must be a whole number of blocks.
// The block layouts below are the GGUF ones, byte for byte, so a mapped GGUF
// tensor is usable as it is. Dequantization (block -> float) lives here because
// every backend needs its meaning; quantization (float -> block) is quant/.
//
//   size_t bytes = loom::row_bytes(DType::Q4_0, 4096);   // 128 blocks * 18 bytes
//   loom::dequantize_row(DType::Q8_0, src, dst, 64);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace loom {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  Q8_0,
  Q4_0,
  I32,
  I8,
};

struct DTypeTraits {
  std::string_view name;
  int block_size;     // elements per block (1 for plain types)
  int block_bytes;    // bytes per block
  bool is_quantized;  // block-quantized (not addressable per element)
  int alignment;      // bytes the data must be aligned to (of an element, or of a block's scale)
};

const DTypeTraits& traits(DType t);
inline std::string_view name(DType t) { return traits(t).name; }
// Parses a name like "q8_0" or "F16" (case-insensitive); returns false if unknown.
bool parse_dtype(std::string_view s, DType* out);

// Bytes taken by `n` elements of a row; n must be a multiple of the block size.
size_t row_bytes(DType t, int64_t n);

// Converts one row of `n` elements to float (F32, F16, BF16, Q8_0, Q4_0, I32, I8).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// --- GGUF block layouts -----------------------------------------------------

constexpr int kQK8_0 = 32;
struct BlockQ8_0 {
  uint16_t d;  // scale, F16
  int8_t qs[kQK8_0];  // x[i] = d * qs[i]
};
static_assert(sizeof(BlockQ8_0) == 34);

constexpr int kQK4_0 = 32;
struct BlockQ4_0 {
  uint16_t d;  // scale, F16
  uint8_t qs[kQK4_0 / 2];  // x[j] = d * ((qs[j] & 15) - 8), x[j+16] = d * ((qs[j] >> 4) - 8)
};
static_assert(sizeof(BlockQ4_0) == 18);

}  // namespace loom
