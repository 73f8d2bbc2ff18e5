// Matrix multiplication y = x W^T for every weight dtype. Decoding (one row
// of x) streams each weight row once through a fused dequantize-dot; prefill
// (many rows) dequantizes a tile of weight rows into scratch once and reuses
// it for every row of x. Threads split the output columns.
#include <cstring>
#include <memory>

#include "loom/backend/cpu/cpu_context.h"
#include "loom/core/half.h"

namespace loom::backend::cpu {

namespace {

const float* f16_table() {
  static const std::unique_ptr<float[]> table = [] {
    auto t = std::make_unique<float[]>(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = f16_to_f32(uint16_t(i));
    return t;
  }();
  return table.get();
}

// Eight independent partial sums so the compiler can keep them in vector lanes.
inline float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float dot_row(DType dt, const std::byte* w, const float* x, int64_t K) {
  switch (dt) {
    case DType::F32:
      return dot_f32(reinterpret_cast<const float*>(w), x, K);
    case DType::F16: {
      const float* tab = f16_table();
      const auto* h = reinterpret_cast<const uint16_t*>(w);
      float acc[8] = {};
      int64_t i = 0;
      for (; i + 8 <= K; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += tab[h[i + j]] * x[i + j];
      float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; i < K; ++i) s += tab[h[i]] * x[i];
      return s;
    }
    case DType::BF16: {
      const auto* h = reinterpret_cast<const uint16_t*>(w);
      float s = 0;
      for (int64_t i = 0; i < K; ++i) s += bf16_to_f32(h[i]) * x[i];
      return s;
    }
    case DType::Q8_0: {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(w);
      const float* tab = f16_table();
      float s = 0;
      for (int64_t i = 0; i < K / kQK8_0; ++i, x += kQK8_0) {
        float block = 0;
        for (int j = 0; j < kQK8_0; ++j) block += float(b[i].qs[j]) * x[j];
        s += tab[b[i].d] * block;
      }
      return s;
    }
    case DType::Q4_0: {
      const auto* b = reinterpret_cast<const BlockQ4_0*>(w);
      const float* tab = f16_table();
      float s = 0;
      for (int64_t i = 0; i < K / kQK4_0; ++i, x += kQK4_0) {
        float block = 0;
        for (int j = 0; j < kQK4_0 / 2; ++j)
          block += float((b[i].qs[j] & 15) - 8) * x[j] + float((b[i].qs[j] >> 4) - 8) * x[j + kQK4_0 / 2];
        s += tab[b[i].d] * block;
      }
      return s;
    }
    default:
      break;
  }
  // Other dtypes: convert, then dot.
  std::vector<float> tmp(static_cast<size_t>(K));
  dequantize_row(dt, w, tmp.data(), K);
  return dot_f32(tmp.data(), x, K);
}

}  // namespace

void matmul(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &w = in[1];
  const Rows xr(x);
  const int64_t R = xr.count(), N = w.dim(0), K = w.dim(1);
  const std::byte* wbase = w.data();
  const int64_t wstride = w.stride(0);
  float* y = out.data_as<float>();  // output is contiguous [R, N]
  const DType dt = w.dtype();

  if (R < 4) {
    ctx.for_chunks(N, 16, [&](int64_t n0, int64_t n1, int) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t r = 0; r < R; ++r) y[r * N + n] = dot_row(dt, wbase + n * wstride, xr.as<const float>(r), K);
    });
    return;
  }
  // Tile of weight rows, dequantized once per tile, reused for all rows of x.
  constexpr int64_t kTile = 16;
  ctx.for_chunks(N, kTile, [&](int64_t n0, int64_t n1, int thread) {
    float* tile = ctx.scratch(thread, size_t(kTile * K));
    for (int64_t n = n0; n < n1; ++n) {
      const std::byte* src = wbase + n * wstride;
      if (dt == DType::F32)
        std::memcpy(tile + (n - n0) * K, src, size_t(K) * 4);
      else
        dequantize_row(dt, src, tile + (n - n0) * K, K);
    }
    for (int64_t r = 0; r < R; ++r) {
      const float* xrow = xr.as<const float>(r);
      for (int64_t n = n0; n < n1; ++n) y[r * N + n] = dot_f32(tile + (n - n0) * K, xrow, K);
    }
  });
}

}  // namespace loom::backend::cpu
