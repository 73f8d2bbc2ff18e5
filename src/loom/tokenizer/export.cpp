#include "loom/tokenizer/export.h"

#include "loom/core/error.h"
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

}  // namespace loom::tokenizer
