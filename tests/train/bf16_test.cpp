// The BF16 compute mode of training (StepOptions::bf16): a step equals, to
// float rounding, an FP32 step whose weight matrices were rounded to BF16
// beforehand (here by a rounding written in the test), so the only change
// is the weights' precision; gradients come back FP32 for the FP32 masters.
// Also the BF16 transpose the matmul backward needs, against a hand transposition.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "loom/backend/backend.h"
#include "loom/graph/ops.h"
#include "loom/graph/train_ops.h"
#include "loom/train/llama_train.h"

namespace loom {
namespace {

// float -> bfloat16 -> float, rounding to nearest, ties to even (finite values).
float round_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::bit_cast<float>(u & 0xffff0000u);
}

class Bf16Training : public testing::TestWithParam<const char*> {};

TEST_P(Bf16Training, StepEqualsAnF32StepOnBf16RoundedWeights) {
  const train::LlamaTrainConfig c{.vocab_size = 53, .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                  .ff_dim = 48};
  const auto specs = train::llama_param_specs(c);
  auto params = train::init_llama_params(c, 9);
  // Norm weights away from 1, so that they are not BF16-exact either (they stay FP32 in BF16 mode).
  for (size_t i = 0; i < params.size(); ++i)
    if (specs[i].shape.size() == 1)
      for (size_t j = 0; j < params[i].size(); ++j) params[i][j] = 1.0f + 0.001f * float(j % 7) + 1e-4f;
  auto rounded = params;
  size_t changed = 0;
  for (size_t i = 0; i < rounded.size(); ++i)
    if (specs[i].shape.size() == 2)
      for (float& v : rounded[i]) {
        const float r = round_bf16(v);
        changed += r != v;
        v = r;
      }
  ASSERT_GT(changed, 1000u);  // N(0, 0.02) values are almost never BF16-exact

  std::vector<int32_t> tokens(2 * 16), targets(2 * 16);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int32_t((i * 11 + 5) % 53);
    targets[i] = int32_t((i * 23 + 2) % 53);
  }
  auto be = backend::create(GetParam(), {.threads = 2});
  train::LlamaTrainStep f32(c, *be, 2, 16), bf16(c, *be, 2, 16, {.bf16 = true});
  const float loss_bf16 = bf16.run(params, tokens, targets);
  const float loss_rounded = f32.run(rounded, tokens, targets);
  EXPECT_NEAR(loss_bf16, loss_rounded, 1e-5 * std::abs(loss_rounded));
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<float> a(params[i].size()), b(params[i].size());
    f32.add_grad(i, a);
    bf16.add_grad(i, b);
    double diff = 0, norm = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      diff = std::max(diff, std::abs(double(a[j]) - double(b[j])));
      norm = std::max(norm, std::abs(double(a[j])));
    }
    EXPECT_GT(norm, 0) << specs[i].name;
    EXPECT_LE(diff, 1e-5 * norm + 1e-9) << specs[i].name;
  }

  // And the rounding matters: the FP32 step on the unrounded weights differs.
  train::LlamaTrainStep exact(c, *be, 2, 16, {.grads = false});
  EXPECT_NE(exact.run(params, tokens, targets), loss_bf16);
}

TEST_P(Bf16Training, TransposeMovesBf16BitsUnchanged) {
  graph::Graph g;
  const graph::Value x = g.input("x", DType::BF16, {3, 5});
  const graph::Value t = graph::transpose(x);
  g.mark_output(t);
  ASSERT_EQ(t.dtype(), DType::BF16);
  auto be = backend::create(GetParam(), {.threads = 2});
  auto exe = be->compile(g);
  std::vector<uint16_t> in(15), out(15);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint16_t(0x3f80 + 7 * i);  // 1.0 and up, distinct
  exe->set_input(x, in.data(), in.size() * 2);
  exe->run();
  exe->read(t, out.data(), out.size() * 2);
  for (size_t r = 0; r < 3; ++r)
    for (size_t c = 0; c < 5; ++c) EXPECT_EQ(out[c * 3 + r], in[r * 5 + c]) << r << "," << c;
}

INSTANTIATE_TEST_SUITE_P(ReferenceAndCpu, Bf16Training, testing::Values("reference", "cpu"));

}  // namespace
}  // namespace loom
