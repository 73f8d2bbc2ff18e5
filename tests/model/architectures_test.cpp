// Every architecture against its float64 reference (reference_models.h): a
// tiny random-weight model per architecture, written as GGUF with llama.cpp's
// keys and names and as a Hugging Face folder with the family's own
// config.json keys and tensor names, run by loom on every backend — final
// hidden states and logits of a prefill, then 32 greedy tokens through the KV
// cache, each step's logits within 1e-4 of the reference (relative to the
// vector's scale) and the same tokens.
#include <gtest/gtest.h>

#include "model/tiny_hf_folders.h"
#include "model/tiny_models.h"
#include "support/test_data.h"

namespace loom {
namespace {

const std::vector<int32_t> kPrompt = {1, 7, 42, 99, 3, 150};

class Architectures : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Architectures, GgufMatchesFloat64Reference) {
  const auto& [arch, backend_name] = GetParam();
  const test::TinySpec spec = test::tiny_spec(arch);
  const test::ref::Weights w = test::random_weights(spec, 1234);
  // One file per test instance: ctest runs the instances in parallel processes.
  const std::string path = test::scratch_dir("architectures") + "/" + arch + "-" + backend_name + ".gguf";
  test::write_tiny_gguf(spec, w, path);
  const test::ref::Model reference(spec.config, w);
  const test::Agreement a = test::expect_matches_reference(path, backend_name, reference, kPrompt, 32);
  EXPECT_EQ(a.tokens, 32);
}

TEST_P(Architectures, HuggingFaceFolderMatchesFloat64Reference) {
  const auto& [arch, backend_name] = GetParam();
  const test::TinySpec spec = test::tiny_spec(arch);
  const test::ref::Weights w = test::random_weights(spec, 1234);
  const std::string dir = test::scratch_dir("architectures") + "/" + arch + "-" + backend_name + "-hf";
  test::write_tiny_hf_folder(spec, w, dir);
  const test::ref::Model reference(test::hf_reference_config(spec), w);
  const test::Agreement a = test::expect_matches_reference(dir, backend_name, reference, kPrompt, 32);
  EXPECT_EQ(a.tokens, 32);
}

INSTANTIATE_TEST_SUITE_P(
    All, Architectures,
    ::testing::Combine(::testing::Values("llama", "llama_moe", "qwen2", "qwen2moe", "deepseek", "chatglm", "glm4",
                                         "telechat2", "telechat2_embd_norm"),
                       ::testing::ValuesIn(backend::backend_names())),
    [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

}  // namespace
}  // namespace loom
