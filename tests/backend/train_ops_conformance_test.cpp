// The conformance suite for the training ops (graph/train_ops.h): each op on
// every registered backend against the reference backend, with shapes large
// enough that the CPU backend splits the work between threads (the gradient
// checks of tests/train use small shapes) and sizes that are multiples of
// nothing in particular.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend_harness.h"
#include "loom/graph/train_ops.h"

namespace loom {
namespace {

using graph::Graph;
using graph::Value;
using test::GraphCase;
using test::random_floats;

std::vector<std::string> other_backends() {
  std::vector<std::string> out;
  for (const auto& n : backend::backend_names())
    if (n != "reference") out.push_back(n);
  return out;
}

class TrainOpsConformance : public ::testing::TestWithParam<std::string> {
 protected:
  // |got - want| <= atol + rtol * |want| everywhere.
  void expect_matches_reference(const GraphCase& c, double atol, double rtol) {
    auto ref = backend::create("reference");
    auto be = backend::create(GetParam(), {.threads = 3});
    const auto want = test::run_case(*ref, c);
    const auto got = test::run_case(*be, c);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      if (got[i] == want[i]) continue;
      const double e = std::fabs(double(got[i]) - double(want[i])) / (atol + rtol * std::fabs(double(want[i])));
      if (!(e <= worst)) worst = e, at = i;
    }
    EXPECT_LE(worst, 1.0) << GetParam() << " at " << at << ": " << got[at] << " vs " << want[at];
  }
  static test::HostTensor f32(Shape s, uint32_t seed, float lo = -1, float hi = 1) {
    return test::host_f32(s, random_floats(size_t(s.numel()), seed, lo, hi));
  }
};

TEST_P(TrainOpsConformance, CausalAttentionAndItsBackward) {
  const int64_t T = 67, Hq = 8, Hkv = 2, D = 36;
  GraphCase c;
  c.inputs = {f32({T, Hq, D}, 1, -2, 2), f32({T, Hkv, D}, 2, -2, 2), f32({T, Hkv, D}, 3), f32({T, Hq, D}, 4)};
  const graph::CausalAttention p{1.0f / 6.0f, 0};
  c.build = [p](Graph&, auto&, auto& in) { return graph::causal_attention(in[0], in[1], in[2], p); };
  expect_matches_reference(c, 1e-5, 1e-4);
  for (int which = 0; which < 3; ++which) {  // dq, dk, dv
    c.build = [p, which](Graph&, auto&, auto& in) {
      const graph::AttentionGrads d = graph::causal_attention_backward(in[0], in[1], in[2], in[3], p);
      return which == 0 ? d.dq : which == 1 ? d.dk : d.dv;
    };
    expect_matches_reference(c, 1e-5, 1e-4);
  }
}

TEST_P(TrainOpsConformance, CausalAttentionBatchOfSequences) {
  const int64_t T = 60, Hq = 6, Hkv = 3, D = 20;
  GraphCase c;
  c.inputs = {f32({T, Hq, D}, 5, -2, 2), f32({T, Hkv, D}, 6, -2, 2), f32({T, Hkv, D}, 7), f32({T, Hq, D}, 8)};
  const graph::CausalAttention p{0.25f, 15};
  c.build = [p](Graph&, auto&, auto& in) {
    const graph::AttentionGrads d = graph::causal_attention_backward(in[0], in[1], in[2], in[3], p);
    return graph::add(graph::causal_attention(in[0], in[1], in[2], p), graph::scale(d.dq, 0.5f));
  };
  expect_matches_reference(c, 1e-5, 1e-4);
}

TEST_P(TrainOpsConformance, CrossEntropyAndItsBackward) {
  const int64_t R = 37, V = 301;
  std::vector<int32_t> targets(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) targets[size_t(r)] = r % 5 == 2 ? -1 : int32_t((r * 97) % V);
  GraphCase c;
  c.inputs = {f32({R, V}, 9, -4, 4), test::host_i32({R}, targets), test::host_f32({1}, {0.75f})};
  c.build = [](Graph&, auto&, auto& in) { return graph::cross_entropy(in[0], in[1]); };
  expect_matches_reference(c, 1e-6, 1e-5);
  c.build = [](Graph&, auto&, auto& in) { return graph::cross_entropy_backward(in[0], in[1], in[2]); };
  expect_matches_reference(c, 1e-7, 1e-4);
}

TEST_P(TrainOpsConformance, RowWiseBackwardOps) {
  const int64_t T = 41, H = 5, D = 22;
  GraphCase c;
  c.inputs = {f32({T, H * D}, 10, -3, 3), f32({T, H * D}, 11), f32({H * D}, 12, 0.5f, 1.5f),
              test::host_i32({T}, std::vector<int32_t>(size_t(T), 0)), f32({H * D / 2}, 13)};
  for (int64_t t = 0; t < T; ++t) reinterpret_cast<int32_t*>(c.inputs[3].bytes.data())[t] = int32_t(t * 3 % 50);
  c.build = [](Graph&, auto&, auto& in) { return graph::rms_norm_backward(in[0], in[2], in[1], 1e-5f); };
  expect_matches_reference(c, 1e-5, 1e-4);
  c.build = [](Graph&, auto&, auto& in) { return graph::rms_norm_backward(in[0], Value(), in[1], 1e-5f); };
  expect_matches_reference(c, 1e-5, 1e-4);
  for (bool up : {false, true}) {
    c.build = [up](Graph&, auto&, auto& in) { return graph::swiglu_backward(in[0], in[1], in[1], up); };
    expect_matches_reference(c, 1e-6, 1e-5);
  }
  c.build = [](Graph&, auto&, auto& in) { return graph::softmax_backward(graph::softmax(in[0]), in[1]); };
  expect_matches_reference(c, 1e-6, 1e-4);
  for (auto style : {graph::RopeStyle::Adjacent, graph::RopeStyle::Halves}) {
    c.build = [style](Graph&, auto&, auto& in) {
      const graph::Rope p{16, 10000.0f, 1.0f, style};
      return graph::rope_backward(graph::reshape(in[1], {T, H, D}), in[3], p);
    };
    expect_matches_reference(c, 1e-5, 1e-4);
  }
}

TEST_P(TrainOpsConformance, ReductionsTransposesAndScatters) {
  const int64_t T = 53, C = 70, V = 29;
  std::vector<int32_t> ids(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t((t * 7) % V);  // repeats
  GraphCase c;
  c.inputs = {f32({T, C}, 14), test::host_i32({T}, ids), f32({3, T, C}, 15)};
  c.build = [](Graph&, auto&, auto& in) { return graph::get_rows_backward(in[0], in[1], V); };
  expect_matches_reference(c, 1e-6, 1e-5);
  c.build = [](Graph&, auto&, auto& in) { return graph::sum_to(in[2], {C}); };
  expect_matches_reference(c, 1e-5, 1e-5);
  c.build = [](Graph&, auto&, auto& in) { return graph::sum_to(in[2], {T, C}); };
  expect_matches_reference(c, 1e-6, 1e-5);
  c.build = [](Graph&, auto&, auto& in) { return graph::transpose(in[2]); };
  expect_matches_reference(c, 0, 0);
  c.build = [](Graph&, auto&, auto& in) { return graph::transpose(graph::slice(in[0], 1, 3, 50)); };
  expect_matches_reference(c, 0, 0);
  c.build = [](Graph& g, auto&, auto& in) {
    return graph::add(graph::slice_backward(graph::reshape(in[0], {1, T, C}), {3, T, C}, 0, 1),
                      graph::fill(g, {C}, 0.5f));
  };
  expect_matches_reference(c, 0, 0);
  c.build = [](Graph&, auto&, auto& in) {
    return graph::slice_backward(graph::slice(in[2], 2, 10, 33), {3, T, 50}, 2, 17);
  };
  expect_matches_reference(c, 0, 0);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, TrainOpsConformance, ::testing::ValuesIn(other_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace loom
