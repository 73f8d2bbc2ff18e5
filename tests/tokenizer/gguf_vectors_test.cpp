// SentencePiece BPE from GGUF vocabularies against llama.cpp's tokenizer test
// vectors (shared/data/vocab: NAME.gguf.inp strings, NAME.gguf.out ids,
// encoded without BOS/EOS and with special-token text taken as plain text).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/metadata.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"
#include "vocab_cases.h"

namespace loom::tokenizer {
namespace {

using testing::expect_vectors;

void check_vectors(const std::string& path, size_t expected_cases) {
  auto gguf = format::GgufFile::open(path);
  auto tok = from_gguf(gguf->metadata());
  expect_vectors(*tok, path, expected_cases);
}

TEST(GgufVectors, LlamaSpm) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  check_vectors(path, 46);
}

TEST(GgufVectors, Phi3) {
  LOOM_DATA(path, "vocab/ggml-vocab-phi-3.gguf");
  check_vectors(path, 46);
}

TEST(GgufVocab, LlamaSpmMetadata) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  auto tok = from_gguf(format::GgufFile::open(path)->metadata());
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->default_add_bos());
  EXPECT_FALSE(tok->default_add_eos());
  EXPECT_TRUE(tok->adds_space_prefix());
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_FALSE(tok->is_eog(1));
  EXPECT_EQ(tok->type(0), TokenType::Unknown);
  EXPECT_EQ(tok->type(1), TokenType::Control);
  EXPECT_EQ(tok->type(3), TokenType::Byte);
  EXPECT_EQ(tok->piece(3), "<0x00>");
  // Pieces 15043 and 29871 of the Llama 2 vocabulary are "▁Hello" and "▁".
  EXPECT_EQ(tok->piece(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(tok->token_bytes(15043), " Hello");
  EXPECT_EQ(tok->token_bytes(29871), " ");
  EXPECT_EQ(tok->token_bytes(3 + 0x0A), "\n");
  EXPECT_EQ(tok->token_bytes(1), "");
  EXPECT_EQ(tok->token_bytes(1, /*special=*/true), "<s>");
  EXPECT_EQ(tok->token_bytes(0), "");
  EXPECT_THROW(tok->token_bytes(32000), Error);
  EXPECT_THROW(tok->token_bytes(-1), Error);

  // BOS/EOS on request; BOS is not text for decode.
  const auto ids = tok->encode("Hello", {.add_bos = true, .add_eos = true});
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 15043, 2}));
  EXPECT_EQ(tok->decode(ids), "Hello");
  EXPECT_EQ(tok->decode(ids, /*special=*/true), "<s>Hello</s>");
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_EQ(tok->encode("", {.add_bos = true}), std::vector<int32_t>{1});
}

TEST(GgufVocab, ParseSpecial) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  auto tok = from_gguf(format::GgufFile::open(path)->metadata());
  // As text, "<s>" is "▁<", "s", ">" (ids 529, 29879, 29958 of the Llama 2
  // vocabulary); parsed, it is BOS, and the text after it starts a new run
  // with its own dummy prefix.
  EXPECT_EQ(tok->encode("<s>"), (std::vector<int32_t>{529, 29879, 29958}));
  EXPECT_EQ(tok->encode("<s>Hello", {.parse_special = true}), (std::vector<int32_t>{1, 15043}));
  EXPECT_EQ(tok->encode("Hello</s><s>Hello", {.parse_special = true}), (std::vector<int32_t>{15043, 2, 1, 15043}));
  const auto ids = tok->encode("<s>Hello", {.parse_special = true});
  EXPECT_EQ(tok->decode(ids, /*special=*/true), "<s>Hello");
}

TEST(GgufVocab, Phi3EndOfGeneration) {
  LOOM_DATA(path, "vocab/ggml-vocab-phi-3.gguf");
  auto tok = from_gguf(format::GgufFile::open(path)->metadata());
  EXPECT_EQ(tok->vocab_size(), 32064);
  EXPECT_EQ(tok->eos(), 32000);         // <|endoftext|>
  EXPECT_TRUE(tok->is_eog(32000));
  EXPECT_TRUE(tok->is_eog(32007));      // <|end|>, found by its text
  EXPECT_FALSE(tok->is_eog(32010));     // <|user|>
  EXPECT_FALSE(tok->is_eog(1));
  EXPECT_EQ(tok->token_bytes(32007), "");
  EXPECT_EQ(tok->token_bytes(32007, true), "<|end|>");
  // Chat markup is control text: parsed with parse_special, plain otherwise.
  EXPECT_EQ(tok->encode("<|user|>", {.parse_special = true}), std::vector<int32_t>{32010});
  EXPECT_GT(tok->encode("<|user|>").size(), 1u);
  // "</s>" is a user-defined token in Phi-3: always one token, as in llama.cpp.
  EXPECT_EQ(tok->encode("</s>"), std::vector<int32_t>{2});
}

TEST(GgufVocab, OtherTokenizerModelsAreRefusedClearly) {
  // A BERT WordPiece vocabulary (tokenizer.ggml.model "bert") is not a family
  // loom targets.
  format::Metadata m("bert-vocab.gguf");
  m.set("tokenizer.ggml.model", format::GgufValue::make_string("bert"));
  try {
    from_gguf(m);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[tokenizer] ", 0), 0u) << msg;
    EXPECT_NE(msg.find("bert-vocab.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tokenizer model 'bert' is not supported yet"), std::string::npos) << msg;
  }
}

// Round trip of text the vectors do not cover, including characters that
// need byte fallback (CJK and emoji are mostly not Llama 2 pieces).
TEST(GgufVocab, DecodeInvertsEncode) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  auto tok = from_gguf(format::GgufFile::open(path)->metadata());
  const std::vector<std::string> texts = {
      "Hello, world!", " leading space", "trailing space ", "  two  spaces  ", "\ttab\nnewline\r\n",
      "日本語のテキスト", "中文：你好，世界！", "Ελληνικά и русский", "emoji 🦙🚀👍🏽 and 👨‍👩‍👧",
      "mixed 123 ½ ∑ ∞ ≠ ©", "\xF0\x9F\x98\x80\xF0\x9F\x98\x81", "a", " ", "<0x41>",
      "<s> looks special", std::string("nul\0byte", 8), "ĳ ǅ ﬁ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "e\xCC\x81 combining",
  };
  for (const auto& t : texts) {
    const auto ids = tok->encode(t);
    EXPECT_EQ(tok->decode(ids), t) << t;
    EXPECT_EQ(tok->decode(tok->encode(t, {.add_bos = true})), t) << t;
  }
}

// SentencePiece's one lossy spot: "▁" is its space marker, so a literal ▁ in
// the input is encoded as a space and decodes as one.
TEST(GgufVocab, LiteralSpaceMarkerIsASpace) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  auto tok = from_gguf(format::GgufFile::open(path)->metadata());
  EXPECT_EQ(tok->encode("a\xE2\x96\x81" "b"), tok->encode("a b"));
  EXPECT_EQ(tok->decode(tok->encode("a\xE2\x96\x81" "b")), "a b");
}

TEST(GgufVocab, InvalidUtf8GoesThroughBytes) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  auto tok = from_gguf(format::GgufFile::open(path)->metadata());
  const std::vector<std::string> texts = {
      "\xFF", "\xFE\xFF", "abc\xE6\x97", "\x80" "abc", "\xC0\xAF", "\xED\xA0\x80", "x\xF4\x90\x80\x80y",
      "\xE6\x97" "A\xE6", "ok \xF0\x9F\x98",
  };
  for (const auto& t : texts) {
    const auto ids = tok->encode(t);
    EXPECT_EQ(tok->decode(ids), t);
  }
  // A byte that starts no character is its byte token (<0xFF> is id 3 + 0xFF).
  EXPECT_EQ(tok->encode("\xFF"), (std::vector<int32_t>{29871, 3 + 0xFF}));
}

// The merge loop is O(n log n): a megabyte of one repeated character (the
// worst case for a rescanning implementation: about 10^12 steps, hours) takes
// well under a second in a release build.
TEST(GgufVocab, LongRepetitiveInputInBoundedTime) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  auto tok = from_gguf(format::GgufFile::open(path)->metadata());
  for (const std::string unit : {"a", " ", "\xE4\xB8\xAD", "\xF0\x9F\xA6\x99"}) {
    std::string text;
    while (text.size() < (1u << 20)) text += unit;
    const auto start = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 60.0) << "unit '" << unit << "'";  // generous: sanitizer builds are slow
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok->decode(ids), text);
  }
}

}  // namespace
}  // namespace loom::tokenizer
