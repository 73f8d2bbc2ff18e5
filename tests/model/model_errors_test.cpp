// A model file that does not match its architecture fails to load with an
// error naming the file, the tensor or key, and what was expected: a missing
// tensor, a tensor of the wrong shape, an unknown architecture, inconsistent
// expert counts, half of GLM-4's sandwich norms.
#include <gtest/gtest.h>

#include "loom/core/error.h"
#include "model/tiny_models.h"
#include "support/test_data.h"

namespace loom {
namespace {

// The error message of loading `path`, or "" if it loads.
std::string load_error(const std::string& path) {
  auto be = backend::create("reference");
  try {
    auto src = model::ModelSource::open(path);
    model::load(*src, *be);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string scratch(const std::string& name) { return test::scratch_dir("model_errors") + "/" + name + ".gguf"; }

void expect_mentions(const std::string& message, std::initializer_list<std::string> parts) {
  EXPECT_FALSE(message.empty()) << "the model loaded";
  for (const std::string& p : parts) EXPECT_NE(message.find(p), std::string::npos) << message << "\nlacks: " << p;
}

TEST(ModelErrors, MissingTensorNamesFileTensorAndShape) {
  const test::TinySpec s = test::tiny_spec("qwen2");
  const auto w = test::random_weights(s, 1);
  const std::string path = scratch("missing");
  test::write_gguf(test::tiny_metadata(s), w, path, "blk.1.ffn_down.weight");
  expect_mentions(load_error(path), {path, "blk.1.ffn_down.weight", "[64, 96]"});
}

TEST(ModelErrors, MissingExpertTensor) {
  const test::TinySpec s = test::tiny_spec("qwen2moe");
  const auto w = test::random_weights(s, 1);
  const std::string path = scratch("missing_expert");
  test::write_gguf(test::tiny_metadata(s), w, path, "blk.0.ffn_up_exps.weight");
  expect_mentions(load_error(path), {path, "blk.0.ffn_up_exps.weight", "[6, 32, 64]"});
}

TEST(ModelErrors, WrongShapeNamesBothShapes) {
  const test::TinySpec s = test::tiny_spec("telechat2");
  auto w = test::random_weights(s, 1);
  // A fused key_value of a model with as many KV heads as query heads, under a config that says 2.
  w["blk.0.attn_kv.weight"] = {{128, 64}, std::vector<float>(128 * 64, 0.5f)};
  const std::string path = scratch("wrong_shape");
  test::write_tiny_gguf(s, w, path);
  expect_mentions(load_error(path), {path, "blk.0.attn_kv.weight", "[128, 64]", "expected [64, 64]"});
}

TEST(ModelErrors, UnknownArchitectureListsTheKnownOnes) {
  const test::TinySpec s = test::tiny_spec("llama");
  const auto w = test::random_weights(s, 1);
  auto meta = test::tiny_metadata(s);
  meta[0].second = format::GgufValue::make_string("gpt-j-9000");
  const std::string path = scratch("unknown_arch");
  test::write_gguf(meta, w, path);
  expect_mentions(load_error(path), {path, "gpt-j-9000", "llama", "qwen2", "qwen2moe", "chatglm", "glm4", "telechat2"});
}

TEST(ModelErrors, MoreExpertsUsedThanThereAre) {
  const test::TinySpec s = test::tiny_spec("llama_moe");
  const auto w = test::random_weights(s, 1);
  auto meta = test::tiny_metadata(s);
  for (auto& [k, v] : meta)
    if (k == "llama.expert_used_count") v = format::GgufValue::make_uint32(5);
  const std::string path = scratch("experts");
  test::write_gguf(meta, w, path);
  expect_mentions(load_error(path), {path, "expert_used_count", "5", "expert_count = 4"});
}

TEST(ModelErrors, HalfOfGlm4SandwichNorms) {
  const test::TinySpec s = test::tiny_spec("glm4");
  const auto w = test::random_weights(s, 1);
  const std::string path = scratch("glm4_half");
  test::write_gguf(test::tiny_metadata(s), w, path, "blk.1.post_ffw_norm.weight");
  expect_mentions(load_error(path), {path, "blk.1.post_ffw_norm.weight", "[64]"});
}

TEST(ModelErrors, UnknownRopeStyle) {
  const test::TinySpec s = test::tiny_spec("llama");
  const auto w = test::random_weights(s, 1);
  auto meta = test::tiny_metadata(s);
  meta.push_back({"llama.rope.style", format::GgufValue::make_string("spiral")});
  const std::string path = scratch("rope_style");
  test::write_gguf(meta, w, path);
  expect_mentions(load_error(path), {path, "llama.rope.style", "spiral", "neox"});
}

}  // namespace
}  // namespace loom
