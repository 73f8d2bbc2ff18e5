// tiktoken rank files (Llama 3 and GLM-4 `tokenizer.model`): one token per
// line, "BASE64 RANK", the rank being the token id and its merge priority.
// Untrusted input: a truncated or corrupt file gives a loom::Error naming
// the file and line, never a crash.
//
//   std::vector<std::string> tokens = parse_tiktoken(text, "tokenizer.model");
//   tokens[0] == "!";   // rank 0
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace loom::tokenizer {

// The token bytes by rank. Ranks must be 0..n-1, each once.
std::vector<std::string> parse_tiktoken(std::string_view text, const std::string& source);

// True if `text` starts with a line of the form "BASE64 DIGITS".
bool looks_like_tiktoken(std::string_view text);

}  // namespace loom::tokenizer
