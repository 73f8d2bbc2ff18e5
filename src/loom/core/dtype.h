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
  Q4_K,
  Q6_K,
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

// Converts one row of `n` elements to float (every dtype).
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

// K-quants: super-blocks of 256 elements with quantized per-sub-block scales.
constexpr int kQK_K = 256;

// Q4_K: 8 sub-blocks of 32, x = d * sc[j] * q - dmin * m[j], q in 0..15.
// The 6-bit sc[j], m[j] are packed in `scales`: for j < 4, sc = scales[j] & 63
// and m = scales[j + 4] & 63; for j >= 4, sc = (scales[j + 4] & 15) |
// (scales[j - 4] >> 6) << 4 and m = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4.
// Elements 64c .. 64c+31 are the low nibbles of qs[32c .. 32c+31] (sub-block 2c),
// elements 64c+32 .. 64c+63 their high nibbles (sub-block 2c+1).
struct BlockQ4_K {
  uint16_t d;     // F16
  uint16_t dmin;  // F16
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q6_K: 16 sub-blocks of 16, x = d * scales[j] * (q - 32), q in 0..63 split
// into 4 low bits (ql) and 2 high bits (qh). In each half h (128 elements),
// element 32k + l (k = 0..3, l = 0..31) takes its low bits from
// ql[64h + l + 32 (k & 1)] (low nibble for k < 2, high nibble otherwise)
// and its high bits from bits 2k..2k+1 of qh[32h + l].
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // F16
};
static_assert(sizeof(BlockQ6_K) == 210);

// The 6-bit scale and min of Q4_K sub-block j (0..7).
inline void q4_k_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = uint8_t((scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4));
    *m = uint8_t((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

}  // namespace loom
