// The mixture-of-experts op on every backend against values worked out by
// hand from its definition (op.h MoeFfn): which experts a token picks
// (largest probabilities, ties to the lower index), how their weights are
// normalised and scaled, and that the expert FFN is down(silu(gate x) * up x).
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend_harness.h"

namespace loom {
namespace {

double silu(double v) { return v / (1.0 + std::exp(-v)); }

// E = 3 experts, C = 2, F = 1. Expert e: gate row (g_e, 0), up row (0, 1),
// down column (d_e, 1), so expert e maps x = (x0, x1) to
// (d_e, 1) * silu(g_e * x0) * x1.
test::GraphCase hand_case(std::vector<float> probs, int32_t n_used, bool normalize, float scale) {
  test::GraphCase c;
  c.constants = {test::host_f32({3, 1, 2}, {1.0f, 0, 2.0f, 0, -1.0f, 0}),  // gate: g = 1, 2, -1
                 test::host_f32({3, 1, 2}, {0, 1, 0, 1, 0, 1}),            // up
                 test::host_f32({3, 2, 1}, {3.0f, 1, 5.0f, 1, 7.0f, 1})};  // down: d = 3, 5, 7
  c.inputs = {test::host_f32({2, 2}, {0.5f, 2.0f, -1.0f, 0.25f}), test::host_f32({2, 3}, probs)};
  c.build = [=](graph::Graph&, auto& k, auto& in) {
    return graph::moe_ffn(in[0], in[1], k[0], k[1], k[2], graph::MoeFfn{n_used, normalize, scale});
  };
  return c;
}

// Expected output of one token from the chosen experts and their weights.
std::vector<double> expect(double x0, double x1, std::vector<std::pair<int, double>> picks) {
  const double g[3] = {1, 2, -1}, d[3] = {3, 5, 7};
  std::vector<double> out(2, 0.0);
  for (auto [e, w] : picks) {
    const double h = silu(g[e] * x0) * x1;
    out[0] += w * d[e] * h;
    out[1] += w * h;
  }
  return out;
}

class MoeByHand : public ::testing::TestWithParam<std::string> {
 protected:
  void check(const test::GraphCase& c, const std::vector<double>& want) {
    auto be = backend::create(GetParam(), {.threads = 2});
    const auto got = test::run_case(*be, c);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << i;
  }
};

TEST_P(MoeByHand, PicksTheLargestAndRenormalises) {
  // Token 0 picks experts 1 (0.5) and 2 (0.3); token 1 picks 0 (0.6) and 2 (0.3).
  auto a = expect(0.5, 2.0, {{1, 0.5 / 0.8}, {2, 0.3 / 0.8}});
  auto b = expect(-1.0, 0.25, {{0, 0.6 / 0.9}, {2, 0.3 / 0.9}});
  check(hand_case({0.2f, 0.5f, 0.3f, 0.6f, 0.1f, 0.3f}, 2, true, 1.0f), {a[0], a[1], b[0], b[1]});
}

TEST_P(MoeByHand, UnnormalisedScaledWeightsAndTiesToTheLowerIndex) {
  // Token 0: a three-way tie, top 2 are experts 0 and 1. Token 1: top 1 is expert 2.
  auto a = expect(0.5, 2.0, {{0, 0.25 * 2.5}, {1, 0.25 * 2.5}});
  auto b = expect(-1.0, 0.25, {{2, 0.7 * 2.5}, {1, 0.2 * 2.5}});
  check(hand_case({0.25f, 0.25f, 0.25f, 0.1f, 0.2f, 0.7f}, 2, false, 2.5f), {a[0], a[1], b[0], b[1]});
}

TEST_P(MoeByHand, UsingEveryExpertIsADenseMixture) {
  auto a = expect(0.5, 2.0, {{0, 0.2}, {1, 0.5}, {2, 0.3}});
  auto b = expect(-1.0, 0.25, {{0, 0.6}, {1, 0.1}, {2, 0.3}});
  check(hand_case({0.2f, 0.5f, 0.3f, 0.6f, 0.1f, 0.3f}, 3, true, 1.0f), {a[0], a[1], b[0], b[1]});
}

INSTANTIATE_TEST_SUITE_P(AllBackends, MoeByHand, ::testing::ValuesIn(backend::backend_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace loom
