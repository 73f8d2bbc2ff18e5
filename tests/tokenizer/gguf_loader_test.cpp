// from_gguf on small GGUF files written for each case: which metadata it
// reads, its defaults, and clear errors for broken vocabularies.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"

namespace loom::tokenizer {
namespace {

using format::GgufFile;
using format::GgufType;
using format::GgufValue;
using format::GgufWriter;
using Ids = std::vector<int32_t>;

const std::string kMarker = "\xE2\x96\x81";  // ▁

// <unk> <s> </s> <0x41>('A') ▁a a <|eot|> <u>
// types: 2 3 3 6 1 1 3 4
GgufWriter llama_vocab() {
  GgufWriter w;
  w.set("general.architecture", GgufValue::make_string("llama"));
  w.set("tokenizer.ggml.model", GgufValue::make_string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::make_string_array(
                                     {"<unk>", "<s>", "</s>", "<0x41>", kMarker + "a", "a", "<|eot|>", "<u>"}));
  w.set("tokenizer.ggml.scores", GgufValue::make_float32_array({0, 0, 0, 0, -1, -2, 0, 0}));
  w.set("tokenizer.ggml.token_type", GgufValue::make_int32_array({2, 3, 3, 6, 1, 1, 3, 4}));
  return w;
}

std::unique_ptr<Tokenizer> load(const GgufWriter& w, const std::string& name) {
  const std::string path = test::scratch_dir("tokenizer_gguf_loader") + "/" + name + ".gguf";
  w.write(path);
  return from_gguf(GgufFile::open(path)->metadata());
}

// Expects from_gguf to fail with a [tokenizer] message containing `needle`.
void expect_error(const GgufWriter& w, const std::string& name, const std::string& needle) {
  try {
    load(w, name);
    ADD_FAILURE() << name << ": expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << name << ": " << msg;
    EXPECT_NE(msg.find(name + ".gguf"), std::string::npos) << "the message should name the file: " << msg;
  }
}

TEST(GgufLoader, DefaultsOfALlamaVocabulary) {
  auto tok = load(llama_vocab(), "defaults");
  EXPECT_EQ(tok->vocab_size(), 8);
  EXPECT_EQ(tok->bos(), 1);  // SentencePiece defaults when the ids are not given
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->default_add_bos());
  EXPECT_FALSE(tok->default_add_eos());
  EXPECT_TRUE(tok->adds_space_prefix());
  EXPECT_EQ(tok->encode("a"), Ids{4});        // "▁a"
  EXPECT_EQ(tok->encode("aA"), (Ids{4, 3}));  // 'A' only as byte token
  EXPECT_EQ(tok->encode("<u>a"), (Ids{7, 4}));  // user-defined: always whole, prefix after it
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_FALSE(tok->is_eog(6));  // "<|eot|>" is not a known end-of-turn text
}

TEST(GgufLoader, ReadsFlagsAndSpecialIds) {
  GgufWriter w = llama_vocab();
  w.set("tokenizer.ggml.add_space_prefix", GgufValue::make_bool(false));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::make_bool(false));
  w.set("tokenizer.ggml.add_eos_token", GgufValue::make_bool(true));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::make_uint32(2));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::make_uint32(1));
  w.set("tokenizer.ggml.eot_token_id", GgufValue::make_uint32(6));
  auto tok = load(w, "flags");
  EXPECT_FALSE(tok->adds_space_prefix());
  EXPECT_EQ(tok->encode("a"), Ids{5});
  EXPECT_EQ(tok->decode(Ids{4}), " a");  // no dummy prefix to strip
  EXPECT_FALSE(tok->default_add_bos());
  EXPECT_TRUE(tok->default_add_eos());
  EXPECT_EQ(tok->bos(), 2);
  EXPECT_EQ(tok->eos(), 1);
  EXPECT_TRUE(tok->is_eog(1));
  EXPECT_TRUE(tok->is_eog(6));
  EXPECT_EQ(tok->encode("a", {.add_bos = true, .add_eos = true}), (Ids{2, 5, 1}));
}

TEST(GgufLoader, WithoutTokenTypesByteTokensAreFoundByText) {
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::make_string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::make_string_array({"<unk>", "<s>", "</s>", "<0x41>", kMarker}));
  auto tok = load(w, "no_types");
  EXPECT_EQ(tok->type(3), TokenType::Byte);
  EXPECT_EQ(tok->type(0), TokenType::Unknown);  // from the default special ids
  EXPECT_EQ(tok->type(1), TokenType::Control);
  EXPECT_EQ(tok->type(2), TokenType::Control);
  EXPECT_EQ(tok->type(4), TokenType::Normal);
  EXPECT_EQ(tok->encode("A"), (Ids{4, 3}));
  EXPECT_EQ(tok->decode(Ids{4, 3}), "A");
}

TEST(GgufLoader, BrokenVocabulariesGiveClearErrors) {
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::make_string("llama"));
    expect_error(w, "no_model", "tokenizer.ggml.model");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.model", GgufValue::make_string("gpt2"));
    expect_error(w, "gpt2_no_merges", "needs 'tokenizer.ggml.merges'");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.model", GgufValue::make_string("bert"));
    expect_error(w, "bert", "tokenizer model 'bert' is not supported yet");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.model", GgufValue::make_string("gpt2"));
    w.set("tokenizer.ggml.pre", GgufValue::make_string("no-such-family"));
    w.set("tokenizer.ggml.merges", GgufValue::make_string_array({"a a"}));
    expect_error(w, "gpt2_unknown_pre", "pre-tokenizer 'no-such-family' is not known");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.model", GgufValue::make_string("gpt2"));
    w.set("tokenizer.ggml.merges", GgufValue::make_string_array({"nospace"}));
    expect_error(w, "gpt2_bad_merge", "merge 0 ('nospace') is not of the form 'left right'");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.model", GgufValue::make_uint32(1));
    expect_error(w, "model_not_string", "tokenizer.ggml.model");
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::make_string("llama"));
    expect_error(w, "no_tokens", "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.tokens", GgufValue::make_int32_array({1, 2, 3}));
    expect_error(w, "tokens_not_strings", "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.scores", GgufValue::make_float32_array({0, 0}));
    expect_error(w, "short_scores", "tokenizer.ggml.scores");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.token_type", GgufValue::make_int32_array({2, 3, 3, 6, 1, 1, 3}));
    expect_error(w, "short_types", "tokenizer.ggml.token_type");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.token_type", GgufValue::make_int32_array({2, 3, 3, 6, 1, 9, 3, 4}));
    expect_error(w, "bad_type", "type 9");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.token_type", GgufValue::make_int32_array({2, 3, 3, 6, 6, 1, 3, 4}));
    expect_error(w, "byte_type_without_byte_text", "BYTE");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.bos_token_id", GgufValue::make_uint32(8));
    expect_error(w, "bos_out_of_range", "tokenizer.ggml.bos_token_id");
  }
  {
    GgufWriter w = llama_vocab();
    w.set("tokenizer.ggml.eos_token_id", GgufValue::make_string("2"));
    expect_error(w, "eos_not_integer", "tokenizer.ggml.eos_token_id");
  }
}

}  // namespace
}  // namespace loom::tokenizer
