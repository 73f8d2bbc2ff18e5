// tokenizer::load: files and folders recognised by their content, and clear
// errors for what it cannot read.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "loom/core/error.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"

namespace loom::tokenizer {
namespace {

namespace fs = std::filesystem;

void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    load(path);
    ADD_FAILURE() << path << ": expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[tokenizer] ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Load, RecognisesEachFormat) {
  LOOM_DATA(gguf, "vocab/ggml-vocab-gpt-2.gguf");
  LOOM_DATA(tok512, "models/tok512.bin");
  EXPECT_EQ(load(gguf)->vocab_size(), 50257);  // the GGUF's tokenizer.ggml.tokens
  // A llama2.c tokenizer: its own entry count (512) is the vocabulary size.
  auto l2c = load(tok512);
  EXPECT_EQ(l2c->vocab_size(), 512);
  EXPECT_EQ(l2c->bos(), 1);
}

TEST(Load, ClearErrors) {
  const std::string dir = loom::test::scratch_dir("tokenizer_load");
  expect_load_error(dir + "/does-not-exist", "no such file or folder");
  const std::string empty = dir + "/empty-folder";
  fs::create_directories(empty);
  expect_load_error(empty, "no tokenizer in this folder");
  const std::string junk = dir + "/junk.bin";
  std::ofstream(junk, std::ios::binary) << "this is not a tokenizer at all";
  expect_load_error(junk, "not a tokenizer loom recognises");

  const std::string bad_json = dir + "/bad-json";
  fs::create_directories(bad_json);
  std::ofstream(bad_json + "/tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": ";
  expect_load_error(bad_json, "not valid JSON");

  const std::string unigram = dir + "/unigram";
  fs::create_directories(unigram);
  std::ofstream(unigram + "/tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})";
  expect_load_error(unigram, "model type 'Unigram' is not supported");

  const std::string bad_config = dir + "/bad-config";
  fs::create_directories(bad_config);
  LOOM_DATA(llama3, "tokenizers/llama3/tokenizer.model");
  fs::copy_file(llama3, bad_config + "/tokenizer.model", fs::copy_options::overwrite_existing);
  std::ofstream(bad_config + "/tokenizer_config.json") << R"({"added_tokens_decoder": {"x": {"content": "<a>"}}})";
  expect_load_error(bad_config, "added token id 'x'");

  const std::string no_merges = dir + "/no-merges";
  fs::create_directories(no_merges);
  std::ofstream(no_merges + "/vocab.json") << R"({"a": 0})";
  expect_load_error(no_merges + "/vocab.json", "needs merges.txt");
}

// A tiny byte-level tokenizer.json written by hand: the 256 byte pieces in
// GPT-2's spelling and order ('!'..'~' are ids 0..93, so 'a' = 0x61 - 0x21 =
// 64 and 'b' = 65), "ab" = 256 from the one merge "a b", and an added special
// token 257. So "ab" -> [256] and "ba" -> [65, 64].
TEST(Load, HandMadeTokenizerJson) {
  std::string vocab = "{";
  auto piece_of = [](int b) {
    // bytes_to_unicode: printable Latin-1 stays, the rest map to U+0100 + n.
    static std::vector<int> cp;
    if (cp.empty()) {
      int n = 0;
      for (int x = 0; x < 256; ++x) {
        const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
        cp.push_back(printable ? x : 256 + n++);
      }
    }
    const int c = cp[static_cast<size_t>(b)];
    std::string s;
    if (c < 0x80) {
      s += static_cast<char>(c);
      if (c == '"' || c == '\\') s.insert(s.begin(), '\\');
    } else {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
    return s;
  };
  // Ids in GPT-2's order: the printable bytes first, then the rest.
  std::vector<int> order;
  for (int x = 0; x < 256; ++x)
    if ((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)) order.push_back(x);
  for (int x = 0; x < 256; ++x)
    if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) order.push_back(x);
  for (size_t id = 0; id < order.size(); ++id) vocab += "\"" + piece_of(order[id]) + "\": " + std::to_string(id) + ", ";
  vocab += "\"ab\": 256}";
  const std::string json = R"({"model": {"type": "BPE", "vocab": )" + vocab +
                           R"(, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": true},
      "added_tokens": [{"id": 257, "content": "<|end|>", "special": true}]})";
  const std::string dir = loom::test::scratch_dir("tokenizer_load_json");
  std::ofstream(dir + "/tokenizer.json") << json;
  auto tok = load(dir);
  EXPECT_EQ(tok->vocab_size(), 258);
  EXPECT_EQ(tok->encode("ab"), std::vector<int32_t>{256});
  EXPECT_EQ(tok->encode("ba"), (std::vector<int32_t>{65, 64}));
  EXPECT_EQ(tok->encode("<|end|>", {.parse_special = true}), std::vector<int32_t>{257});
  EXPECT_TRUE(tok->is_eog(257));
  EXPECT_EQ(tok->decode(tok->encode(" ab\n")), " ab\n");
}

}  // namespace
}  // namespace loom::tokenizer
