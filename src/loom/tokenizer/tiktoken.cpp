#include "loom/tokenizer/tiktoken.h"

#include <cstdint>

#include "loom/core/error.h"

namespace loom::tokenizer {

namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with '=' padding (RFC 4648 §4); false if malformed.
bool decode_base64(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return false;  // data after padding
      v[k] = base64_value(c);
      if (v[k] < 0) return false;
    }
    const uint32_t word = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    out.push_back(static_cast<char>(word >> 16));
    if (pad < 2) out.push_back(static_cast<char>((word >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(word & 0xFF));
  }
  return true;
}

}  // namespace

std::vector<std::string> parse_tiktoken(std::string_view text, const std::string& source) {
  // Count the lines first: ranks must fit below it, which bounds every
  // allocation by the file's size.
  size_t lines = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos && !(end == pos + 1 && text[pos] == '\r')) ++lines;
    pos = end + 1;
  }
  LOOM_CHECK(lines > 0, "[tokenizer] {}: the tiktoken file has no tokens", source);
  std::vector<std::string> tokens(lines);
  std::vector<bool> seen(lines, false);
  size_t line_no = 0;
  std::string bytes;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    LOOM_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size(),
               "[tokenizer] {}: line {} of the tiktoken file is not 'BASE64 RANK'", source, line_no);
    LOOM_CHECK(decode_base64(line.substr(0, space), bytes),
               "[tokenizer] {}: line {} of the tiktoken file: '{}' is not base64", source, line_no,
               line.substr(0, std::min<size_t>(space, 40)));
    uint64_t rank = 0;
    for (char c : line.substr(space + 1)) {
      LOOM_CHECK(c >= '0' && c <= '9' && rank < lines,
                 "[tokenizer] {}: line {} of the tiktoken file: the rank is not a number below the token count {}",
                 source, line_no, lines);
      rank = rank * 10 + static_cast<uint64_t>(c - '0');
    }
    LOOM_CHECK(rank < lines, "[tokenizer] {}: line {}: rank {} is not below the token count {}; ranks must be 0..{}",
               source, line_no, rank, lines, lines - 1);
    LOOM_CHECK(!seen[rank], "[tokenizer] {}: line {}: rank {} appears twice", source, line_no, rank);
    seen[rank] = true;
    tokens[rank] = bytes;
  }
  return tokens;
}

bool looks_like_tiktoken(std::string_view text) {
  const size_t end = std::min(text.find('\n'), text.size());
  const std::string_view line = text.substr(0, end);
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 >= line.size()) return false;
  for (char c : line.substr(0, space))
    if (base64_value(c) < 0 && c != '=') return false;
  for (char c : line.substr(space + 1))
    if ((c < '0' || c > '9') && c != '\r') return false;
  return true;
}

}  // namespace loom::tokenizer
