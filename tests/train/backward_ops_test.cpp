// One gradient check per backward rule (train::backward over each op), with
// odd shapes, on the reference and the CPU backend: the gradient computed by
// the graph against central finite differences of a float64 forward written
// here (tests/train/grad_check.h states the loss and the tolerance).
#include <gtest/gtest.h>

#include <cmath>

#include "loom/core/error.h"
#include "train/grad_check.h"

namespace loom {
namespace {

using graph::Graph;
using graph::Value;
using test::check_gradients;
using test::GradCase;
using test::param;
using test::Vec;
using Values = std::vector<Value>;

class BackwardRule : public ::testing::TestWithParam<std::string> {};

TEST_P(BackwardRule, GetRowsScatterAddsIntoTheTable) {
  const std::vector<int32_t> ids = {3, 0, 3, 6, 1, 3};  // repeated ids add up
  GradCase c;
  c.names = {"table"};
  c.params = {param({7, 5}, 1)};
  c.fixed = {test::host_i32({6}, ids)};
  c.build = [](Graph&, const Values& p, const Values& in) { return graph::get_rows(p[0], in[0]); };
  c.forward = [&](const std::vector<Vec>& p) {
    Vec y;
    for (int32_t id : ids)
      for (int c2 = 0; c2 < 5; ++c2) y.push_back(p[0][size_t(id * 5 + c2)]);
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, MatMulInputAndWeight) {
  GradCase c;
  c.names = {"x", "w"};
  c.params = {param({5, 7}, 2), param({6, 7}, 3)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::matmul(p[0], p[1]); };
  c.forward = [](const std::vector<Vec>& p) { return test::ref_matmul(p[0], p[1], 5, 7, 6); };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, MatMulRank3Input) {
  GradCase c;
  c.names = {"x", "w"};
  c.params = {param({2, 3, 7}, 4), param({5, 7}, 5)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::matmul(p[0], p[1]); };
  c.forward = [](const std::vector<Vec>& p) { return test::ref_matmul(p[0], p[1], 6, 7, 5); };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, RmsNormInputAndWeight) {
  GradCase c;
  c.names = {"x", "w"};
  c.params = {param({5, 7}, 6), param({7}, 7, 0.5f, 1.5f)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::rms_norm(p[0], p[1], 1e-5f); };
  c.forward = [](const std::vector<Vec>& p) { return test::ref_rms_norm(p[0], p[1], 7, 1e-5); };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, RmsNormWithoutWeight) {
  GradCase c;
  c.names = {"x"};
  c.params = {param({3, 2, 9}, 8)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::rms_norm(p[0], Value(), 1e-3f); };
  c.forward = [](const std::vector<Vec>& p) { return test::ref_rms_norm(p[0], {}, 9, 1e-3); };
  check_gradients(GetParam(), c);
}

void rope_case(const std::string& backend, graph::RopeStyle style, bool factors) {
  const std::vector<int32_t> pos = {0, 3, 7, 2, 11};
  const std::vector<float> factor = {1.0f, 4.0f};
  const graph::Rope rp{4, 100.0f, 0.5f, style};  // partial rotation: 4 of 6 dims
  GradCase c;
  c.names = {"x"};
  c.params = {param({5, 3, 6}, 9)};
  c.fixed = {test::host_i32({5}, pos)};
  if (factors) c.fixed.push_back(test::host_f32({2}, factor));
  c.build = [=](Graph&, const Values& p, const Values& in) {
    return graph::rope(p[0], in[0], rp, factors ? in[1] : Value());
  };
  c.forward = [=](const std::vector<Vec>& p) {
    return test::ref_rope(p[0], pos, 3, 6, 4, 100.0, 0.5, style == graph::RopeStyle::Halves,
                          factors ? factor : std::vector<float>{});
  };
  check_gradients(backend, c);
}

TEST_P(BackwardRule, RopeAdjacentPairs) { rope_case(GetParam(), graph::RopeStyle::Adjacent, false); }
TEST_P(BackwardRule, RopeHalvesWithFrequencyFactors) { rope_case(GetParam(), graph::RopeStyle::Halves, true); }

TEST_P(BackwardRule, SwiGluGateAndUp) {
  GradCase c;
  c.names = {"gate", "up"};
  c.params = {param({5, 7}, 10, -3.0f, 3.0f), param({5, 7}, 11)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::swiglu(p[0], p[1]); };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y(p[0].size());
    for (size_t i = 0; i < y.size(); ++i) y[i] = test::ref_silu(p[0][i]) * p[1][i];
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, AddSameShapeAndBroadcastBias) {
  GradCase c;
  c.names = {"a", "b", "bias"};
  c.params = {param({2, 5, 7}, 12), param({2, 5, 7}, 13), param({7}, 14)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::add(graph::add(p[0], p[1]), p[2]); };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y(p[0].size());
    for (size_t i = 0; i < y.size(); ++i) y[i] = p[0][i] + p[1][i] + p[2][i % 7];
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, MulSameShapeBroadcastAndSquare) {
  GradCase c;
  c.names = {"a", "b", "s"};
  c.params = {param({5, 7}, 15), param({5, 7}, 16), param({7}, 17)};
  c.build = [](Graph&, const Values& p, const Values&) {
    return graph::mul(graph::mul(graph::mul(p[0], p[1]), p[2]), p[0]);  // a^2 b s: a has two consumers
  };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y(p[0].size());
    for (size_t i = 0; i < y.size(); ++i) y[i] = p[0][i] * p[1][i] * p[2][i % 7] * p[0][i];
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, Scale) {
  GradCase c;
  c.names = {"x"};
  c.params = {param({5, 7}, 18)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::scale(p[0], -1.75f); };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y = p[0];
    for (double& v : y) v *= -1.75;
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, Softmax) {
  GradCase c;
  c.names = {"x"};
  c.params = {param({5, 7}, 19, -3.0f, 3.0f)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::softmax(p[0]); };
  c.forward = [](const std::vector<Vec>& p) { return test::ref_softmax(p[0], 7); };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, Sigmoid) {
  GradCase c;
  c.names = {"x"};
  c.params = {param({5, 7}, 20, -4.0f, 4.0f)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::sigmoid(p[0]); };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y = p[0];
    for (double& v : y) v = 1.0 / (1.0 + std::exp(-v));
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, ScaleRowsInputAndFactors) {
  GradCase c;
  c.names = {"x", "s"};
  c.params = {param({5, 7}, 21), param({5, 1}, 22)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::scale_rows(p[0], p[1]); };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y = p[0];
    for (size_t i = 0; i < y.size(); ++i) y[i] *= p[1][i / 7];
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, TransposeAndSumTo) {
  GradCase c;
  c.names = {"x", "y"};
  c.params = {param({5, 7}, 23), param({3, 5, 7}, 24)};
  // transpose(x) [7, 5] * the rows of y summed to [5, 7], transposed back.
  c.build = [](Graph&, const Values& p, const Values&) {
    return graph::mul(graph::transpose(p[0]), graph::transpose(graph::sum_to(p[1], {5, 7})));
  };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y(35);
    for (int i = 0; i < 7; ++i)
      for (int r = 0; r < 5; ++r) {
        double s = 0;
        for (int b = 0; b < 3; ++b) s += p[1][size_t(b * 35 + r * 7 + i)];
        y[size_t(i * 5 + r)] = p[0][size_t(r * 7 + i)] * s;
      }
    return y;
  };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, ReshapeAndSlicesOfAFusedProjection) {
  // x [5, 15] seen as 5 heads of 3 (a fused QKV projection) and as the
  // gate | up columns of a fused FFN: every element of x reaches the output
  // through several views.
  GradCase c;
  c.names = {"x"};
  c.params = {param({5, 15}, 25, -2.0f, 2.0f)};
  c.build = [](Graph&, const Values& p, const Values&) {
    const Value heads = graph::reshape(p[0], {5, 5, 3});                                        // [5, 5, 3]
    const Value a = graph::reshape(graph::scale(graph::slice(heads, 1, 1, 2), 2.0f), {5, 6});  // heads 1, 2
    const Value b = graph::slice(heads, 1, 3, 2);                                               // heads 3, 4
    const Value bb = graph::reshape(graph::swiglu(b, b), {5, 6});
    const Value ffn = graph::swiglu(graph::slice(p[0], 1, 0, 6), graph::slice(p[0], 1, 6, 6));  // [5, 6]
    return graph::add(graph::add(ffn, a), bb);
  };
  c.forward = [](const std::vector<Vec>& p) {
    Vec y(30);
    for (size_t r = 0; r < 5; ++r)
      for (size_t j = 0; j < 6; ++j) {
        const double* x = p[0].data() + r * 15;
        y[r * 6 + j] = test::ref_silu(x[j]) * x[6 + j] + 2.0 * x[3 + j] + test::ref_silu(x[9 + j]) * x[9 + j];
      }
    return y;
  };
  check_gradients(GetParam(), c);
}

void attention_case(const std::string& backend, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, int32_t seq_len) {
  const double scale = 1.0 / std::sqrt(double(D));
  GradCase c;
  c.names = {"q", "k", "v"};
  c.params = {param({T, Hq, D}, 26, -2.0f, 2.0f), param({T, Hkv, D}, 27, -2.0f, 2.0f), param({T, Hkv, D}, 28)};
  c.build = [=](Graph&, const Values& p, const Values&) {
    return graph::causal_attention(p[0], p[1], p[2], {float(scale), seq_len});
  };
  c.forward = [=](const std::vector<Vec>& p) {
    return test::ref_causal_attention(p[0], p[1], p[2], T, Hq, Hkv, D, scale, seq_len > 0 ? seq_len : T);
  };
  check_gradients(backend, c);
}

TEST_P(BackwardRule, CausalAttentionGroupedQueryHeads) { attention_case(GetParam(), 5, 3, 1, 6, 0); }
TEST_P(BackwardRule, CausalAttentionTwoSequencesInABatch) { attention_case(GetParam(), 6, 4, 2, 5, 3); }

TEST_P(BackwardRule, CrossEntropyIgnoresNegativeTargets) {
  const std::vector<int32_t> targets = {3, 10, -1, 0, 7};
  GradCase c;
  c.names = {"logits"};
  c.params = {param({5, 11}, 29, -3.0f, 3.0f)};
  c.fixed = {test::host_i32({5}, targets)};
  c.scalar_loss = true;
  c.build = [](Graph&, const Values& p, const Values& in) { return graph::cross_entropy(p[0], in[0]); };
  c.forward = [&](const std::vector<Vec>& p) { return Vec{test::ref_cross_entropy(p[0], targets, 11)}; };
  check_gradients(GetParam(), c);
}

TEST_P(BackwardRule, ParametersTheLossDoesNotReachGetZeros) {
  auto be = backend::create(GetParam(), {.threads = 3});
  GradCase c;
  c.params = {param({3, 4}, 30), param({4}, 31)};
  c.build = [](Graph&, const Values& p, const Values&) { return graph::scale(p[0], 2.0f); };
  const test::GradRun r = test::run_gradients(*be, c, test::random_floats(12, 32));
  ASSERT_EQ(r.grads.size(), 2u);
  EXPECT_EQ(r.grads[1], std::vector<float>(4, 0.0f));
}

TEST_P(BackwardRule, KvCacheAttentionIsAnErrorNamingTheNode) {
  auto be = backend::create(GetParam());
  Graph g;
  Tensor cache(be->allocate(16 * 2 * 4 * 4), 0, DType::F32, {16, 2, 4});
  const Value q = g.input("q", DType::F32, {3, 2, 4});
  const Value pos = g.input("pos", DType::I32, {3}), seq = g.input("seq", DType::I32, {3});
  const Value table = g.input("table", DType::I32, {1, 1});
  const Value kc = g.constant(cache, "k_cache"), vc = g.constant(cache, "v_cache");
  const Value a = g.named(graph::attention(q, kc, vc, pos, seq, table, {0.5f, 16}), "blk.0.attn");
  const Value params[] = {q};
  try {
    train::backward(g, a, g.input("da", DType::F32, {3, 2, 4}), params);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("causal_attention"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceAndCpu, BackwardRule, ::testing::Values("reference", "cpu"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace loom
