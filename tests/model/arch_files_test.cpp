// The random-weight models of ../shared/data/models/arch, written in
// llama.cpp's exact GGUF layout (names, shapes, keys) by another tool: loom
// loads each, and its prefill hidden states and logits, then a few greedy
// steps through the KV cache, match the float64 reference of the same
// weights. The configurations below are the data README's table, not the
// files' metadata, so a misread key fails here too.
#include <gtest/gtest.h>

#include <cstring>

#include "model/tiny_models.h"
#include "support/test_data.h"

namespace loom {
namespace {

using test::ref::Config;

// 4 layers, hidden 128, FFN 344, head_dim 32, vocab 32000, output tied to the embedding.
Config readme_config(const std::string& arch) {
  Config c;
  c.arch = arch;
  c.n_vocab = 32000;
  c.n_embd = 128;
  c.n_layer = 4;
  c.n_ff = 344;
  c.head_dim = 32;
  c.eps = 1e-5;  // the README gives only qwen2's; 1e-5 is llama.cpp's default and the files'
  if (arch == "llama") {
    c.n_head = 8, c.n_head_kv = 2, c.n_rot = 32, c.rope_adjacent = true, c.rope_base = 1e4;
  } else if (arch == "qwen2") {
    c.n_head = 4, c.n_head_kv = 2, c.n_rot = 32, c.rope_adjacent = false, c.rope_base = 1e6, c.eps = 1e-6;
  } else {  // chatglm, glm4: rotary on the first 16 dims, adjacent pairs
    c.n_head = 4, c.n_head_kv = 2, c.n_rot = 16, c.rope_adjacent = true, c.rope_base = 1e4;
  }
  return c;
}

// Every tensor of the file as float32 (they are F32 in these files).
test::ref::Weights read_weights(const std::string& path) {
  auto f = format::GgufFile::open(path);
  test::ref::Weights w;
  for (const auto& t : f->tensors()) {
    EXPECT_EQ(t.dtype, DType::F32) << t.name;
    test::ref::HostWeight h;
    for (int i = 0; i < t.shape.rank; ++i) h.shape.push_back(t.shape[i]);
    h.data.resize(size_t(t.nbytes / 4));
    std::memcpy(h.data.data(), t.data, h.data.size() * 4);
    w[t.name] = std::move(h);
  }
  return w;
}

class ArchFiles : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ArchFiles, LoadAndMatchTheFloat64Reference) {
  const auto& [arch, backend_name] = GetParam();
  LOOM_DATA(path, "models/arch/" + arch + "-random.gguf");
  const test::ref::Weights w = read_weights(path);
  EXPECT_EQ(w.count("output.weight"), 0u) << "the README says the output is tied";
  const test::ref::Model reference(readme_config(arch), w);
  const std::vector<int32_t> prompt = {1, 450, 4996, 17354, 29871};
  const test::Agreement a = test::expect_matches_reference(path, backend_name, reference, prompt, 6);
  EXPECT_EQ(a.tokens, 6);
}

INSTANTIATE_TEST_SUITE_P(All, ArchFiles,
                         ::testing::Combine(::testing::Values("llama", "qwen2", "chatglm", "glm4"),
                                            ::testing::ValuesIn(backend::backend_names())),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

}  // namespace
}  // namespace loom
