// Training kernels (graph/op.h, "Training"): causal self-attention without a
// KV cache and its backward pass, cross-entropy, and the row-wise backward
// ops. Work is split so that no two threads write the same element: rows for
// row-wise ops, columns for reductions over rows (sum_to, the embedding
// gradient), and (query token, head) then (key token, KV head) pairs for the
// two passes of the attention backward.
#include <cmath>
#include <cstring>

#include "loom/backend/cpu/cpu_context.h"
#include "loom/backend/cpu/simd/kernels.h"
#include "loom/backend/kernel_checks.h"

namespace loom::backend::cpu {

namespace {

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

inline int32_t i32_at(const Tensor& v, int64_t i) {
  return *reinterpret_cast<const int32_t*>(v.data() + i * v.stride(0));
}

void check_targets(const Tensor& targets, int64_t vocab, const char* op) {
  for (int64_t r = 0; r < targets.dim(0); ++r)
    LOOM_CHECK(i32_at(targets, r) < vocab, "[backend] {}: targets[{}] = {} is outside [0, {}) (negative: ignored)", op,
               r, i32_at(targets, r), vocab);
}

// max and log(sum(exp(x - max))) + max of a row, in double (the sum of many small terms).
double log_sum_exp(const float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(std::exp(x[i] - mx));
  return double(mx) + std::log(sum);
}

}  // namespace

void fill(Context& ctx, const graph::Fill& p, const Tensor& out) {
  float* o = out.data_as<float>();
  ctx.for_chunks(out.numel(), 1 << 16, [&](int64_t i0, int64_t i1, int) { std::fill(o + i0, o + i1, p.value); });
}

// Elements of type E (float, or the raw 16 bits of bf16), in 32 x 32 tiles.
template <typename E>
void transpose_as(Context& ctx, const Tensor& in, const Tensor& out) {
  const Rows xr(in);
  const int64_t R = xr.count(), C = in.dim(-1);
  constexpr int64_t kTile = 32;
  E* o = out.data_as<E>();
  ctx.for_chunks((R + kTile - 1) / kTile, std::max<int64_t>(1, 512 / std::max<int64_t>(C, 1)),
                 [&](int64_t b0, int64_t b1, int) {
                   for (int64_t r0 = b0 * kTile; r0 < std::min(R, b1 * kTile); r0 += kTile)
                     for (int64_t c0 = 0; c0 < C; c0 += kTile)
                       for (int64_t r = r0; r < std::min(R, r0 + kTile); ++r) {
                         const E* x = xr.as<const E>(r);
                         for (int64_t c = c0; c < std::min(C, c0 + kTile); ++c) o[c * R + r] = x[c];
                       }
                 });
}

void transpose(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  if (in[0].dtype() == DType::BF16)
    transpose_as<uint16_t>(ctx, in[0], out);
  else
    transpose_as<float>(ctx, in[0], out);
}

void sum_to(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Rows xr(in[0]);
  const int64_t R = xr.count(), C = in[0].dim(-1), out_rows = out.numel() / C;
  float* o = out.data_as<float>();
  // Threads own column ranges; each sums every row's piece of its columns.
  ctx.for_chunks(C, std::max<int64_t>(16, C / (4 * ctx.threads())), [&](int64_t c0, int64_t c1, int) {
    for (int64_t r = 0; r < out_rows; ++r) std::fill(o + r * C + c0, o + r * C + c1, 0.0f);
    for (int64_t r = 0; r < R; ++r) {
      const float* x = xr.as<const float>(r);
      float* acc = o + (r % out_rows) * C;
      for (int64_t c = c0; c < c1; ++c) acc[c] += x[c];
    }
  });
}

namespace {

// One query row's attention over its n keys from token s0 (KV head kvh):
// e[j] = exp(scale * q.k_j - max), unnormalised; returns the max and the sum.
struct SoftmaxRow {
  float max, sum;
};
SoftmaxRow softmax_row(const simd::Kernels& kern, const float* qv, const Rows& kr, int64_t s0, int64_t n, int64_t Hkv,
                       int64_t kvh, int64_t D, float scale, float* e) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    e[j] = kern.dot_f32(kr.as<const float>((s0 + j) * Hkv + kvh), qv, D) * scale;
    mx = std::max(mx, e[j]);
  }
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (e[j] = std::exp(e[j] - mx));
  return {mx, sum};
}

}  // namespace

void causal_attention(Context& ctx, const graph::CausalAttention& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &q = in[0], &k = in[1], &v = in[2];
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(1), group = Hq / Hkv;
  const int64_t L = p.seq_len > 0 ? p.seq_len : T;
  const Rows qr(q), kr(k), vr(v);
  float* o = out.data_as<float>();
  const simd::Kernels& kern = simd::kernels();
  ctx.for_chunks(T * Hq, 1, [&](int64_t i0, int64_t i1, int thread) {
    float* score = ctx.scratch(thread, size_t(L + D));
    float* acc = score + L;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / Hq, h = i % Hq, kvh = h / group, s0 = t / L * L, n = t - s0 + 1;
      const float inv = 1.0f / softmax_row(kern, qr.as<const float>(i), kr, s0, n, Hkv, kvh, D, p.scale, score).sum;
      std::fill(acc, acc + D, 0.0f);
      for (int64_t j = 0; j < n; ++j) kern.axpy_f32(score[j] * inv, vr.as<const float>((s0 + j) * Hkv + kvh), acc, D);
      std::memcpy(o + i * D, acc, size_t(D) * 4);
    }
  });
}

// FlashAttention-2's backward order: pass 1 per (query token, head) recomputes
// the probability row P, gives dq and keeps log-sum-exp and delta = sum(P dP);
// pass 2 per (key token, KV head) rebuilds each P[t, j] from them and sums
// dk and dv over the queries that saw the key, so no two threads share a row.
void causal_attention_backward(Context& ctx, const graph::CausalAttentionBackward& prm, std::span<const Tensor> in,
                               const Tensor& out) {
  const Tensor &q = in[0], &k = in[1], &v = in[2], &dy = in[3];
  const graph::CausalAttention& p = prm.attention;
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(1), group = Hq / Hkv;
  const int64_t L = p.seq_len > 0 ? p.seq_len : T;
  const Rows qr(q), kr(k), vr(v), gr(dy);
  float* dq = out.data_as<float>();
  float* dk = dq + T * Hq * D;
  float* dv = dk + T * Hkv * D;
  auto* stats = reinterpret_cast<float*>(ctx.workspace(size_t(2 * T * Hq) * sizeof(float)));
  float* lse = stats;           // [T, Hq]
  float* delta = stats + T * Hq;  // [T, Hq]
  const simd::Kernels& kern = simd::kernels();

  ctx.for_chunks(T * Hq, 1, [&](int64_t i0, int64_t i1, int thread) {
    float* prob = ctx.scratch(thread, size_t(2 * L));
    float* dp = prob + L;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / Hq, h = i % Hq, kvh = h / group, s0 = t / L * L, n = t - s0 + 1;
      const float* g = gr.as<const float>(i);
      const SoftmaxRow row = softmax_row(kern, qr.as<const float>(i), kr, s0, n, Hkv, kvh, D, p.scale, prob);
      const float inv = 1.0f / row.sum;
      float dl = 0;
      for (int64_t j = 0; j < n; ++j) {
        prob[j] *= inv;
        dp[j] = kern.dot_f32(vr.as<const float>((s0 + j) * Hkv + kvh), g, D);
        dl += prob[j] * dp[j];
      }
      float* dqr = dq + i * D;
      std::fill(dqr, dqr + D, 0.0f);
      for (int64_t j = 0; j < n; ++j)
        kern.axpy_f32(p.scale * prob[j] * (dp[j] - dl), kr.as<const float>((s0 + j) * Hkv + kvh), dqr, D);
      lse[i] = row.max + std::log(row.sum);
      delta[i] = dl;
    }
  });

  ctx.for_chunks(T * Hkv, 1, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t j = i / Hkv, kvh = i % Hkv, end = (j / L + 1) * L;
      const float* kv = kr.as<const float>(i);
      const float* vv = vr.as<const float>(i);
      float* dkr = dk + i * D;
      float* dvr = dv + i * D;
      std::fill(dkr, dkr + D, 0.0f);
      std::fill(dvr, dvr + D, 0.0f);
      for (int64_t t = j; t < end; ++t) {
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          const int64_t row = t * Hq + h;
          const float* qv = qr.as<const float>(row);
          const float* g = gr.as<const float>(row);
          const float pr = std::exp(kern.dot_f32(kv, qv, D) * p.scale - lse[row]);
          const float ds = pr * (kern.dot_f32(vv, g, D) - delta[row]);
          kern.axpy_f32(pr, g, dvr, D);
          kern.axpy_f32(p.scale * ds, qv, dkr, D);
        }
      }
    }
  });
}

void cross_entropy(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &logits = in[0], &targets = in[1];
  const int64_t R = logits.dim(0), V = logits.dim(1);
  check_targets(targets, V, "cross_entropy");
  const Rows lr(logits);
  auto* loss = reinterpret_cast<double*>(ctx.workspace(size_t(R) * sizeof(double)));
  ctx.for_chunks(R, row_grain(V), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t y = i32_at(targets, r);
      loss[r] = y < 0 ? 0.0 : log_sum_exp(lr.as<const float>(r), V) - double(lr.as<const float>(r)[y]);
    }
  });
  double total = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) {
    total += loss[r];
    n += i32_at(targets, r) >= 0;
  }
  out.data_as<float>()[0] = n > 0 ? float(total / double(n)) : 0.0f;
}

void cross_entropy_backward(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &logits = in[0], &targets = in[1];
  const int64_t R = logits.dim(0), V = logits.dim(1);
  check_targets(targets, V, "cross_entropy_backward");
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) n += i32_at(targets, r) >= 0;
  const float dl = n > 0 ? in[2].data_as<const float>()[0] / float(n) : 0.0f;
  const Rows lr(logits), orow(out);
  ctx.for_chunks(R, row_grain(V), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t y = i32_at(targets, r);
      const float* l = lr.as<const float>(r);
      float* o = orow.as<float>(r);
      if (y < 0) {
        std::fill(o, o + V, 0.0f);
        continue;
      }
      const float lse = float(log_sum_exp(l, V));
      for (int64_t c = 0; c < V; ++c) o[c] = dl * std::exp(l[c] - lse);
      o[y] -= dl;
    }
  });
}

void rms_norm_backward(Context& ctx, const graph::RmsNormBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Rows xr(in[0]), gr(in[1]), orow(out);
  const int64_t C = in[0].dim(-1);
  const float* w = in.size() > 2 ? in[2].data_as<const float>() : nullptr;
  ctx.for_chunks(xr.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = xr.as<const float>(r);
      const float* g = gr.as<const float>(r);
      float* o = orow.as<float>(r);
      float ss = 0, gx = 0;
      for (int64_t c = 0; c < C; ++c) {
        ss += x[c] * x[c];
        gx += g[c] * (w ? w[c] : 1.0f) * x[c];
      }
      const float inv = 1.0f / std::sqrt(ss / float(C) + p.eps);
      const float k = inv * inv * inv * gx / float(C);
      for (int64_t c = 0; c < C; ++c) o[c] = inv * g[c] * (w ? w[c] : 1.0f) - x[c] * k;
    }
  });
}

void rope_backward(Context& ctx, const graph::RopeBackward& prm, std::span<const Tensor> in, const Tensor& out) {
  rope_rotate(ctx, prm.rope, in, out, /*transposed=*/true);  // in = {dy, positions[, factors]}
}

void swiglu_backward(Context& ctx, const graph::SwiGluBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Rows gate(in[0]), up(in[1]), dy(in[2]), orow(out);
  const int64_t C = in[0].dim(-1);
  ctx.for_chunks(gate.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gate.as<const float>(r);
      const float* u = up.as<const float>(r);
      const float* d = dy.as<const float>(r);
      float* o = orow.as<float>(r);
      for (int64_t c = 0; c < C; ++c) {
        const float s = 1.0f / (1.0f + std::exp(-g[c]));
        o[c] = p.wrt_up ? d[c] * g[c] * s : d[c] * u[c] * s * (1.0f + g[c] * (1.0f - s));
      }
    }
  });
}

void softmax_backward(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Rows yr(in[0]), gr(in[1]), orow(out);
  const int64_t C = in[0].dim(-1);
  ctx.for_chunks(yr.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* y = yr.as<const float>(r);
      const float* g = gr.as<const float>(r);
      float* o = orow.as<float>(r);
      float dot = 0;
      for (int64_t c = 0; c < C; ++c) dot += y[c] * g[c];
      for (int64_t c = 0; c < C; ++c) o[c] = y[c] * (g[c] - dot);
    }
  });
}

void get_rows_backward(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &dy = in[0], &ids = in[1];
  const int64_t V = out.dim(0), C = out.dim(1), T = ids.dim(0);
  check_indices(ids, V, "get_rows_backward", "ids");
  const Rows gr(dy);
  float* o = out.data_as<float>();
  // Threads own column ranges, so repeated ids add up without races.
  ctx.for_chunks(C, std::max<int64_t>(16, C / (4 * ctx.threads())), [&](int64_t c0, int64_t c1, int) {
    for (int64_t r = 0; r < V; ++r) std::fill(o + r * C + c0, o + r * C + c1, 0.0f);
    for (int64_t t = 0; t < T; ++t) {
      const float* g = gr.as<const float>(t);
      float* acc = o + int64_t(i32_at(ids, t)) * C;
      for (int64_t c = c0; c < c1; ++c) acc[c] += g[c];
    }
  });
}

void slice_backward(Context& ctx, const graph::SliceBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor& dy = in[0];
  const int rank = out.rank();
  const Rows gr(dy);
  float* o = out.data_as<float>();
  std::memset(o, 0, size_t(out.numel()) * 4);
  const int64_t C = dy.dim(-1), out_C = out.dim(-1);
  ctx.for_chunks(gr.count(), row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t idx[kMaxRank] = {}, rest = r;
      for (int i = rank - 2; i >= 0; --i) {
        idx[i] = rest % dy.dim(i);
        rest /= dy.dim(i);
      }
      if (p.axis < rank - 1) idx[p.axis] += p.start;
      int64_t out_row = 0;
      for (int i = 0; i < rank - 1; ++i) out_row = out_row * out.dim(i) + idx[i];
      std::memcpy(o + out_row * out_C + (p.axis == rank - 1 ? p.start : 0), gr.as<const float>(r), size_t(C) * 4);
    }
  });
}

}  // namespace loom::backend::cpu
