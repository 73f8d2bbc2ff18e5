// Gradient checks for the training tests: build a graph of f32 parameters,
// differentiate it with train::backward on a backend, and compare every
// gradient with central finite differences of an independent float64 forward
// function written in the test.
//
// For an output y = f(params) and a random weight w of y's shape, the checked
// loss is L = sum(w * y): its gradient is the graph's vector-Jacobian product
// seeded with w, and its finite differences are
//   (L(p + h e_i) - L(p - h e_i)) / 2h,   h = 1e-6,  all in float64.
// A gradient element passes when |got - want| <= rtol * (|want| + mean |want|)
// (mean over the parameter: elements near zero are held to the parameter's
// scale, not to their own). The graph runs in f32, so rtol = 1e-4.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend_harness.h"
#include "loom/backend/backend.h"
#include "loom/graph/ops.h"
#include "loom/graph/train_ops.h"
#include "loom/train/backward.h"

namespace loom::test {

using Vec = std::vector<double>;

struct GradCase {
  std::vector<std::string> names;  // of the parameters, for messages
  std::vector<HostTensor> params;  // f32, differentiated (graph Constants, like weights)
  std::vector<HostTensor> fixed;   // graph Inputs that are not differentiated (ids, positions, targets)
  // Builds the output from the parameters and fixed inputs (same order).
  std::function<graph::Value(graph::Graph&, const std::vector<graph::Value>&, const std::vector<graph::Value>&)> build;
  // The same output in float64, from the parameters' values; written independently of loom.
  std::function<Vec(const std::vector<Vec>&)> forward;
  bool scalar_loss = false;  // the output is a loss: use train::backward(g, loss, params), w = 1
  double rtol = 1e-4;
};

inline Vec to_double(const HostTensor& h) {
  const auto* f = reinterpret_cast<const float*>(h.bytes.data());
  return Vec(f, f + h.bytes.size() / 4);
}

inline HostTensor param(Shape s, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return host_f32(s, random_floats(size_t(s.numel()), seed, lo, hi));
}

struct GradRun {
  std::vector<float> output;
  std::vector<std::vector<float>> grads;
};

// Forward and backward in one graph on `be`, seeded with w (ignored for a scalar loss).
inline GradRun run_gradients(backend::Backend& be, const GradCase& c, const std::vector<float>& w) {
  graph::Graph g;
  std::vector<graph::Value> ps, fx;
  for (size_t i = 0; i < c.params.size(); ++i) {
    const HostTensor& h = c.params[i];
    Tensor t(be.allocate(h.bytes.size()), 0, h.dtype, h.shape);
    be.upload(t, h.bytes.data(), h.bytes.size());
    ps.push_back(g.constant(t, i < c.names.size() ? c.names[i] : fmt::format("p{}", i)));
  }
  for (size_t i = 0; i < c.fixed.size(); ++i)
    fx.push_back(g.input(fmt::format("in{}", i), c.fixed[i].dtype, c.fixed[i].shape));
  const graph::Value out = c.build(g, ps, fx);
  std::vector<graph::Value> grads;
  if (c.scalar_loss) {
    grads = train::backward(g, out, ps);
  } else {
    Tensor seed(be.allocate(w.size() * 4), 0, DType::F32, out.shape());
    be.upload(seed, w.data(), w.size() * 4);
    grads = train::backward(g, out, g.constant(seed, "seed"), ps);
  }
  g.mark_output(out);
  for (graph::Value d : grads) g.mark_output(d);
  auto exe = be.compile(g);
  for (size_t i = 0; i < c.fixed.size(); ++i) exe->set_input(fx[i], c.fixed[i].bytes.data(), c.fixed[i].bytes.size());
  exe->run();
  GradRun r;
  r.output.resize(size_t(out.shape().numel()));
  exe->read(out, r.output.data(), r.output.size() * 4);
  for (graph::Value d : grads) {
    r.grads.emplace_back(size_t(d.shape().numel()));
    exe->read(d, r.grads.back().data(), r.grads.back().size() * 4);
  }
  return r;
}

// Checks the case on the named backend: the forward output against the
// float64 forward, and every gradient against finite differences.
inline void check_gradients(const std::string& backend_name, const GradCase& c, uint32_t seed = 99) {
  auto be = backend::create(backend_name, {.threads = 3});  // odd thread count on purpose
  std::vector<Vec> p;
  for (const HostTensor& h : c.params) p.push_back(to_double(h));
  const Vec y = c.forward(p);
  const std::vector<float> w = c.scalar_loss ? std::vector<float>(1, 1.0f) : random_floats(y.size(), seed);
  const GradRun run = run_gradients(*be, c, w);

  ASSERT_EQ(run.output.size(), y.size());
  for (size_t i = 0; i < y.size(); ++i)
    EXPECT_NEAR(run.output[i], y[i], 1e-5 * (1 + std::fabs(y[i]))) << "output[" << i << "]";

  const auto loss = [&](const std::vector<Vec>& q) {
    const Vec out = c.forward(q);
    double l = 0;
    for (size_t i = 0; i < out.size(); ++i) l += double(w[i]) * out[i];
    return l;
  };
  constexpr double h = 1e-6;
  ASSERT_EQ(run.grads.size(), p.size());
  for (size_t k = 0; k < p.size(); ++k) {
    Vec want(p[k].size());
    std::vector<Vec> q = p;
    for (size_t i = 0; i < p[k].size(); ++i) {
      q[k][i] = p[k][i] + h;
      const double up = loss(q);
      q[k][i] = p[k][i] - h;
      const double down = loss(q);
      q[k][i] = p[k][i];
      want[i] = (up - down) / (2 * h);
    }
    double mean = 0;
    for (double v : want) mean += std::fabs(v) / double(want.size());
    const std::vector<float>& got = run.grads[k];
    ASSERT_EQ(got.size(), want.size());
    const std::string what = k < c.names.size() ? c.names[k] : fmt::format("param {}", k);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const double err = std::fabs(double(got[i]) - want[i]) / (c.rtol * (std::fabs(want[i]) + mean) + 1e-300);
      if (!(err <= worst)) {
        worst = err;
        at = i;
      }
    }
    EXPECT_LE(worst, 1.0) << backend_name << ": d loss / d " << what << "[" << at << "] = " << got[at]
                          << ", finite differences " << want[at] << " (mean |grad| " << mean << ")";
    EXPECT_GT(mean, 0.0) << what << ": the check needs a gradient that is not all zero";
  }
}

// --- float64 building blocks of the independent forward functions ----------

// x [R, K] * w[N, K]^T -> [R, N]
inline Vec ref_matmul(const Vec& x, const Vec& w, int64_t R, int64_t K, int64_t N) {
  Vec y(size_t(R * N), 0.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += x[size_t(r * K + k)] * w[size_t(n * K + k)];
      y[size_t(r * N + n)] = s;
    }
  return y;
}

// Rows of C: x / sqrt(mean(x^2) + eps) * w (w empty: no scaling).
inline Vec ref_rms_norm(const Vec& x, const Vec& w, int64_t C, double eps) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / size_t(C); ++r) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += x[r * size_t(C) + size_t(c)] * x[r * size_t(C) + size_t(c)];
    const double inv = 1.0 / std::sqrt(ss / double(C) + eps);
    for (int64_t c = 0; c < C; ++c)
      y[r * size_t(C) + size_t(c)] = x[r * size_t(C) + size_t(c)] * inv * (w.empty() ? 1.0 : w[size_t(c)]);
  }
  return y;
}

inline double ref_silu(double x) { return x / (1.0 + std::exp(-x)); }

// Rows of C: softmax.
inline Vec ref_softmax(const Vec& x, int64_t C) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / size_t(C); ++r) {
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x[r * size_t(C) + size_t(c)]);
    for (int64_t c = 0; c < C; ++c) sum += std::exp(x[r * size_t(C) + size_t(c)] - mx);
    for (int64_t c = 0; c < C; ++c) y[r * size_t(C) + size_t(c)] = std::exp(x[r * size_t(C) + size_t(c)] - mx) / sum;
  }
  return y;
}

// RoPE on x [T, H, D]: pair i of the first n_rot dims turns by
// pos * freq_scale * base^(-2i/n_rot) / factor[i]; pairs are (2i, 2i+1), or (i, i + n_rot/2) for halves.
inline Vec ref_rope(const Vec& x, const std::vector<int32_t>& pos, int64_t H, int64_t D, int64_t n_rot, double base,
                    double freq_scale, bool halves, const std::vector<float>& factor = {}) {
  Vec y = x;
  const int64_t T = int64_t(pos.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < n_rot / 2; ++i) {
        const double theta = double(pos[size_t(t)]) * freq_scale * std::pow(base, -2.0 * double(i) / double(n_rot)) /
                             (factor.empty() ? 1.0 : double(factor[size_t(i)]));
        const size_t a = size_t((t * H + h) * D + (halves ? i : 2 * i));
        const size_t b = size_t((t * H + h) * D + (halves ? i + n_rot / 2 : 2 * i + 1));
        y[a] = x[a] * std::cos(theta) - x[b] * std::sin(theta);
        y[b] = x[a] * std::sin(theta) + x[b] * std::cos(theta);
      }
  return y;
}

// Causal attention, q [T, Hq, D], k/v [T, Hkv, D], sequences of L tokens.
inline Vec ref_causal_attention(const Vec& q, const Vec& k, const Vec& v, int64_t T, int64_t Hq, int64_t Hkv,
                                int64_t D, double scale, int64_t L) {
  Vec o(size_t(T * Hq * D), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kvh = h * Hkv / Hq, s0 = t / L * L;
      Vec s;
      for (int64_t j = s0; j <= t; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += q[size_t((t * Hq + h) * D + d)] * k[size_t((j * Hkv + kvh) * D + d)];
        s.push_back(dot * scale);
      }
      const Vec p = ref_softmax(s, int64_t(s.size()));
      for (int64_t j = s0; j <= t; ++j)
        for (int64_t d = 0; d < D; ++d)
          o[size_t((t * Hq + h) * D + d)] += p[size_t(j - s0)] * v[size_t((j * Hkv + kvh) * D + d)];
    }
  return o;
}

// Mean over rows with a target >= 0 of -log softmax(logits[r])[target[r]].
inline double ref_cross_entropy(const Vec& logits, const std::vector<int32_t>& targets, int64_t V) {
  double loss = 0;
  int n = 0;
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] < 0) continue;
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < V; ++c) mx = std::max(mx, logits[r * size_t(V) + size_t(c)]);
    for (int64_t c = 0; c < V; ++c) sum += std::exp(logits[r * size_t(V) + size_t(c)] - mx);
    loss += mx + std::log(sum) - logits[r * size_t(V) + size_t(targets[r])];
    ++n;
  }
  return n ? loss / n : 0.0;
}

}  // namespace loom::test
