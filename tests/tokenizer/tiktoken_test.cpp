// tiktoken rank files: the parser on hand-written lines (base64 worked out
// by hand: "IQ==" is 0x21 '!', "IGE=" is 0x20 0x61 " a", "aGVsbG8=" is
// "hello"), the Llama 3 and GLM-4 files with their families' special tokens,
// and clear errors for corrupt files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "loom/core/error.h"
#include "loom/tokenizer/tiktoken.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"
#include "vocab_cases.h"

namespace loom::tokenizer {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

TEST(Tiktoken, ParsesLinesByHand) {
  const auto t = parse_tiktoken("aGVsbG8= 2\nIQ== 0\r\nIGE= 1\n\n", "hand.tiktoken");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0], "!");
  EXPECT_EQ(t[1], " a");
  EXPECT_EQ(t[2], "hello");
  EXPECT_TRUE(looks_like_tiktoken("IQ== 0\nIg== 1\n"));
  EXPECT_FALSE(looks_like_tiktoken("{\"model\": 1}"));
  EXPECT_FALSE(looks_like_tiktoken(std::string("\x0A\x05\x0A\x03<s>", 7)));
}

void expect_error(const std::string& text, const std::string& needle) {
  try {
    parse_tiktoken(text, "bad.tiktoken");
    ADD_FAILURE() << "expected an error for '" << text << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[tokenizer] bad.tiktoken: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Tiktoken, CorruptFilesGiveClearErrors) {
  expect_error("", "no tokens");
  expect_error("IQ==\n", "line 1");                   // no rank
  expect_error("IQ== 0\nI!== 1\n", "line 2");         // not base64
  expect_error("IQ== 0\nIg= 1\n", "not base64");      // bad length
  expect_error("IQ== 0\nIg== 0\n", "appears twice");
  expect_error("IQ== 0\nIg== 7\n", "rank");           // a gap: rank beyond the count
  expect_error("IQ== 0\nIg== 99999999999999999999\n", "rank");
  expect_error("IQ== x\n", "rank");
}

TEST(Tiktoken, Llama3Specials) {
  LOOM_DATA(path, "tokenizers/llama3/tokenizer.model");
  auto tok = load(path);
  // Meta's tokenizer.py: 128000 ranks, then 256 specials.
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(tok->piece(128000), "<|begin_of_text|>");
  EXPECT_EQ(tok->piece(128001), "<|end_of_text|>");
  EXPECT_EQ(tok->piece(128002), "<|reserved_special_token_0|>");
  EXPECT_EQ(tok->piece(128006), "<|start_header_id|>");
  EXPECT_EQ(tok->piece(128007), "<|end_header_id|>");
  EXPECT_EQ(tok->piece(128008), "<|reserved_special_token_4|>");
  EXPECT_EQ(tok->piece(128009), "<|eot_id|>");
  EXPECT_EQ(tok->piece(128010), "<|reserved_special_token_5|>");
  EXPECT_EQ(tok->piece(128255), "<|reserved_special_token_250|>");
  EXPECT_EQ(tok->bos(), 128000);
  EXPECT_EQ(tok->eos(), 128001);
  EXPECT_TRUE(tok->default_add_bos());
  EXPECT_TRUE(tok->is_eog(128009));
  EXPECT_TRUE(tok->is_eog(128001));
  EXPECT_FALSE(tok->is_eog(128006));
  // Specials only on request; as text they are ordinary tokens.
  EXPECT_EQ(tok->encode("<|eot_id|>", {.parse_special = true}), Ids{128009});
  EXPECT_GT(tok->encode("<|eot_id|>").size(), 1u);
  // 9906 is "Hello" (llama-bpe vectors).
  EXPECT_EQ(tok->encode("Hello", {.add_bos = true}), (Ids{128000, 9906}));
  EXPECT_EQ(tok->decode(Ids{128000, 9906}), "Hello");
  EXPECT_EQ(tok->decode(Ids{128000, 9906}, /*special=*/true), "<|begin_of_text|>Hello");
}

TEST(Tiktoken, Glm4Specials) {
  LOOM_DATA(path, "tokenizers/glm4/tokenizer.model");
  auto tok = load(fs::path(path).parent_path().string());
  // tokenizer_config.json: 151329 ranks, then the specials 151329..151342.
  EXPECT_EQ(tok->vocab_size(), 151343);
  EXPECT_EQ(tok->piece(151329), "<|endoftext|>");
  EXPECT_EQ(tok->piece(151331), "[gMASK]");
  EXPECT_EQ(tok->piece(151333), "<sop>");
  EXPECT_EQ(tok->piece(151336), "<|user|>");
  EXPECT_EQ(tok->piece(151337), "<|assistant|>");
  EXPECT_EQ(tok->eos(), 151329);
  EXPECT_FALSE(tok->default_add_bos());
  EXPECT_EQ(tok->bos_tokens(), (Ids{151331, 151333}));
  // config.json: eos_token_id [151329, 151336, 151338].
  for (int32_t id : {151329, 151336, 151338}) EXPECT_TRUE(tok->is_eog(id)) << id;
  EXPECT_FALSE(tok->is_eog(151337));
  EXPECT_EQ(tok->encode("[gMASK]<sop><|user|>", {.parse_special = true}), (Ids{151331, 151333, 151336}));

  // The file alone (no config beside it) gets the same specials.
  const std::string dir = loom::test::scratch_dir("glm4_alone");
  fs::copy_file(path, dir + "/tokenizer.model", fs::copy_options::overwrite_existing);
  auto alone = load(dir + "/tokenizer.model");
  EXPECT_EQ(alone->vocab_size(), 151343);
  EXPECT_EQ(alone->piece(151336), "<|user|>");
  EXPECT_EQ(alone->bos_tokens(), (Ids{151331, 151333}));
}

}  // namespace
}  // namespace loom::tokenizer
