// RoPE (with and without per-pair frequency factors) + paged causal attention on every backend against a float64
// computation written here from the definitions: rotary embedding as complex
// multiplication by e^{i * pos * base^(-2j/n_rot)}, and softmax(q.k * scale) v
// over positions 0..pos of the token's sequence.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>

#include "backend/backend_harness.h"

namespace loom {
namespace {

constexpr int64_t kT = 3, kHq = 4, kHkv = 2, kD = 32, kBlock = 16, kBlocks = 12, kSlots = kBlock * kBlocks;

// Rotates one head vector in float64. Adjacent pairs are (2j, 2j+1); halves are (j, j + n_rot/2).
std::vector<double> rope_ref(const float* x, int64_t pos, int n_rot, double base, bool adjacent) {
  std::vector<double> out(x, x + kD);
  for (int j = 0; j < n_rot / 2; ++j) {
    const int a = adjacent ? 2 * j : j, b = adjacent ? 2 * j + 1 : j + n_rot / 2;
    const std::complex<double> z(x[a], x[b]);
    const std::complex<double> r = z * std::polar(1.0, double(pos) * std::pow(base, -2.0 * j / n_rot));
    out[size_t(a)] = r.real();
    out[size_t(b)] = r.imag();
  }
  return out;
}

struct Scenario {
  int n_rot;
  bool adjacent;
};

class AttentionRope : public ::testing::TestWithParam<std::tuple<std::string, Scenario>> {};

TEST_P(AttentionRope, MatchesFloat64Definition) {
  const auto& [backend_name, sc] = GetParam();
  const std::vector<int32_t> pos = {101, 102, 150};  // one sequence, decoding past position 100
  // Block table: position p lives in block table[p / 16]; a scrambled mapping.
  std::vector<int32_t> table = {3, 7, 0, 11, 5, 9, 1, 10, 2, 6};
  auto slot_of = [&](int64_t p) { return int64_t(table[size_t(p / kBlock)]) * kBlock + p % kBlock; };
  std::vector<int32_t> slots;
  for (int32_t p : pos) slots.push_back(int32_t(slot_of(p)));

  const auto q = test::random_floats(kT * kHq * kD, 31, -1, 1);
  const auto k = test::random_floats(kT * kHkv * kD, 32, -1, 1);
  const auto v = test::random_floats(kT * kHkv * kD, 33, -1, 1);
  const auto kcache = test::random_floats(kSlots * kHkv * kD, 34, -1, 1);
  const auto vcache = test::random_floats(kSlots * kHkv * kD, 35, -1, 1);
  const double base = 10000.0, scale = 1.0 / std::sqrt(double(kD));

  test::GraphCase c;
  c.constants = {test::host_f32({kSlots, kHkv, kD}, kcache), test::host_f32({kSlots, kHkv, kD}, vcache)};
  c.inputs = {test::host_f32({kT, kHq, kD}, q),   test::host_f32({kT, kHkv, kD}, k),
              test::host_f32({kT, kHkv, kD}, v),   test::host_i32({kT}, pos),
              test::host_i32({kT}, {0, 0, 0}),     test::host_i32({1, int64_t(table.size())}, table),
              test::host_i32({kT}, slots)};
  const graph::Rope rp{sc.n_rot, float(base), 1.0f, sc.adjacent ? graph::RopeStyle::Adjacent : graph::RopeStyle::Halves};
  c.build = [&](graph::Graph&, auto& cs, auto& in) {
    auto qr = graph::rope(in[0], in[3], rp);
    auto kr = graph::rope(in[1], in[3], rp);
    auto kc = graph::kv_store(cs[0], kr, in[6]);
    auto vc = graph::kv_store(cs[1], in[2], in[6]);
    return graph::attention(qr, kc, vc, in[3], in[4], in[5], graph::Attention{float(scale), kBlock});
  };
  auto be = backend::create(backend_name, {.threads = 2});
  const auto got = test::run_case(*be, c);

  // float64 reference: the cache after the writes, then attention.
  std::vector<std::vector<double>> K(kSlots * kHkv), V(kSlots * kHkv);
  for (int64_t s = 0; s < kSlots * kHkv; ++s) {
    K[size_t(s)].assign(kcache.begin() + s * kD, kcache.begin() + (s + 1) * kD);
    V[size_t(s)].assign(vcache.begin() + s * kD, vcache.begin() + (s + 1) * kD);
  }
  for (int64_t t = 0; t < kT; ++t) {
    for (int64_t h = 0; h < kHkv; ++h) {
      K[size_t(slot_of(pos[size_t(t)]) * kHkv + h)] =
          rope_ref(&k[size_t((t * kHkv + h) * kD)], pos[size_t(t)], sc.n_rot, base, sc.adjacent);
      V[size_t(slot_of(pos[size_t(t)]) * kHkv + h)].assign(v.begin() + (t * kHkv + h) * kD,
                                                           v.begin() + (t * kHkv + h + 1) * kD);
    }
  }
  double max_err = 0;
  for (int64_t t = 0; t < kT; ++t) {
    for (int64_t h = 0; h < kHq; ++h) {
      const auto qv = rope_ref(&q[size_t((t * kHq + h) * kD)], pos[size_t(t)], sc.n_rot, base, sc.adjacent);
      const int64_t kvh = h / (kHq / kHkv);
      std::vector<double> w;
      double mx = -INFINITY;
      for (int64_t p = 0; p <= pos[size_t(t)]; ++p) {
        const auto& kv = K[size_t(slot_of(p) * kHkv + kvh)];
        double dot = 0;
        for (int64_t d = 0; d < kD; ++d) dot += qv[size_t(d)] * kv[size_t(d)];
        w.push_back(dot * scale);
        mx = std::max(mx, w.back());
      }
      double sum = 0;
      for (double& x : w) sum += (x = std::exp(x - mx));
      for (int64_t d = 0; d < kD; ++d) {
        double o = 0;
        for (int64_t p = 0; p <= pos[size_t(t)]; ++p) o += w[size_t(p)] / sum * V[size_t(slot_of(p) * kHkv + kvh)][size_t(d)];
        max_err = std::max(max_err, std::fabs(o - double(got[size_t((t * kHq + h) * kD + d)])));
      }
    }
  }
  EXPECT_LT(max_err, 2e-5) << backend_name;
}

std::vector<std::tuple<std::string, Scenario>> scenarios() {
  std::vector<std::tuple<std::string, Scenario>> out;
  for (const auto& b : backend::backend_names())
    for (Scenario s : {Scenario{32, true}, Scenario{32, false}, Scenario{16, true}, Scenario{16, false}})
      out.emplace_back(b, s);
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllBackends, AttentionRope, ::testing::ValuesIn(scenarios()), [](const auto& info) {
  const std::string& b = std::get<0>(info.param);
  const Scenario& s = std::get<1>(info.param);
  return b + "_rot" + std::to_string(s.n_rot) + (s.adjacent ? "_adjacent" : "_halves");
});

}  // namespace
}  // namespace loom

namespace loom {
namespace {

// RoPE with frequency factors against the definition in float64: pair j of a
// head turns by pos * base^(-2j/n) / factor_j.
TEST(RopeFactors, MatchFloat64Definition) {
  const int64_t T = 2, H = 3, D = 16;
  const std::vector<float> factors = {1, 1, 2, 4, 8, 8, 16, 32};
  const std::vector<int32_t> pos = {3, 4097};
  const auto x = test::random_floats(size_t(T * H * D), 71, -1, 1);
  for (const auto& be_name : backend::backend_names()) {
    test::GraphCase c;
    c.constants = {test::host_f32({8}, factors)};
    c.inputs = {test::host_f32({T, H, D}, x), test::host_i32({T}, pos)};
    c.build = [](graph::Graph&, auto& k, auto& in) {
      return graph::rope(in[0], in[1], graph::Rope{16, 500000.0f, 1.0f, graph::RopeStyle::Adjacent}, k[0]);
    };
    auto be = backend::create(be_name);
    const auto got = test::run_case(*be, c);
    double max_err = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int j = 0; j < 8; ++j) {
          const double theta = double(pos[size_t(t)]) * std::pow(500000.0, -2.0 * j / 16) / factors[size_t(j)];
          const std::complex<double> z(x[size_t((t * H + h) * D + 2 * j)], x[size_t((t * H + h) * D + 2 * j + 1)]);
          const auto r = z * std::polar(1.0, theta);
          max_err = std::max(max_err, std::fabs(r.real() - got[size_t((t * H + h) * D + 2 * j)]));
          max_err = std::max(max_err, std::fabs(r.imag() - got[size_t((t * H + h) * D + 2 * j + 1)]));
        }
    EXPECT_LT(max_err, 2e-6) << be_name;
  }
}

}  // namespace
}  // namespace loom
