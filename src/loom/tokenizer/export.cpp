#include "loom/tokenizer/export.h"

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/tokenizer/bpe.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::tokenizer {

namespace {

bool is_byte_piece(const std::string& p) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && hex(p[3]) && hex(p[4]) && p[5] == '>';
}

}  // namespace

std::vector<std::pair<std::string, format::GgufValue>> llama2c_gguf_metadata(const format::Llama2cVocab& vocab) {
  using format::GgufValue;
  const size_t n = vocab.pieces.size();
  LOOM_CHECK(n >= 3 && vocab.scores.size() == n, "[tokenizer] a llama2.c vocabulary needs <unk>, <s>, </s> first");
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = vocab.pieces[i];
    if (i == 0) {
      tokens[i] = "<unk>";
      types[i] = int32_t(TokenType::Unknown);
    } else if (i == 1 || i == 2) {
      tokens[i] = i == 1 ? "<s>" : "</s>";  // llama2.c stores them as "\n<s>\n" for printing
      types[i] = int32_t(TokenType::Control);
    } else if (is_byte_piece(p)) {
      tokens[i] = p;
      types[i] = int32_t(TokenType::Byte);
    } else {
      std::string t;
      for (char c : p) t += c == ' ' ? "\xe2\x96\x81" : std::string(1, c);  // ' ' -> U+2581
      tokens[i] = std::move(t);
      types[i] = int32_t(TokenType::Normal);
    }
  }
  return {
      {"tokenizer.ggml.model", GgufValue::make_string("llama")},
      {"tokenizer.ggml.tokens", GgufValue::make_string_array(std::move(tokens))},
      {"tokenizer.ggml.scores", GgufValue::make_float32_array(vocab.scores)},
      {"tokenizer.ggml.token_type", GgufValue::make_int32_array(std::move(types))},
      {"tokenizer.ggml.unknown_token_id", GgufValue::make_uint32(0)},
      {"tokenizer.ggml.bos_token_id", GgufValue::make_uint32(1)},
      {"tokenizer.ggml.eos_token_id", GgufValue::make_uint32(2)},
      {"tokenizer.ggml.add_bos_token", GgufValue::make_bool(true)},
      {"tokenizer.ggml.add_space_prefix", GgufValue::make_bool(true)},
  };
}

std::vector<std::pair<std::string, format::GgufValue>> bpe_gguf_metadata(const Tokenizer& tok) {
  using format::GgufValue;
  const auto* bpe = dynamic_cast<const BpeTokenizer*>(&tok);
  LOOM_CHECK(bpe && !bpe->merges_from_ranks(),
             "[tokenizer] only byte-level BPE tokenizers with a merge list (tokenizer.json, vocab.json + merges.txt) "
             "can be written as a GGUF \"gpt2\" tokenizer");
  const BpeOptions& o = bpe->options();
  // The GGUF name of the pre-tokenizer: the family whose rules are these.
  std::string pre;
  for (const char* name : {"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "deepseek-v3", "starcoder"}) {
    const PreTokenizerSpec s = pre_tokenizer_spec(name);
    if (s.patterns == o.pre.patterns && s.nfc == o.pre.nfc && s.ignore_merges == o.pre.ignore_merges) {
      pre = name;
      break;
    }
  }
  LOOM_CHECK(!pre.empty(),
             "[tokenizer] this tokenizer's pre-tokenizer (regular expressions {}) is none that a GGUF "
             "tokenizer.ggml.pre name stands for",
             fmt::join(o.pre.patterns, " | "));
  LOOM_CHECK(o.bos_tokens.size() <= 1, "[tokenizer] a prompt prefix of {} tokens cannot be written as a GGUF BOS",
             o.bos_tokens.size());
  const auto n = static_cast<size_t>(tok.vocab_size());
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n);
  for (size_t i = 0; i < n; ++i) {
    tokens[i] = tok.piece(static_cast<int32_t>(i));
    types[i] = static_cast<int32_t>(tok.type(static_cast<int32_t>(i)));
  }
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"tokenizer.ggml.model", GgufValue::make_string("gpt2")},
      {"tokenizer.ggml.pre", GgufValue::make_string(pre)},
      {"tokenizer.ggml.tokens", GgufValue::make_string_array(std::move(tokens))},
      {"tokenizer.ggml.token_type", GgufValue::make_int32_array(std::move(types))},
      {"tokenizer.ggml.merges", GgufValue::make_string_array(bpe->merge_lines())},
      {"tokenizer.ggml.add_bos_token", GgufValue::make_bool(tok.default_add_bos())},
      {"tokenizer.ggml.add_eos_token", GgufValue::make_bool(tok.default_add_eos())},
  };
  if (tok.bos() >= 0) kv.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::make_uint32(uint32_t(tok.bos())));
  if (tok.eos() >= 0) kv.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::make_uint32(uint32_t(tok.eos())));
  return kv;
}

}  // namespace loom::tokenizer
