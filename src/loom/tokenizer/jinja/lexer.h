// The Jinja lexer: template source -> text and tag tokens, with Jinja2's
// whitespace control applied to the text as Hugging Face configures it
// (trim_blocks and lstrip_blocks on, keep_trailing_newline off): `{%-`/`-%}`
// strip all whitespace on that side, a block tag eats the newline after it,
// and spaces before a block tag alone on its line are dropped.
//
//   std::vector<Token> t = lex("{% if x -%}\n  hi{% endif %}", {}, "example");
//   // BlockBegin Name(if) Name(x) BlockEnd Text("hi") BlockBegin Name(endif) BlockEnd Eof
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::tokenizer::jinja {

// Where something is in the template (1-based; columns count characters).
struct Pos {
  int line = 1;
  int column = 1;
};

// Throws the loom::Error for a problem at `pos` of template `name`.
[[noreturn]] void fail_at(std::string_view name, Pos pos, const std::string& message);

enum class TokenType { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  TokenType type = TokenType::Eof;
  std::string text;  // Text: the data; Name: the name; String: the unescaped value; Op: the operator
  int64_t int_value = 0;
  double float_value = 0;
  Pos pos;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

std::vector<Token> lex(std::string_view source, const LexOptions& options, std::string_view name);

}  // namespace loom::tokenizer::jinja
