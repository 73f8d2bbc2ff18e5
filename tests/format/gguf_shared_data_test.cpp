// Real GGUF files written by llama.cpp (shared/data, see its README): the
// vocab-only test files and the random-weight architecture models.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "support/test_data.h"

namespace {

using namespace loom::format;
using loom::DType;
using loom::Shape;

TEST(GgufSharedData, EveryVocabFileOpens) {
  LOOM_DATA(spm, "vocab/ggml-vocab-llama-spm.gguf");
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(spm).parent_path()))
    if (e.path().extension() == ".gguf") files.push_back(e.path().string());
  // README: llama-spm, phi-3, gpt-2, deepseek-llm and baichuan come with a GGUF.
  EXPECT_GE(files.size(), 5u);
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->version(), 3u);  // README: vocab-only GGUF v3 files
    EXPECT_TRUE(f->tensors().empty());
    EXPECT_GT(f->metadata().at("tokenizer.ggml.tokens").size(), 0u);
    EXPECT_FALSE(f->metadata().get_string("tokenizer.ggml.model").empty());
    // Walking every value must work (this is what `loom info` prints).
    for (const auto& [key, value] : f->metadata().entries()) EXPECT_FALSE(value.to_display().empty()) << key;
  }
}

TEST(GgufSharedData, LlamaSpmVocab) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->metadata().get_string("tokenizer.ggml.model"), "llama");
  const auto& tokens = f->metadata().at("tokenizer.ggml.tokens").strings();
  ASSERT_EQ(tokens.size(), 32000u);  // the Llama 2 SentencePiece vocabulary
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(f->metadata().at("tokenizer.ggml.scores").floats().size(), 32000u);
  EXPECT_EQ(f->metadata().at("tokenizer.ggml.token_type").ints().size(), 32000u);
  EXPECT_EQ(f->metadata().get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f->metadata().get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_TRUE(f->metadata().get_bool("tokenizer.ggml.add_bos_token"));
  // Accessor errors name the file and the key.
  try {
    f->metadata().get_int("tokenizer.ggml.model");
    ADD_FAILURE();
  } catch (const loom::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("tokenizer.ggml.model"), std::string::npos) << msg;
  }
  try {
    f->metadata().get_string("no.such.key");
    ADD_FAILURE();
  } catch (const loom::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing metadata key 'no.such.key'"), std::string::npos) << msg;
  }
  EXPECT_EQ(f->metadata().get_int("no.such.key", 7), 7);
  EXPECT_EQ(f->metadata().get_string("no.such.key", "x"), "x");
  EXPECT_THROW(f->metadata().get_int("tokenizer.ggml.model", 7), loom::Error);  // present with the wrong type
}

struct ArchCase {
  const char* file;
  const char* arch;
  int heads, kv_heads;
  size_t n_tensors;
  // Layer-0 tensors and their shapes [out, in] per the README table.
  std::vector<std::pair<std::string, Shape>> layer0;
};

// README: 4 layers, hidden 128, FFN 344, head_dim 32, context 512, vocab 32000,
// F32 weights, output tied to the embedding (so no output.weight).
const std::vector<ArchCase>& arch_cases() {
  static const std::vector<ArchCase> cases = {
      {"llama-random.gguf", "llama", 8, 2, 2 + 4 * 9,
       {{"attn_q.weight", {256, 128}},  // 8 heads * 32
        {"attn_k.weight", {64, 128}},   // 2 kv heads * 32
        {"attn_v.weight", {64, 128}},
        {"attn_output.weight", {128, 256}},
        {"ffn_gate.weight", {344, 128}},
        {"ffn_up.weight", {344, 128}},
        {"ffn_down.weight", {128, 344}},
        {"attn_norm.weight", {128}},
        {"ffn_norm.weight", {128}}}},
      {"qwen2-random.gguf", "qwen2", 4, 2, 2 + 4 * 12,
       {{"attn_q.weight", {128, 128}},
        {"attn_q.bias", {128}},
        {"attn_k.weight", {64, 128}},
        {"attn_k.bias", {64}},
        {"attn_v.weight", {64, 128}},
        {"attn_v.bias", {64}},
        {"attn_output.weight", {128, 128}},
        {"ffn_gate.weight", {344, 128}},
        {"ffn_up.weight", {344, 128}},
        {"ffn_down.weight", {128, 344}},
        {"attn_norm.weight", {128}},
        {"ffn_norm.weight", {128}}}},
      {"chatglm-random.gguf", "chatglm", 4, 2, 2 + 4 * 7,
       {{"attn_qkv.weight", {256, 128}},  // Q 128 + K 64 + V 64 rows
        {"attn_qkv.bias", {256}},
        {"attn_output.weight", {128, 128}},
        {"ffn_up.weight", {688, 128}},  // gate rows then up rows
        {"ffn_down.weight", {128, 344}},
        {"attn_norm.weight", {128}},
        {"ffn_norm.weight", {128}}}},
      {"glm4-random.gguf", "glm4", 4, 2, 2 + 4 * 13,
       {{"attn_q.weight", {128, 128}},
        {"attn_q.bias", {128}},
        {"attn_k.weight", {64, 128}},
        {"attn_k.bias", {64}},
        {"attn_v.weight", {64, 128}},
        {"attn_v.bias", {64}},
        {"attn_output.weight", {128, 128}},
        {"ffn_up.weight", {688, 128}},
        {"ffn_down.weight", {128, 344}},
        {"attn_norm.weight", {128}},
        {"ffn_norm.weight", {128}},
        {"post_attention_norm.weight", {128}},
        {"post_ffw_norm.weight", {128}}}},
  };
  return cases;
}

TEST(GgufSharedData, ArchitectureModelsMatchTheReadme) {
  for (const auto& c : arch_cases()) {
    SCOPED_TRACE(c.file);
    LOOM_DATA(path, std::string("models/arch/") + c.file);
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->version(), 3u);
    const std::string arch = f->metadata().get_string("general.architecture");
    EXPECT_EQ(arch, c.arch);
    EXPECT_EQ(f->metadata().get_int(arch + ".block_count"), 4);
    EXPECT_EQ(f->metadata().get_int(arch + ".embedding_length"), 128);
    EXPECT_EQ(f->metadata().get_int(arch + ".feed_forward_length"), 344);
    EXPECT_EQ(f->metadata().get_int(arch + ".context_length"), 512);
    EXPECT_EQ(f->metadata().get_int(arch + ".attention.head_count"), c.heads);
    EXPECT_EQ(f->metadata().get_int(arch + ".attention.head_count_kv"), c.kv_heads);
    EXPECT_EQ(f->metadata().at("tokenizer.ggml.tokens").size(), 32000u);
    EXPECT_EQ(f->tensors().size(), c.n_tensors);

    const GgufTensor* emb = f->find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->shape, (Shape{32000, 128}));
    EXPECT_EQ(emb->nbytes, 32000u * 128u * 4u);
    EXPECT_EQ(f->find_tensor("output.weight"), nullptr);  // tied
    ASSERT_NE(f->find_tensor("output_norm.weight"), nullptr);
    EXPECT_EQ(f->find_tensor("output_norm.weight")->shape, Shape{128});

    for (int layer = 0; layer < 4; ++layer) {
      for (const auto& [suffix, shape] : c.layer0) {
        const std::string name = "blk." + std::to_string(layer) + "." + suffix;
        const GgufTensor* t = f->find_tensor(name);
        ASSERT_NE(t, nullptr) << name;
        EXPECT_EQ(t->shape, shape) << name << " is " << t->shape.str();
      }
    }
    const auto size = std::filesystem::file_size(path);
    const std::byte* base = f->mapping()->data();
    for (const auto& t : f->tensors()) {
      EXPECT_EQ(t.ggml_type, 0u) << t.name;  // F32
      ASSERT_TRUE(t.dtype.has_value());
      EXPECT_EQ(*t.dtype, DType::F32);
      EXPECT_EQ(t.nbytes, uint64_t(t.shape.numel()) * 4) << t.name;
      EXPECT_EQ(size_t(t.data - base) % f->alignment(), 0u) << t.name;
      EXPECT_LE(size_t(t.data - base) + t.nbytes, size) << t.name;
    }
  }
}

TEST(GgufSharedData, LlamaAttentionDetails) {
  LOOM_DATA(path, "models/arch/llama-random.gguf");
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->metadata().get_int("llama.attention.key_length"), 32);
  EXPECT_EQ(f->metadata().get_float("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(f->metadata().get_int("llama.rope.dimension_count"), 32);
}

}  // namespace
