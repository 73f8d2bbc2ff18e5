// Activation recomputation (BackwardOptions::checkpoints): a three-layer
// residual stack (RMSNorm, SwiGLU feed-forward, tied output, cross-entropy)
// gives bit-identical gradients with and without recomputing the layers'
// insides, and the memory plan of the recomputing graph is smaller.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "loom/backend/backend.h"
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/graph/planner.h"
#include "loom/graph/train_ops.h"
#include "loom/train/backward.h"
#include "loom/train/llama_train.h"

namespace loom {
namespace {

using graph::Graph;
using graph::Value;

constexpr int64_t V = 37, C = 24, F = 64, T = 48, L = 3;

struct Net {
  Value tokens, targets;
  std::vector<Value> params, grads, checkpoints;
};

Net build(Graph& g, bool recompute) {
  Net n;
  n.tokens = g.input("tokens", DType::I32, {T});
  n.targets = g.input("targets", DType::I32, {T});
  n.params.push_back(g.input("embd", DType::F32, {V, C}));
  for (int l = 0; l < L; ++l) {
    n.params.push_back(g.input("norm", DType::F32, {C}));
    n.params.push_back(g.input("gate", DType::F32, {F, C}));
    n.params.push_back(g.input("up", DType::F32, {F, C}));
    n.params.push_back(g.input("down", DType::F32, {C, F}));
  }
  n.params.push_back(g.input("out_norm", DType::F32, {C}));
  Value x = graph::get_rows(n.params[0], n.tokens);
  for (int l = 0; l < L; ++l) {
    const Value* p = &n.params[size_t(1 + 4 * l)];
    const Value h = graph::rms_norm(x, p[0], 1e-5f);
    x = graph::add(x, graph::matmul(graph::swiglu(graph::matmul(h, p[1]), graph::matmul(h, p[2])), p[3]));
    n.checkpoints.push_back(x);
  }
  const Value logits = graph::matmul(graph::rms_norm(x, n.params.back(), 1e-5f), n.params[0]);
  const Value loss = graph::cross_entropy(logits, n.targets);
  g.mark_output(loss);
  train::BackwardOptions o;
  if (recompute) o.checkpoints = n.checkpoints;
  n.grads = train::backward(g, loss, n.params, o);
  for (Value d : n.grads) g.mark_output(d);
  return n;
}

class Recompute : public testing::TestWithParam<const char*> {};

TEST_P(Recompute, SameGradientsBitForBitInLessMemory) {
  Graph plain_graph, recompute_graph;
  const Net plain = build(plain_graph, false), again = build(recompute_graph, true);
  EXPECT_GT(recompute_graph.size(), plain_graph.size());  // the layers' insides, once more

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<std::vector<float>> values;
  for (Value p : plain.params) {
    std::vector<float> v(size_t(p.shape().numel()));
    for (float& f : v) f = p.rank() == 1 ? 1.0f + u(rng) : u(rng);
    values.push_back(std::move(v));
  }
  std::vector<int32_t> tokens(T), targets(T);
  for (int64_t i = 0; i < T; ++i) {
    tokens[size_t(i)] = int32_t(rng() % V);
    targets[size_t(i)] = int32_t(rng() % V);
  }
  auto be = backend::create(GetParam(), {.threads = 2});
  auto gradients = [&](Graph& g, const Net& n) {
    auto exe = be->compile(g);
    exe->set_input(n.tokens, tokens.data(), tokens.size() * 4);
    exe->set_input(n.targets, targets.data(), targets.size() * 4);
    for (size_t i = 0; i < n.params.size(); ++i) exe->set_input(n.params[i], values[i].data(), values[i].size() * 4);
    exe->run();
    std::vector<std::vector<float>> out;
    for (Value d : n.grads) {
      std::vector<float> v(size_t(d.shape().numel()));
      exe->read(d, v.data(), v.size() * 4);
      out.push_back(std::move(v));
    }
    return out;
  };
  const auto a = gradients(plain_graph, plain), b = gradients(recompute_graph, again);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), a[i].size() * 4), 0) << "gradient of parameter " << i;
    double norm = 0;
    for (float f : a[i]) norm += double(f) * f;
    EXPECT_GT(norm, 0) << "parameter " << i << " got no gradient";
  }

  // Each layer keeps [T, F] gate, up and SwiGLU values and [T, C] norm
  // outputs for the backward pass unless they are recomputed.
  const size_t plain_bytes = graph::plan_memory(plain_graph, 64).arena_bytes;
  const size_t recompute_bytes = graph::plan_memory(recompute_graph, 64).arena_bytes;
  EXPECT_LT(recompute_bytes, plain_bytes);
  RecordProperty("arena_bytes_plain", std::to_string(plain_bytes));
  RecordProperty("arena_bytes_recompute", std::to_string(recompute_bytes));
  std::printf("arena: %zu bytes kept-activations, %zu bytes with recomputation\n", plain_bytes, recompute_bytes);
}

TEST(RecomputeOptions, CheckpointsOutOfOrderAreAnError) {
  Graph g;
  const Value w = g.input("w", DType::F32, {4, 4});
  const Value x = g.input("x", DType::F32, {2, 4});
  const Value a = graph::matmul(x, w), b = graph::matmul(a, w);
  const Value loss = graph::cross_entropy(b, g.input("t", DType::I32, {2}));
  const std::vector<Value> params = {w};
  EXPECT_THROW(train::backward(g, loss, params, {.checkpoints = {b, a}}), Error);
}

// The training model with --recompute: the same loss and gradients, bit for bit.
TEST_P(Recompute, LlamaTrainStepWithRecomputationIsBitIdentical) {
  const train::LlamaTrainConfig c{.vocab_size = 61, .dim = 32, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2,
                                  .ff_dim = 40};
  const auto params = train::init_llama_params(c, 5);
  std::vector<int32_t> tokens(2 * 24), targets(2 * 24);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int32_t((i * 17 + 3) % 61);
    targets[i] = int32_t((i * 29 + 1) % 61);
  }
  auto be = backend::create(GetParam(), {.threads = 2});
  train::LlamaTrainStep plain(c, *be, 2, 24), again(c, *be, 2, 24, {.recompute = true});
  const float a = plain.run(params, tokens, targets), b = again.run(params, tokens, targets);
  EXPECT_EQ(std::memcmp(&a, &b, 4), 0) << a << " vs " << b;
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<float> ga(params[i].size()), gb(params[i].size());
    plain.add_grad(i, ga);
    again.add_grad(i, gb);
    EXPECT_EQ(std::memcmp(ga.data(), gb.data(), ga.size() * 4), 0) << "parameter " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceAndCpu, Recompute, testing::Values("reference", "cpu"));

}  // namespace
}  // namespace loom
