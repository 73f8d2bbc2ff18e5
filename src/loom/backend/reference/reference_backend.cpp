#include "loom/backend/reference/reference_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "loom/backend/host_backend.h"
#include "loom/backend/kernel_checks.h"
#include "loom/backend/reference/train_kernels.h"
#include "loom/backend/tensor_rows.h"
#include "loom/core/error.h"
#include "loom/core/half.h"
#include "loom/core/overloaded.h"

namespace loom::backend {

namespace {

using graph::Node;

int32_t i32_at(const Tensor& v, int64_t i) { return *reinterpret_cast<const int32_t*>(v.data() + i * v.stride(0)); }

std::vector<float> row_to_float(const Tensor& t, int64_t r) {
  std::vector<float> out(static_cast<size_t>(t.dim(-1)));
  dequantize_row(t.dtype(), row_ptr(t, r), out.data(), t.dim(-1));
  return out;
}

void store_row(DType dt, std::byte* dst, const double* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (dt == DType::F32)
      reinterpret_cast<float*>(dst)[i] = float(src[i]);
    else
      reinterpret_cast<uint16_t*>(dst)[i] = f32_to_f16(float(src[i]));
  }
}

void get_rows(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &table = in[0], &ids = in[1];
  check_indices(ids, table.dim(0), "get_rows", "ids");
  for (int64_t t = 0; t < ids.dim(0); ++t)
    dequantize_row(table.dtype(), row_ptr(table, i32_at(ids, t)), row_as<float>(out, t), table.dim(1));
}

void matmul(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &w = in[1];
  const int64_t rows = row_count(x), N = w.dim(0), K = w.dim(1);
  for (int64_t n = 0; n < N; ++n) {
    const std::vector<float> wr = row_to_float(w, n);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = row_as<const float>(x, r);
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += double(xr[k]) * double(wr[size_t(k)]);
      row_as<float>(out, r)[n] = float(acc);
    }
  }
}

void rms_norm(const graph::RmsNorm& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor& x = in[0];
  const int64_t C = x.dim(-1);
  const float* w = in.size() > 1 ? in[1].data_as<const float>() : nullptr;
  for (int64_t r = 0; r < row_count(x); ++r) {
    const float* xr = row_as<const float>(x, r);
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += double(xr[c]) * double(xr[c]);
    const double inv = 1.0 / std::sqrt(ss / double(C) + double(p.eps));
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c) o[c] = float(double(xr[c]) * inv * (w ? double(w[c]) : 1.0));
  }
}

void rope(const graph::Rope& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &pos = in[1];
  const int64_t T = x.dim(0), H = x.dim(1), D = x.dim(2), half = p.n_rot / 2;
  for (int64_t t = 0; t < T; ++t) {
    const double position = double(i32_at(pos, t)) * double(p.freq_scale);
    for (int64_t h = 0; h < H; ++h) {
      const float* xr = row_as<const float>(x, t * H + h);
      float* o = row_as<float>(out, t * H + h);
      std::memcpy(o, xr, size_t(D) * 4);
      for (int64_t i = 0; i < half; ++i) {
        const double factor = in.size() > 2 ? double(in[2].data_as<const float>()[i]) : 1.0;
        const double theta = position * std::pow(double(p.base), -2.0 * double(i) / double(p.n_rot)) / factor;
        const double c = std::cos(theta), s = std::sin(theta);
        const int64_t a = p.style == graph::RopeStyle::Adjacent ? 2 * i : i;
        const int64_t b = p.style == graph::RopeStyle::Adjacent ? 2 * i + 1 : i + half;
        o[a] = float(double(xr[a]) * c - double(xr[b]) * s);
        o[b] = float(double(xr[a]) * s + double(xr[b]) * c);
      }
    }
  }
}

void kv_store(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &cache = in[0], &src = in[1], &slots = in[2];
  check_indices(slots, cache.dim(0), "kv_store", "slots");
  const int64_t H = src.dim(1), D = src.dim(2);
  std::vector<double> row(static_cast<size_t>(D));
  for (int64_t t = 0; t < src.dim(0); ++t) {
    const int64_t slot = i32_at(slots, t);
    for (int64_t h = 0; h < H; ++h) {
      const float* s = row_as<const float>(src, t * H + h);
      for (int64_t d = 0; d < D; ++d) row[size_t(d)] = s[d];
      store_row(cache.dtype(), row_ptr(out, slot * H + h), row.data(), D);
    }
  }
}

void attention(const graph::Attention& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &q = in[0], &k = in[1], &v = in[2], &pos = in[3], &seq = in[4], &table = in[5];
  check_attention_indices(pos, seq, table, k.dim(0), p.block_size);
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(1), group = Hq / Hkv;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t n = i32_at(pos, t) + 1;
    const auto* blocks = reinterpret_cast<const int32_t*>(table.data() + i32_at(seq, t) * table.stride(0));
    std::vector<int64_t> slot(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) slot[size_t(j)] = int64_t(blocks[j / p.block_size]) * p.block_size + j % p.block_size;
    for (int64_t h = 0; h < Hq; ++h) {
      const float* qr = row_as<const float>(q, t * Hq + h);
      const int64_t kvh = h / group;
      std::vector<double> score(static_cast<size_t>(n));
      double mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const std::vector<float> kr = row_to_float(k, slot[size_t(j)] * Hkv + kvh);
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qr[d]) * double(kr[size_t(d)]);
        score[size_t(j)] = dot * double(p.scale);
        mx = std::max(mx, score[size_t(j)]);
      }
      double sum = 0;
      for (double& s : score) sum += (s = std::exp(s - mx));
      std::vector<double> acc(size_t(D), 0.0);
      for (int64_t j = 0; j < n; ++j) {
        const std::vector<float> vr = row_to_float(v, slot[size_t(j)] * Hkv + kvh);
        for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += score[size_t(j)] / sum * double(vr[size_t(d)]);
      }
      float* o = row_as<float>(out, t * Hq + h);
      for (int64_t d = 0; d < D; ++d) o[d] = float(acc[size_t(d)]);
    }
  }
}

// Applies f(a, b) over rows of a, with b broadcast over a's leading dims.
template <typename F>
void binary(std::span<const Tensor> in, const Tensor& out, F f) {
  const Tensor &a = in[0], &b = in[1];
  const int64_t C = a.dim(-1), b_rows = b.numel() / std::max<int64_t>(C, 1);
  for (int64_t r = 0; r < row_count(a); ++r) {
    const float* ar = row_as<const float>(a, r);
    // Same shape: b may be a strided view; broadcast: b is contiguous.
    const float* br = b_rows == row_count(a) ? row_as<const float>(b, r) : b.data_as<const float>() + (r % b_rows) * C;
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c) o[c] = f(ar[c], br[c]);
  }
}

template <typename F>
void unary(const Tensor& x, const Tensor& out, F f) {
  const int64_t C = x.dim(-1);
  for (int64_t r = 0; r < row_count(x); ++r) {
    const float* xr = row_as<const float>(x, r);
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c) o[c] = f(xr[c]);
  }
}

void softmax(const Tensor& x, const Tensor& out) {
  const int64_t C = x.dim(-1);
  for (int64_t r = 0; r < row_count(x); ++r) {
    const float* xr = row_as<const float>(x, r);
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, double(xr[c]));
    for (int64_t c = 0; c < C; ++c) sum += std::exp(double(xr[c]) - mx);
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c) o[c] = float(std::exp(double(xr[c]) - mx) / sum);
  }
}

void scale_rows(std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &s = in[1];
  const int64_t C = x.dim(-1);
  for (int64_t r = 0; r < row_count(x); ++r) {
    const double f = row_as<const float>(s, r)[0];
    const float* xr = row_as<const float>(x, r);
    float* o = row_as<float>(out, r);
    for (int64_t c = 0; c < C; ++c) o[c] = float(double(xr[c]) * f);
  }
}

// The n_used experts of highest probability, ties to the lower index. A NaN
// never wins a comparison, so the result is always n_used valid experts.
std::vector<int64_t> top_experts(const float* p, int64_t E, int64_t n_used) {
  std::vector<int64_t> chosen;
  std::vector<bool> taken(static_cast<size_t>(E), false);
  for (int64_t k = 0; k < n_used; ++k) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e)
      if (!taken[size_t(e)] && (best < 0 || p[e] > p[best])) best = e;
    taken[size_t(best)] = true;
    chosen.push_back(best);
  }
  return chosen;
}

void moe_ffn(const graph::MoeFfn& prm, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &probs = in[1], &gate = in[2], &up = in[3], &down = in[4];
  const int64_t T = x.dim(0), C = x.dim(1), E = probs.dim(1), F = gate.dim(1);
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = row_as<const float>(x, t);
    const float* p = row_as<const float>(probs, t);
    const std::vector<int64_t> chosen = top_experts(p, E, prm.n_used);
    double total = 0;
    for (int64_t e : chosen) total += double(p[e]);
    std::vector<double> acc(static_cast<size_t>(C), 0.0), h(static_cast<size_t>(F));
    for (int64_t e : chosen) {
      double w = double(p[e]) * double(prm.scale);
      if (prm.normalize) w = double(p[e]) / total * double(prm.scale);
      for (int64_t f = 0; f < F; ++f) {
        const std::vector<float> g = row_to_float(gate, e * F + f), u = row_to_float(up, e * F + f);
        double dg = 0, du = 0;
        for (int64_t c = 0; c < C; ++c) {
          dg += double(g[size_t(c)]) * double(xr[c]);
          du += double(u[size_t(c)]) * double(xr[c]);
        }
        h[size_t(f)] = dg / (1.0 + std::exp(-dg)) * du;
      }
      for (int64_t c = 0; c < C; ++c) {
        const std::vector<float> d = row_to_float(down, e * C + c);
        double dot = 0;
        for (int64_t f = 0; f < F; ++f) dot += double(d[size_t(f)]) * h[size_t(f)];
        acc[size_t(c)] += w * dot;
      }
    }
    float* o = row_as<float>(out, t);
    for (int64_t c = 0; c < C; ++c) o[c] = float(acc[size_t(c)]);
  }
}

class ReferenceBackend final : public HostBackend {
 public:
  std::string_view name() const override { return "reference"; }

  bool supports(const graph::Graph&, const Node&) const override { return true; }

  void compute(const Node& node, std::span<const Tensor> in, const Tensor& out) override {
    std::visit(Overloaded{
                   [](const graph::Input&) {},
                   [](const graph::Constant&) {},
                   [](const graph::View&) {},
                   [&](const graph::GetRows&) { get_rows(in, out); },
                   [&](const graph::MatMul&) { matmul(in, out); },
                   [&](const graph::RmsNorm& p) { rms_norm(p, in, out); },
                   [&](const graph::Rope& p) { rope(p, in, out); },
                   [&](const graph::KvStore&) { kv_store(in, out); },
                   [&](const graph::Attention& p) { attention(p, in, out); },
                   [&](const graph::SwiGlu&) {
                     binary(in, out, [](float g, float u) {
                       return float(double(g) / (1.0 + std::exp(-double(g))) * double(u));
                     });
                   },
                   [&](const graph::Add&) { binary(in, out, [](float a, float b) { return a + b; }); },
                   [&](const graph::Mul&) { binary(in, out, [](float a, float b) { return a * b; }); },
                   [&](const graph::Scale& p) { unary(in[0], out, [f = p.factor](float x) { return x * f; }); },
                   [&](const graph::Softmax&) { softmax(in[0], out); },
                   [&](const graph::Sigmoid&) {
                     unary(in[0], out, [](float x) { return float(1.0 / (1.0 + std::exp(-double(x)))); });
                   },
                   [&](const graph::ScaleRows&) { scale_rows(in, out); },
                   [&](const graph::MoeFfn& p) { moe_ffn(p, in, out); },
                   [&](const graph::Fill& p) { reference::fill(p, out); },
                   [&](const graph::Transpose&) { reference::transpose(in, out); },
                   [&](const graph::SumTo&) { reference::sum_to(in, out); },
                   [&](const graph::CausalAttention& p) { reference::causal_attention(p, in, out); },
                   [&](const graph::CrossEntropy&) { reference::cross_entropy(in, out); },
                   [&](const graph::RmsNormBackward& p) { reference::rms_norm_backward(p, in, out); },
                   [&](const graph::RopeBackward& p) { reference::rope_backward(p, in, out); },
                   [&](const graph::SwiGluBackward& p) { reference::swiglu_backward(p, in, out); },
                   [&](const graph::SoftmaxBackward&) { reference::softmax_backward(in, out); },
                   [&](const graph::GetRowsBackward&) { reference::get_rows_backward(in, out); },
                   [&](const graph::SliceBackward& p) { reference::slice_backward(p, in, out); },
                   [&](const graph::CausalAttentionBackward& p) { reference::causal_attention_backward(p, in, out); },
                   [&](const graph::CrossEntropyBackward&) { reference::cross_entropy_backward(in, out); },
               },
               node.op);
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend(const BackendOptions&) { return std::make_unique<ReferenceBackend>(); }

}  // namespace loom::backend
