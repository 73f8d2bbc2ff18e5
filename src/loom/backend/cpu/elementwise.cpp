// Row-wise kernels: embedding lookup, RMSNorm, RoPE, SwiGLU, add, mul, scale,
// softmax. Rows are split between threads when there are enough of them.
#include <cmath>
#include <cstring>

#include "loom/backend/cpu/cpu_context.h"
#include "loom/backend/cpu/simd/kernels.h"
#include "loom/backend/kernel_checks.h"

namespace loom::backend::cpu {

namespace {

// Rows per chunk so that a chunk is worth a thread hand-off (~16K elements).
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

template <typename F>
void binary(Context& ctx, std::span<const Tensor> in, const Tensor& out, F f) {
  const Tensor &a = in[0], &b = in[1];
  const Rows ar(a), br(b), orow(out);
  const int64_t C = a.dim(-1), R = ar.count();
  const int64_t b_rows = b.numel() / std::max<int64_t>(C, 1);
  const bool same = b_rows == R;
  const float* bflat = same ? nullptr : b.data_as<const float>();
  ctx.for_chunks(R, row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = ar.as<const float>(r);
      const float* y = same ? br.as<const float>(r) : bflat + (r % b_rows) * C;
      float* o = orow.as<float>(r);
      for (int64_t c = 0; c < C; ++c) o[c] = f(x[c], y[c]);
    }
  });
}

}  // namespace

void get_rows(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &table = in[0], &ids = in[1];
  check_indices(ids, table.dim(0), "get_rows", "ids");
  const int64_t C = table.dim(1);
  const std::byte* base = table.data();
  const int64_t stride = table.stride(0);
  float* o = out.data_as<float>();
  ctx.for_chunks(ids.dim(0), row_grain(C), [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t id = *reinterpret_cast<const int32_t*>(ids.data() + t * ids.stride(0));
      dequantize_row(table.dtype(), base + id * stride, o + t * C, C);
    }
  });
}

void rms_norm(Context& ctx, const graph::RmsNorm& p, std::span<const Tensor> in, const Tensor& out) {
  const Rows xr(in[0]), orow(out);
  const int64_t C = in[0].dim(-1);
  const float* w = in.size() > 1 ? in[1].data_as<const float>() : nullptr;
  ctx.for_chunks(xr.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = xr.as<const float>(r);
      float* o = orow.as<float>(r);
      float ss = 0;
      for (int64_t c = 0; c < C; ++c) ss += x[c] * x[c];
      const float inv = 1.0f / std::sqrt(ss / float(C) + p.eps);
      for (int64_t c = 0; c < C; ++c) o[c] = x[c] * inv * (w ? w[c] : 1.0f);
    }
  });
}

void rope(Context& ctx, const graph::Rope& p, std::span<const Tensor> in, const Tensor& out) {
  rope_rotate(ctx, p, in, out, /*transposed=*/false);
}

void rope_rotate(Context& ctx, const graph::Rope& p, std::span<const Tensor> in, const Tensor& out, bool transposed) {
  const Tensor &x = in[0], &pos = in[1];
  const Rows xr(x), orow(out);
  const int64_t T = x.dim(0), H = x.dim(1), D = x.dim(2), half = p.n_rot / 2;
  const bool adjacent = p.style == graph::RopeStyle::Adjacent;
  // Frequencies once per call (in double, like the reference); angles once per token.
  auto* freq = reinterpret_cast<double*>(ctx.workspace(size_t(half) * sizeof(double)));
  const float* factor = in.size() > 2 ? in[2].data_as<const float>() : nullptr;
  for (int64_t i = 0; i < half; ++i)
    freq[i] = std::pow(double(p.base), -2.0 * double(i) / double(p.n_rot)) / (factor ? double(factor[i]) : 1.0);
  ctx.for_chunks(T, std::max<int64_t>(1, 64 / std::max<int64_t>(H, 1)), [&](int64_t t0, int64_t t1, int thread) {
    float* cs = ctx.scratch(thread, size_t(2 * half));
    for (int64_t t = t0; t < t1; ++t) {
      const double position = double(*reinterpret_cast<const int32_t*>(pos.data() + t * pos.stride(0))) *
                              double(p.freq_scale);
      for (int64_t i = 0; i < half; ++i) {
        const double theta = position * freq[i];
        cs[2 * i] = float(std::cos(theta));
        cs[2 * i + 1] = transposed ? -float(std::sin(theta)) : float(std::sin(theta));
      }
      for (int64_t h = 0; h < H; ++h) {
        const float* xv = xr.as<const float>(t * H + h);
        float* o = orow.as<float>(t * H + h);
        if (o != xv) std::memcpy(o + p.n_rot, xv + p.n_rot, size_t(D - p.n_rot) * 4);
        for (int64_t i = 0; i < half; ++i) {
          const int64_t a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + half;
          const float x0 = xv[a], x1 = xv[b], c = cs[2 * i], s = cs[2 * i + 1];
          o[a] = x0 * c - x1 * s;
          o[b] = x0 * s + x1 * c;
        }
      }
    }
  });
}

void swiglu(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &g = in[0], &u = in[1];
  if (u.numel() != g.numel()) {  // u broadcast over rows of g
    binary(ctx, in, out, [](float a, float b) { return a / (1.0f + std::exp(-a)) * b; });
    return;
  }
  const Rows gr(g), ur(u), orow(out);
  const int64_t C = g.dim(-1);
  const simd::Kernels& k = simd::kernels();
  ctx.for_chunks(gr.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) k.swiglu_f32(gr.as<const float>(r), ur.as<const float>(r), orow.as<float>(r), C);
  });
}

void add(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  binary(ctx, in, out, [](float a, float b) { return a + b; });
}

void mul(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  binary(ctx, in, out, [](float a, float b) { return a * b; });
}

void scale(Context& ctx, const graph::Scale& p, std::span<const Tensor> in, const Tensor& out) {
  const Rows xr(in[0]), orow(out);
  const int64_t C = in[0].dim(-1);
  ctx.for_chunks(xr.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = xr.as<const float>(r);
      float* o = orow.as<float>(r);
      for (int64_t c = 0; c < C; ++c) o[c] = x[c] * p.factor;
    }
  });
}

void softmax(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Rows xr(in[0]), orow(out);
  const int64_t C = in[0].dim(-1);
  ctx.for_chunks(xr.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = xr.as<const float>(r);
      float* o = orow.as<float>(r);
      float mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x[c]);
      for (int64_t c = 0; c < C; ++c) sum += (o[c] = std::exp(x[c] - mx));
      const float inv = 1.0f / sum;
      for (int64_t c = 0; c < C; ++c) o[c] *= inv;
    }
  });
}

}  // namespace loom::backend::cpu
