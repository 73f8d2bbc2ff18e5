#include "loom/quant/quantize.h"

#include <cmath>
#include <cstring>

#include "loom/core/error.h"
#include "loom/core/half.h"
#include "loom/quant/kquants.h"

namespace loom::quant {

namespace {

// Q8_0: scale = max|x| / 127, q = round(x / scale).
void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK8_0) {
    float amax = 0;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    out[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK8_0; ++j) out[i].qs[j] = int8_t(std::lround(x[j] * id));
  }
}

// Q4_0: the element of largest magnitude maps to -8 exactly; scale = max / -8,
// q = clamp(trunc(x / scale + 8.5), 0, 15), the value stored is q - 8.
void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK4_0) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK4_0; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    out[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const auto q0 = uint8_t(std::min(15, int(x[j] * id + 8.5f)));
      const auto q1 = uint8_t(std::min(15, int(x[j + kQK4_0 / 2] * id + 8.5f)));
      out[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

}  // namespace

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  const int bs = traits(t).block_size;
  LOOM_CHECK(n % bs == 0, "[quant] {} needs rows of a multiple of {} elements, got {}", name(t), bs, n);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      return;
    case DType::Q8_0:
      quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n / kQK8_0);
      return;
    case DType::Q4_0:
      quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n / kQK4_0);
      return;
    case DType::Q4_K:
      quantize_row_q4_k(src, static_cast<BlockQ4_K*>(dst), n / kQK_K);
      return;
    case DType::Q6_K:
      quantize_row_q6_k(src, static_cast<BlockQ6_K*>(dst), n / kQK_K);
      return;
    default:
      fail("[quant] cannot quantize to {}", name(t));
  }
}

std::vector<std::byte> quantize_rows(DType t, const float* src, int64_t rows, int64_t n) {
  const size_t rb = row_bytes(t, n);
  std::vector<std::byte> out(rb * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, src + r * n, out.data() + rb * size_t(r), n);
  return out;
}

}  // namespace loom::quant
