// Float64 reference implementations of the decoder architectures loom runs,
// written here from each architecture's definition (the equations of its
// reference modeling code), in plain loops that share nothing with loom's
// graph, ops or backends. A reference model runs a whole token sequence from
// position 0 with no cache, so comparing it with loom's cached decoding also
// checks the KV cache.
//
//   ref::Config c = ...;  ref::Weights w = ...;        // GGUF names, loom's shapes (outermost first)
//   ref::Model m(c, w);
//   ref::Result r = m.run({1, 2, 3});                   // hidden [T][C], logits [T][V]
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::test::ref {

struct HostWeight {
  std::vector<int64_t> shape;  // outermost first, e.g. [N, K] for y = W x
  std::vector<float> data;     // row-major
};
using Weights = std::map<std::string, HostWeight>;

using Vec = std::vector<double>;
using Mat = std::vector<Vec>;

struct Config {
  std::string arch;  // llama, qwen2, qwen2moe, deepseek, chatglm, glm4, telechat2
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
  int n_rot = 0;          // rotary dims at the start of each head
  double rope_base = 10000;
  bool rope_adjacent = true;  // pairs (2i, 2i+1); else (i, i + n_rot/2)
  double eps = 1e-5;
  // Mixture of experts.
  int64_t n_expert = 0, n_expert_used = 0, n_dense_lead = 0;
  bool moe_normalize = true;
  double moe_scale = 1.0;
};

struct Result {
  Mat hidden;  // [T][C] after the output norm
  Mat logits;  // [T][V]
};

// --- pieces -------------------------------------------------------------------

inline Vec rms_norm(const Vec& x, const HostWeight& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * double(w.data[i]);
  return y;
}

// y = W x (+ b) for rows [row0, row0 + n) of W [N, K] (of expert `e` when W is [E, N, K]).
inline Vec linear(const HostWeight& w, const Vec& x, const HostWeight* b = nullptr, int64_t row0 = 0, int64_t n = -1,
                  int64_t e = 0) {
  const int64_t K = w.shape.back(), N = w.shape[w.shape.size() - 2];
  if (int64_t(x.size()) != K) throw std::runtime_error("reference: linear of the wrong width");
  if (n < 0) n = N;
  Vec y(size_t(n), 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = w.data.data() + size_t((e * N + row0 + r) * K);
    double acc = 0;
    for (int64_t k = 0; k < K; ++k) acc += double(row[k]) * x[size_t(k)];
    y[size_t(r)] = acc + (b ? double(b->data[size_t(row0 + r)]) : 0.0);
  }
  return y;
}

inline double silu(double v) { return v / (1.0 + std::exp(-v)); }

// Rotates the first n_rot dims of one head by angle pos * base^(-2i / n_rot) for pair i.
inline void rope(double* head, int64_t pos, const Config& c) {
  for (int i = 0; i < c.n_rot / 2; ++i) {
    const double th = double(pos) * std::pow(c.rope_base, -2.0 * i / c.n_rot);
    const int a = c.rope_adjacent ? 2 * i : i, b = c.rope_adjacent ? 2 * i + 1 : i + c.n_rot / 2;
    const double x0 = head[a], x1 = head[b];
    head[a] = x0 * std::cos(th) - x1 * std::sin(th);
    head[b] = x0 * std::sin(th) + x1 * std::cos(th);
  }
}

// Causal softmax(q k^T / sqrt(D)) v; query head h reads KV head h / (Hq / Hkv).
// q [T][Hq*D], k and v [T][Hkv*D] -> [T][Hq*D].
inline Mat causal_attention(const Mat& q, const Mat& k, const Mat& v, const Config& c) {
  const int64_t T = int64_t(q.size()), D = c.head_dim, group = c.n_head / c.n_head_kv;
  Mat out(size_t(T), Vec(size_t(c.n_head * D), 0.0));
  for (int64_t i = 0; i < T; ++i) {
    for (int64_t h = 0; h < c.n_head; ++h) {
      const int64_t g = h / group;
      Vec s(size_t(i + 1));
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += q[size_t(i)][size_t(h * D + d)] * k[size_t(j)][size_t(g * D + d)];
        s[size_t(j)] = dot / std::sqrt(double(D));
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int64_t j = 0; j <= i; ++j)
        for (int64_t d = 0; d < D; ++d)
          out[size_t(i)][size_t(h * D + d)] += s[size_t(j)] / sum * v[size_t(j)][size_t(g * D + d)];
    }
  }
  return out;
}

// --- the architectures ----------------------------------------------------------

class Model {
 public:
  Model(Config c, const Weights& w) : c_(std::move(c)), w_(w) {}

  // Hidden states and logits of every position of `tokens` (positions 0..T-1).
  Result run(const std::vector<int32_t>& tokens) const {
    const int64_t T = int64_t(tokens.size()), C = c_.n_embd;
    const HostWeight& emb = at("token_embd.weight");
    Mat x(static_cast<size_t>(T), Vec(static_cast<size_t>(C)));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < C; ++i) x[size_t(t)][size_t(i)] = emb.data[size_t(tokens[size_t(t)] * C + i)];
    if (c_.arch == "telechat2" && has("token_embd_norm.weight"))  // embed_layernorm
      for (Vec& row : x) row = rms_norm(row, at("token_embd_norm.weight"), c_.eps);
    for (int64_t l = 0; l < c_.n_layer; ++l) layer(l, x);
    Result r;
    const HostWeight& out = has("output.weight") ? at("output.weight") : emb;  // tied when absent
    for (int64_t t = 0; t < T; ++t) {
      r.hidden.push_back(rms_norm(x[size_t(t)], at("output_norm.weight"), c_.eps));
      r.logits.push_back(linear(out, r.hidden.back()));
    }
    return r;
  }

 private:
  bool has(const std::string& n) const { return w_.count(n) != 0; }
  const HostWeight& at(const std::string& n) const {
    auto it = w_.find(n);
    if (it == w_.end()) throw std::runtime_error("reference: no weight " + n);
    return it->second;
  }
  const HostWeight* opt(const std::string& n) const { return has(n) ? &at(n) : nullptr; }
  static std::string b(int64_t l, const std::string& s) { return "blk." + std::to_string(l) + "." + s; }

  // Q [Hq*D], K and V [Hkv*D] of one normalised token, before RoPE.
  void project(int64_t l, const Vec& h, Vec& q, Vec& k, Vec& v) const {
    const int64_t Q = c_.n_head * c_.head_dim, KV = c_.n_head_kv * c_.head_dim, D = c_.head_dim;
    if (c_.arch == "telechat2") {
      // query; key_value holds, for each KV head g, D key rows then D value rows.
      q = linear(at(b(l, "attn_q.weight")), h);
      const Vec kv = linear(at(b(l, "attn_kv.weight")), h);
      k.assign(size_t(KV), 0);
      v.assign(size_t(KV), 0);
      for (int64_t g = 0; g < c_.n_head_kv; ++g)
        for (int64_t d = 0; d < D; ++d) {
          k[size_t(g * D + d)] = kv[size_t(g * 2 * D + d)];
          v[size_t(g * D + d)] = kv[size_t(g * 2 * D + D + d)];
        }
    } else if (has(b(l, "attn_qkv.weight"))) {
      // One projection: rows [0, Q) are Q, then K, then V.
      const HostWeight& w = at(b(l, "attn_qkv.weight"));
      const HostWeight* bias = opt(b(l, "attn_qkv.bias"));
      q = linear(w, h, bias, 0, Q);
      k = linear(w, h, bias, Q, KV);
      v = linear(w, h, bias, Q + KV, KV);
    } else {
      q = linear(at(b(l, "attn_q.weight")), h, opt(b(l, "attn_q.bias")));
      k = linear(at(b(l, "attn_k.weight")), h, opt(b(l, "attn_k.bias")));
      v = linear(at(b(l, "attn_v.weight")), h, opt(b(l, "attn_v.bias")));
    }
  }

  // SwiGLU: down(silu(gate h) * up h). GLM stores gate and up in one ffn_up of
  // 2F rows, gate first.
  Vec ffn(int64_t l, const Vec& h, const std::string& suffix = "") const {
    Vec g, u;
    if (c_.arch == "chatglm" || c_.arch == "glm4") {
      const HostWeight& w = at(b(l, "ffn_up.weight"));
      g = linear(w, h, nullptr, 0, c_.n_ff);
      u = linear(w, h, nullptr, c_.n_ff, c_.n_ff);
    } else {
      g = linear(at(b(l, "ffn_gate" + suffix + ".weight")), h, opt(b(l, "ffn_gate" + suffix + ".bias")));
      u = linear(at(b(l, "ffn_up" + suffix + ".weight")), h, opt(b(l, "ffn_up" + suffix + ".bias")));
    }
    for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
    return linear(at(b(l, "ffn_down" + suffix + ".weight")), g, opt(b(l, "ffn_down" + suffix + ".bias")));
  }

  // Mixture of experts: softmax router, the n_expert_used most probable
  // experts (ties to the lower index), weights optionally renormalised and
  // scaled; plus a shared expert (sigmoid-gated when the file has the gate).
  Vec moe(int64_t l, const Vec& h) const {
    Vec p = linear(at(b(l, "ffn_gate_inp.weight")), h);
    const double mx = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (double& x : p) sum += (x = std::exp(x - mx));
    for (double& x : p) x /= sum;
    std::vector<int64_t> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t z) { return p[size_t(a)] > p[size_t(z)]; });
    order.resize(size_t(c_.n_expert_used));
    double total = 0;
    for (int64_t e : order) total += p[size_t(e)];
    const HostWeight &gate = at(b(l, "ffn_gate_exps.weight")), &up = at(b(l, "ffn_up_exps.weight")),
                     &down = at(b(l, "ffn_down_exps.weight"));
    const int64_t Fe = gate.shape[1];
    Vec out(h.size(), 0.0);
    for (int64_t e : order) {
      const double w = (c_.moe_normalize ? p[size_t(e)] / total : p[size_t(e)]) * c_.moe_scale;
      Vec g = linear(gate, h, nullptr, 0, Fe, e), u = linear(up, h, nullptr, 0, Fe, e);
      for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
      const Vec y = linear(down, g, nullptr, 0, -1, e);
      for (size_t i = 0; i < out.size(); ++i) out[i] += w * y[i];
    }
    if (has(b(l, "ffn_gate_shexp.weight"))) {
      Vec s = ffn(l, h, "_shexp");
      double gate_s = 1.0;
      if (const HostWeight* wg = opt(b(l, "ffn_gate_inp_shexp.weight"))) {
        double dot = 0;
        for (size_t i = 0; i < h.size(); ++i) dot += double(wg->data[i]) * h[i];
        gate_s = 1.0 / (1.0 + std::exp(-dot));
      }
      for (size_t i = 0; i < out.size(); ++i) out[i] += gate_s * s[i];
    }
    return out;
  }

  void layer(int64_t l, Mat& x) const {
    const int64_t T = int64_t(x.size()), D = c_.head_dim;
    Mat q(static_cast<size_t>(T)), k(static_cast<size_t>(T)), v(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      const Vec h = rms_norm(x[size_t(t)], at(b(l, "attn_norm.weight")), c_.eps);
      project(l, h, q[size_t(t)], k[size_t(t)], v[size_t(t)]);
      for (int64_t hd = 0; hd < c_.n_head; ++hd) rope(q[size_t(t)].data() + hd * D, t, c_);
      for (int64_t hd = 0; hd < c_.n_head_kv; ++hd) rope(k[size_t(t)].data() + hd * D, t, c_);
    }
    const Mat a = causal_attention(q, k, v, c_);
    for (int64_t t = 0; t < T; ++t) {
      Vec o = linear(at(b(l, "attn_output.weight")), a[size_t(t)], opt(b(l, "attn_output.bias")));
      if (c_.arch == "glm4" && has(b(l, "post_attention_norm.weight")))
        o = rms_norm(o, at(b(l, "post_attention_norm.weight")), c_.eps);
      for (size_t i = 0; i < o.size(); ++i) x[size_t(t)][i] += o[i];
      const Vec h = rms_norm(x[size_t(t)], at(b(l, "ffn_norm.weight")), c_.eps);
      Vec f = c_.n_expert > 0 && l >= c_.n_dense_lead ? moe(l, h) : ffn(l, h);
      if (c_.arch == "glm4" && has(b(l, "post_ffw_norm.weight")))
        f = rms_norm(f, at(b(l, "post_ffw_norm.weight")), c_.eps);
      for (size_t i = 0; i < f.size(); ++i) x[size_t(t)][i] += f[i];
    }
  }

  Config c_;
  const Weights& w_;
};

// Largest |a - b| over the largest |b|: the error relative to the vector's scale.
inline double relative_error(const float* a, const Vec& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return den > 0 ? num / den : num;
}

inline int32_t argmax(const Vec& v) { return int32_t(std::max_element(v.begin(), v.end()) - v.begin()); }

}  // namespace loom::test::ref
