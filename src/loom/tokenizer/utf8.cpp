#include "loom/tokenizer/utf8.h"

#include <cstdint>

namespace loom::tokenizer::utf8 {

namespace {

struct Lead {
  size_t length;   // 0: not a lead byte
  uint8_t lo, hi;  // allowed range of the second byte (Unicode Table 3-7)
};

Lead lead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};  // no overlong 3-byte forms
  if (b == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};  // no overlong 4-byte forms
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
  return {0, 0, 0};
}

// Number of bytes from s[i] that agree with a well-formed character, and the
// length that character needs.
std::pair<size_t, size_t> match(std::string_view s, size_t i) {
  const Lead l = lead(static_cast<uint8_t>(s[i]));
  if (l.length <= 1) return {l.length, l.length};
  size_t n = 1;
  while (n < l.length && i + n < s.size()) {
    const auto b = static_cast<uint8_t>(s[i + n]);
    const uint8_t lo = n == 1 ? l.lo : 0x80;
    const uint8_t hi = n == 1 ? l.hi : 0xBF;
    if (b < lo || b > hi) break;
    ++n;
  }
  return {n, l.length};
}

}  // namespace

size_t char_length(std::string_view s, size_t i) {
  const auto [matched, needed] = match(s, i);
  return matched == needed ? needed : 0;
}

size_t maximal_subpart(std::string_view s, size_t i) {
  const size_t matched = match(s, i).first;
  return matched == 0 ? 1 : matched;
}

bool is_truncated(std::string_view s, size_t i) {
  const auto [matched, needed] = match(s, i);
  return matched > 0 && matched < needed && i + matched == s.size();
}

}  // namespace loom::tokenizer::utf8
