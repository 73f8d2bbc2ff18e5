#include "loom/backend/reference/train_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "loom/backend/kernel_checks.h"
#include "loom/backend/tensor_rows.h"
#include "loom/core/error.h"

namespace loom::backend::reference {

namespace {

int32_t i32_at(const Tensor& v, int64_t i) { return *reinterpret_cast<const int32_t*>(v.data() + i * v.stride(0)); }

void store(const Tensor& out, const std::vector<double>& v) {
  float* o = out.data_as<float>();  // computed nodes are contiguous
  for (size_t i = 0; i < v.size(); ++i) o[i] = float(v[i]);
}

// Targets index the vocabulary or are negative (ignored rows).
void check_targets(const Tensor& targets, int64_t vocab, const char* op) {
  for (int64_t r = 0; r < targets.dim(0); ++r)
    LOOM_CHECK(i32_at(targets, r) < vocab, "[backend] {}: targets[{}] = {} is outside [0, {}) (negative: ignored)", op,
               r, i32_at(targets, r), vocab);
}

// log sum exp of a row.
double log_sum_exp(const float* x, int64_t n) {
  double mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  return mx + std::log(sum);
}

}  // namespace

void fill(const graph::Fill& p, const Tensor& out) {
  std::fill(out.data_as<float>(), out.data_as<float>() + out.numel(), p.value);
}

void transpose(std::span<const Tensor> in, const Tensor& out) {
  const Tensor& x = in[0];
  const int64_t R = row_count(x), C = x.dim(-1);
  if (x.dtype() == DType::BF16) {  // the raw 16 bits move unchanged
    auto* o = out.data_as<uint16_t>();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) o[c * R + r] = row_as<const uint16_t>(x, r)[c];
    return;
  }
  float* o = out.data_as<float>();
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) o[c * R + r] = row_as<const float>(x, r)[c];
}

void sum_to(std::span<const Tensor> in, const Tensor& out) {
  const Tensor& x = in[0];
  const int64_t C = x.dim(-1), out_rows = out.numel() / C;
  std::vector<double> acc(size_t(out.numel()), 0.0);
  for (int64_t r = 0; r < row_count(x); ++r)
    for (int64_t c = 0; c < C; ++c) acc[size_t((r % out_rows) * C + c)] += row_as<const float>(x, r)[c];
  store(out, acc);
}

void causal_attention(const graph::CausalAttention& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &q = in[0], &k = in[1], &v = in[2];
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(1), group = Hq / Hkv;
  const int64_t L = p.seq_len > 0 ? p.seq_len : T;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t s0 = t / L * L;
    for (int64_t h = 0; h < Hq; ++h) {
      const float* qr = row_as<const float>(q, t * Hq + h);
      const int64_t kvh = h / group;
      std::vector<double> score(size_t(t - s0 + 1));
      double mx = -INFINITY;
      for (int64_t j = s0; j <= t; ++j) {
        const float* kr = row_as<const float>(k, j * Hkv + kvh);
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qr[d]) * double(kr[d]);
        score[size_t(j - s0)] = dot * double(p.scale);
        mx = std::max(mx, score[size_t(j - s0)]);
      }
      double sum = 0;
      for (double& s : score) sum += (s = std::exp(s - mx));
      std::vector<double> acc(size_t(D), 0.0);
      for (int64_t j = s0; j <= t; ++j) {
        const float* vr = row_as<const float>(v, j * Hkv + kvh);
        for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += score[size_t(j - s0)] / sum * double(vr[d]);
      }
      float* o = row_as<float>(out, t * Hq + h);
      for (int64_t d = 0; d < D; ++d) o[d] = float(acc[size_t(d)]);
    }
  }
}

void cross_entropy(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &logits = in[0], &targets = in[1];
  const int64_t R = logits.dim(0), V = logits.dim(1);
  check_targets(targets, V, "cross_entropy");
  double loss = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) {
    const int32_t y = i32_at(targets, r);
    if (y < 0) continue;
    const float* l = row_as<const float>(logits, r);
    loss += log_sum_exp(l, V) - double(l[y]);
    ++n;
  }
  out.data_as<float>()[0] = n > 0 ? float(loss / double(n)) : 0.0f;
}

void rms_norm_backward(const graph::RmsNormBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &dy = in[1];
  const float* w = in.size() > 2 ? in[2].data_as<const float>() : nullptr;
  const int64_t C = x.dim(-1);
  for (int64_t r = 0; r < row_count(x); ++r) {
    const float* xr = row_as<const float>(x, r);
    const float* dr = row_as<const float>(dy, r);
    double ss = 0, gx = 0;
    for (int64_t c = 0; c < C; ++c) {
      ss += double(xr[c]) * double(xr[c]);
      gx += double(dr[c]) * (w ? double(w[c]) : 1.0) * double(xr[c]);
    }
    const double inv = 1.0 / std::sqrt(ss / double(C) + double(p.eps));
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c)
      o[c] = float(inv * double(dr[c]) * (w ? double(w[c]) : 1.0) - double(xr[c]) * inv * inv * inv * gx / double(C));
  }
}

void rope_backward(const graph::RopeBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &dy = in[0], &pos = in[1];
  const graph::Rope& r = p.rope;
  const int64_t T = dy.dim(0), H = dy.dim(1), D = dy.dim(2), half = r.n_rot / 2;
  for (int64_t t = 0; t < T; ++t) {
    const double position = double(i32_at(pos, t)) * double(r.freq_scale);
    for (int64_t h = 0; h < H; ++h) {
      const float* g = row_as<const float>(dy, t * H + h);
      float* o = row_as<float>(out, t * H + h);
      for (int64_t d = 0; d < D; ++d) o[d] = g[d];
      for (int64_t i = 0; i < half; ++i) {
        const double factor = in.size() > 2 ? double(in[2].data_as<const float>()[i]) : 1.0;
        const double theta = position * std::pow(double(r.base), -2.0 * double(i) / double(r.n_rot)) / factor;
        const double c = std::cos(theta), s = std::sin(theta);
        const int64_t a = r.style == graph::RopeStyle::Adjacent ? 2 * i : i;
        const int64_t b = r.style == graph::RopeStyle::Adjacent ? 2 * i + 1 : i + half;
        // The transpose of the forward rotation [c -s; s c].
        o[a] = float(double(g[a]) * c + double(g[b]) * s);
        o[b] = float(-double(g[a]) * s + double(g[b]) * c);
      }
    }
  }
}

void swiglu_backward(const graph::SwiGluBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &gate = in[0], &up = in[1], &dy = in[2];
  const int64_t C = gate.dim(-1);
  for (int64_t r = 0; r < row_count(gate); ++r) {
    const float* g = row_as<const float>(gate, r);
    const float* u = row_as<const float>(up, r);
    const float* d = row_as<const float>(dy, r);
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c) {
      const double x = g[c], s = 1.0 / (1.0 + std::exp(-x));
      o[c] = p.wrt_up ? float(double(d[c]) * x * s) : float(double(d[c]) * double(u[c]) * s * (1.0 + x * (1.0 - s)));
    }
  }
}

void softmax_backward(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &y = in[0], &dy = in[1];
  const int64_t C = y.dim(-1);
  for (int64_t r = 0; r < row_count(y); ++r) {
    const float* yr = row_as<const float>(y, r);
    const float* dr = row_as<const float>(dy, r);
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += double(yr[c]) * double(dr[c]);
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c) o[c] = float(double(yr[c]) * (double(dr[c]) - dot));
  }
}

void get_rows_backward(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &dy = in[0], &ids = in[1];
  const int64_t V = out.dim(0), C = out.dim(1);
  check_indices(ids, V, "get_rows_backward", "ids");
  std::vector<double> acc(size_t(V * C), 0.0);
  for (int64_t t = 0; t < ids.dim(0); ++t)
    for (int64_t c = 0; c < C; ++c) acc[size_t(i32_at(ids, t) * C + c)] += row_as<const float>(dy, t)[c];
  store(out, acc);
}

void slice_backward(const graph::SliceBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor& dy = in[0];
  const int rank = out.rank();
  std::fill(out.data_as<float>(), out.data_as<float>() + out.numel(), 0.0f);
  for (int64_t r = 0; r < row_count(dy); ++r) {
    // Index of row r in dy, then the same element of out, shifted along the axis.
    int64_t idx[kMaxRank] = {}, rest = r;
    for (int i = rank - 2; i >= 0; --i) {
      idx[i] = rest % dy.dim(i);
      rest /= dy.dim(i);
    }
    if (p.axis < rank - 1) idx[p.axis] += p.start;
    int64_t out_row = 0;
    for (int i = 0; i < rank - 1; ++i) out_row = out_row * out.dim(i) + idx[i];
    const int64_t col = p.axis == rank - 1 ? p.start : 0;
    const float* g = row_as<const float>(dy, r);
    float* o = row_as<float>(out, out_row) + col;
    for (int64_t c = 0; c < dy.dim(-1); ++c) o[c] = g[c];
  }
}

void causal_attention_backward(const graph::CausalAttentionBackward& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &q = in[0], &k = in[1], &v = in[2], &dy = in[3];
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(1), group = Hq / Hkv;
  const int64_t L = p.attention.seq_len > 0 ? p.attention.seq_len : T;
  const double scale = p.attention.scale;
  std::vector<double> dq(size_t(T * Hq * D), 0.0), dk(size_t(T * Hkv * D), 0.0), dv(size_t(T * Hkv * D), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t s0 = t / L * L, n = t - s0 + 1;
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kvh = h / group;
      const float* qr = row_as<const float>(q, t * Hq + h);
      const float* g = row_as<const float>(dy, t * Hq + h);
      // P = softmax(scale q k^T) over the keys of the sequence so far.
      std::vector<double> prob(static_cast<size_t>(n)), dp(static_cast<size_t>(n));
      double mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const float* kr = row_as<const float>(k, (s0 + j) * Hkv + kvh);
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qr[d]) * double(kr[d]);
        prob[size_t(j)] = dot * scale;
        mx = std::max(mx, prob[size_t(j)]);
      }
      double sum = 0;
      for (double& s : prob) sum += (s = std::exp(s - mx));
      for (double& s : prob) s /= sum;
      // dP = dy v^T; dS = P * (dP - sum(P * dP)).
      double delta = 0;
      for (int64_t j = 0; j < n; ++j) {
        const float* vr = row_as<const float>(v, (s0 + j) * Hkv + kvh);
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(g[d]) * double(vr[d]);
        dp[size_t(j)] = dot;
        delta += prob[size_t(j)] * dot;
      }
      for (int64_t j = 0; j < n; ++j) {
        const int64_t kv_row = (s0 + j) * Hkv + kvh;
        const float* kr = row_as<const float>(k, kv_row);
        const double ds = prob[size_t(j)] * (dp[size_t(j)] - delta);
        for (int64_t d = 0; d < D; ++d) {
          dq[size_t((t * Hq + h) * D + d)] += scale * ds * double(kr[d]);
          dk[size_t(kv_row * D + d)] += scale * ds * double(qr[d]);
          dv[size_t(kv_row * D + d)] += prob[size_t(j)] * double(g[d]);
        }
      }
    }
  }
  std::vector<double> all = dq;
  all.insert(all.end(), dk.begin(), dk.end());
  all.insert(all.end(), dv.begin(), dv.end());
  store(out, all);
}

void cross_entropy_backward(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &logits = in[0], &targets = in[1];
  const int64_t R = logits.dim(0), V = logits.dim(1);
  check_targets(targets, V, "cross_entropy_backward");
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) n += i32_at(targets, r) >= 0;
  const double dl = n > 0 ? double(in[2].data_as<const float>()[0]) / double(n) : 0.0;
  for (int64_t r = 0; r < R; ++r) {
    const int32_t y = i32_at(targets, r);
    const float* l = row_as<const float>(logits, r);
    float* o = row_as<float>(out, r);
    const double lse = log_sum_exp(l, V);
    for (int64_t c = 0; c < V; ++c)
      o[c] = y < 0 ? 0.0f : float(dl * (std::exp(double(l[c]) - lse) - (c == y ? 1.0 : 0.0)));
  }
}

}  // namespace loom::backend::reference
