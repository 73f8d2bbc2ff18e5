// The Jinja parser: tokens -> syntax tree, for the subset of Jinja2 that chat
// templates use (if/for/set/macro/filter blocks, break/continue, the full
// expression grammar with Jinja2's precedence). Anything else is rejected
// with a message naming the line and column.
//
//   Body program = parse(lex(source, {}, "chatml"), "chatml");
#pragma once

#include <string_view>
#include <vector>

#include "loom/tokenizer/jinja/ast.h"

namespace loom::tokenizer::jinja {

// Deeper nesting than this (blocks inside blocks, brackets inside brackets)
// is refused rather than risking the stack.
inline constexpr int kMaxParseDepth = 200;

Body parse(const std::vector<Token>& tokens, std::string_view name);

}  // namespace loom::tokenizer::jinja
