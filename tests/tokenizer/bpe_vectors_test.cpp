// Byte-level BPE against the reference ids of each family: llama.cpp's test
// vectors (made with the families' Hugging Face tokenizers) for GPT-2 and
// DeepSeek LLM from their GGUFs, Llama 3 from Meta's tiktoken file, Qwen2
// from vocab.json + merges.txt (and the same files as a tokenizer.json), and
// chatglm.cpp's GLM-4 vectors from GLM-4's tiktoken file.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"
#include "vocab_cases.h"

namespace loom::tokenizer {
namespace {

namespace fs = std::filesystem;
using testing::expect_vectors;
using testing::read_all;

std::unique_ptr<Tokenizer> gguf_tokenizer(const std::string& path) {
  return from_gguf(format::GgufFile::open(path)->metadata());
}

TEST(BpeVectors, Gpt2FromGguf) {
  LOOM_DATA(path, "vocab/ggml-vocab-gpt-2.gguf");
  expect_vectors(*gguf_tokenizer(path), path, 46);
}

TEST(BpeVectors, DeepseekLlmFromGguf) {
  LOOM_DATA(path, "vocab/ggml-vocab-deepseek-llm.gguf");
  expect_vectors(*gguf_tokenizer(path), path, 46);
}

TEST(BpeVectors, Llama3FromTiktoken) {
  LOOM_DATA(model, "tokenizers/llama3/tokenizer.model");
  LOOM_DATA(base, "vocab/ggml-vocab-llama-bpe.gguf.inp");
  auto tok = load(fs::path(model).parent_path().string());
  expect_vectors(*tok, base.substr(0, base.size() - 4), 46);
}

// Qwen2 normalises to NFC, so decoding returns the NFC form of the input;
// the vectors are NFC already except where noted by the round trip below.
TEST(BpeVectors, Qwen2FromVocabAndMerges) {
  LOOM_DATA(vocab, "tokenizers/qwen2/vocab.json");
  LOOM_DATA(base, "vocab/ggml-vocab-qwen2.gguf.inp");
  auto tok = load(fs::path(vocab).parent_path().string());
  expect_vectors(*tok, base.substr(0, base.size() - 4), 46);
}

// The same vocabulary and merges written as a Hugging Face tokenizer.json
// (Qwen2's layout: NFC normaliser, Split with its regex, ByteLevel without
// regex) give the same ids.
TEST(BpeVectors, Qwen2FromTokenizerJson) {
  LOOM_DATA(vocab, "tokenizers/qwen2/vocab.json");
  LOOM_DATA(merges_path, "tokenizers/qwen2/merges.txt");
  LOOM_DATA(config, "tokenizers/qwen2/tokenizer_config.json");
  LOOM_DATA(base, "vocab/ggml-vocab-qwen2.gguf.inp");
  nlohmann::json merges = nlohmann::json::array();
  std::istringstream lines(read_all(merges_path));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    merges.push_back(line);
  }
  nlohmann::json j;
  j["model"] = {{"type", "BPE"}, {"vocab", nlohmann::json::parse(read_all(vocab))}, {"merges", merges}};
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  j["added_tokens"] = {{{"id", 151643}, {"content", "<|endoftext|>"}, {"special", true}},
                       {{"id", 151644}, {"content", "<|im_start|>"}, {"special", true}},
                       {{"id", 151645}, {"content", "<|im_end|>"}, {"special", true}}};
  const std::string dir = loom::test::scratch_dir("qwen2_tokenizer_json");
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  fs::copy_file(config, dir + "/tokenizer_config.json", fs::copy_options::overwrite_existing);
  auto tok = load(dir);
  expect_vectors(*tok, base.substr(0, base.size() - 4), 46);
  EXPECT_EQ(tok->vocab_size(), 151646);
  EXPECT_EQ(tok->eos(), 151643);
}

TEST(BpeVectors, Glm4FromTiktoken) {
  LOOM_DATA(model, "tokenizers/glm4/tokenizer.model");
  LOOM_DATA(vectors, "tokenizers/glm4/glm4_encode_ordinary_vectors.json");
  auto tok = load(fs::path(model).parent_path().string());
  const auto j = nlohmann::json::parse(read_all(vectors));
  ASSERT_EQ(j["cases"].size(), 2u);
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    const auto got = tok->encode(text);
    EXPECT_EQ(got, expected) << text << "\n  expected " << testing::show(expected) << "\n  got      "
                             << testing::show(got);
    EXPECT_EQ(tok->decode(expected), text);
  }
}

}  // namespace
}  // namespace loom::tokenizer
