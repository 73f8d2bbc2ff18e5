// UTF-8 helpers shared by the tokenizer algorithms and the stream decoder.
// Validation follows RFC 3629 (no overlong forms, no surrogates, nothing above
// U+10FFFF), so "a character" always means a well-formed one.
//
//   size_t n = utf8::char_length(text, i);   // 0: no valid character starts at i
#pragma once

#include <cstddef>
#include <string_view>

namespace loom::tokenizer::utf8 {

// Length (1-4) of the well-formed character starting at s[i], or 0 if the
// bytes there are not one (a stray continuation byte, a truncated or overlong
// sequence, a surrogate, ...).
size_t char_length(std::string_view s, size_t i);

// How many bytes at s[i..] form the longest prefix of some well-formed
// character (the "maximal subpart" of Unicode §3.9). Equals char_length() for a
// complete character; 1..3 for a truncated one; 1 for a byte that can start
// nothing (it is then replaced on its own).
size_t maximal_subpart(std::string_view s, size_t i);

// True if s[i..] (to the end) is a proper prefix of a well-formed character:
// more bytes could still complete it.
bool is_truncated(std::string_view s, size_t i);

// U+FFFD REPLACEMENT CHARACTER.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace loom::tokenizer::utf8
