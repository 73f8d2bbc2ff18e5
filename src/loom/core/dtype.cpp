#include "loom/core/dtype.h"

#include <array>
#include <cctype>
#include <cstring>

#include "loom/core/error.h"
#include "loom/core/half.h"

namespace loom {

namespace {
constexpr std::array<DTypeTraits, 9> kTraits = {{
    {"f32", 1, 4, false, 4},
    {"f16", 1, 2, false, 2},
    {"bf16", 1, 2, false, 2},
    {"q8_0", kQK8_0, int(sizeof(BlockQ8_0)), true, int(alignof(BlockQ8_0))},
    {"q4_0", kQK4_0, int(sizeof(BlockQ4_0)), true, int(alignof(BlockQ4_0))},
    {"i32", 1, 4, false, 4},
    {"i8", 1, 1, false, 1},
    {"q4_k", kQK_K, int(sizeof(BlockQ4_K)), true, int(alignof(BlockQ4_K))},
    {"q6_k", kQK_K, int(sizeof(BlockQ6_K)), true, int(alignof(BlockQ6_K))},
}};
}  // namespace

const DTypeTraits& traits(DType t) {
  const auto i = size_t(t);
  if (i >= kTraits.size()) fail("[core] unknown dtype {}", int(i));
  return kTraits[i];
}

bool parse_dtype(std::string_view s, DType* out) {
  for (size_t i = 0; i < kTraits.size(); ++i) {
    const auto n = kTraits[i].name;
    if (n.size() != s.size()) continue;
    bool eq = true;
    for (size_t j = 0; j < n.size() && eq; ++j) eq = std::tolower(static_cast<unsigned char>(s[j])) == n[j];
    if (eq) {
      *out = DType(i);
      return true;
    }
  }
  return false;
}

size_t row_bytes(DType t, int64_t n) {
  const auto& tr = traits(t);
  LOOM_CHECK(n >= 0 && n % tr.block_size == 0, "[core] a {} row needs a multiple of {} elements, got {}", tr.name,
             tr.block_size, n);
  return size_t(n / tr.block_size) * size_t(tr.block_bytes);
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0: {
      LOOM_CHECK(n % kQK8_0 == 0, "[core] q8_0 row length {} is not a multiple of {}", n, kQK8_0);
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK8_0; ++j) dst[i * kQK8_0 + j] = d * float(b[i].qs[j]);
      }
      return;
    }
    case DType::Q4_0: {
      LOOM_CHECK(n % kQK4_0 == 0, "[core] q4_0 row length {} is not a multiple of {}", n, kQK4_0);
      const auto* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t i = 0; i < n / kQK4_0; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK4_0 / 2; ++j) {
          dst[i * kQK4_0 + j] = d * float((b[i].qs[j] & 15) - 8);
          dst[i * kQK4_0 + j + kQK4_0 / 2] = d * float((b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::I32: {
      const auto* s = static_cast<const int32_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::Q4_K: {
      LOOM_CHECK(n % kQK_K == 0, "[core] q4_k row length {} is not a multiple of {}", n, kQK_K);
      const auto* b = static_cast<const BlockQ4_K*>(src);
      for (int64_t i = 0; i < n / kQK_K; ++i, dst += kQK_K) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int c = 0; c < 4; ++c) {
          uint8_t sc0, m0, sc1, m1;
          q4_k_scale_min(b[i].scales, 2 * c, &sc0, &m0);
          q4_k_scale_min(b[i].scales, 2 * c + 1, &sc1, &m1);
          for (int l = 0; l < 32; ++l) {
            dst[64 * c + l] = d * float(sc0) * float(b[i].qs[32 * c + l] & 15) - dmin * float(m0);
            dst[64 * c + 32 + l] = d * float(sc1) * float(b[i].qs[32 * c + l] >> 4) - dmin * float(m1);
          }
        }
      }
      return;
    }
    case DType::Q6_K: {
      LOOM_CHECK(n % kQK_K == 0, "[core] q6_k row length {} is not a multiple of {}", n, kQK_K);
      const auto* b = static_cast<const BlockQ6_K*>(src);
      for (int64_t i = 0; i < n / kQK_K; ++i, dst += kQK_K) {
        const float d = f16_to_f32(b[i].d);
        for (int h = 0; h < 2; ++h) {
          for (int k = 0; k < 4; ++k) {
            for (int l = 0; l < 32; ++l) {
              const uint8_t low = b[i].ql[64 * h + l + 32 * (k & 1)];
              const int q = ((k < 2 ? low & 15 : low >> 4) | (((b[i].qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
              const int e = 128 * h + 32 * k + l;
              dst[e] = d * float(b[i].scales[e / 16]) * float(q);
            }
          }
        }
      }
      return;
    }
    case DType::I8: {
      const auto* s = static_cast<const int8_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
  }
  fail("[core] dequantize_row: unsupported dtype {}", int(t));
}

}  // namespace loom
