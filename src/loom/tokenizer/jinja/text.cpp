#include "loom/tokenizer/jinja/text.h"

#include <fmt/format.h>

#include <algorithm>

namespace loom::tokenizer::jinja::text {

namespace {

struct Char {
  uint32_t cp;  // 0xFFFFFFFF for a byte that is not valid UTF-8
  size_t len;
};

// Decodes the character at s[i]; an invalid byte is a character of its own.
Char decode(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {b, 1};
  size_t n = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return {0xFFFFFFFF, 1};
  uint32_t cp = b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return {0xFFFFFFFF, 1};
    cp = (cp << 6) | (c & 0x3F);
  }
  const bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
  if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0xFFFFFFFF, 1};
  return {cp, n};
}

// Python's str.isspace() set.
bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool ascii_lower(char c) { return c >= 'a' && c <= 'z'; }
bool ascii_upper(char c) { return c >= 'A' && c <= 'Z'; }
char to_upper(char c) { return ascii_lower(c) ? char(c - 32) : c; }
char to_lower(char c) { return ascii_upper(c) ? char(c + 32) : c; }

// A character of `set` (by code point; invalid bytes match themselves).
bool in_set(std::string_view s, size_t i, size_t len, std::string_view set) {
  const std::string_view ch = s.substr(i, len);
  for (size_t j = 0; j < set.size();) {
    const size_t n = decode(set, j).len;
    if (set.substr(j, n) == ch) return true;
    j += n;
  }
  return false;
}

}  // namespace

std::vector<size_t> char_starts(std::string_view s) {
  std::vector<size_t> out;
  out.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); i += decode(s, i).len) out.push_back(i);
  out.push_back(s.size());
  return out;
}

size_t char_count(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += decode(s, i).len) ++n;
  return n;
}

std::vector<std::string> chars(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = decode(s, i).len;
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string strip(std::string_view s, const std::optional<std::string>& set, bool left, bool right) {
  auto strippable = [&](size_t i, const Char& c) { return set ? in_set(s, i, c.len, *set) : is_space(c.cp); };
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      const Char c = decode(s, begin);
      if (!strippable(begin, c)) break;
      begin += c.len;
    }
  }
  if (right) {
    // Walk forward remembering where the trailing run of strippable characters starts.
    size_t run = end;
    for (size_t i = begin; i < end;) {
      const Char c = decode(s, i);
      if (strippable(i, c)) {
        if (run == end) run = i;
      } else {
        run = end;
      }
      i += c.len;
    }
    end = run;
  }
  return std::string(s.substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                               bool from_right) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) throw std::invalid_argument("empty separator");
    if (!from_right) {
      size_t pos = 0;
      for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
        const size_t at = s.find(*sep, pos);
        if (at == std::string_view::npos) break;
        out.emplace_back(s.substr(pos, at - pos));
        pos = at + sep->size();
      }
      out.emplace_back(s.substr(pos));
    } else {
      size_t end = s.size();
      for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
        if (end < sep->size()) break;
        const size_t at = s.rfind(*sep, end - sep->size());
        if (at == std::string_view::npos) break;
        out.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
        end = at;
      }
      out.emplace_back(s.substr(0, end));
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  // Whitespace runs; with maxsplit, the rest (left-stripped) is the last part.
  std::vector<std::pair<size_t, size_t>> words;  // byte ranges
  for (size_t i = 0; i < s.size();) {
    Char c = decode(s, i);
    if (is_space(c.cp)) {
      i += c.len;
      continue;
    }
    const size_t begin = i;
    while (i < s.size() && !is_space((c = decode(s, i)).cp)) i += c.len;
    words.emplace_back(begin, i);
  }
  if (maxsplit < 0 || size_t(maxsplit) >= words.size()) {
    for (auto [b, e] : words) out.emplace_back(s.substr(b, e - b));
    return out;
  }
  if (!from_right) {
    for (size_t k = 0; k < size_t(maxsplit); ++k) out.emplace_back(s.substr(words[k].first, words[k].second - words[k].first));
    out.push_back(strip(s.substr(words[size_t(maxsplit)].first), std::nullopt, false, true));
  } else {
    const size_t first = words.size() - size_t(maxsplit);
    out.push_back(strip(s.substr(0, words[first - 1].second), std::nullopt, true, false));
    for (size_t k = first; k < words.size(); ++k) out.emplace_back(s.substr(words[k].first, words[k].second - words[k].first));
  }
  return out;
}

std::vector<std::string> splitlines(std::string_view s) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t i = 0; i < s.size();) {
    const Char c = decode(s, i);
    const bool nl = c.cp == '\n' || c.cp == '\r' || c.cp == 0x0B || c.cp == 0x0C || c.cp == 0x1C || c.cp == 0x1D ||
                    c.cp == 0x1E || c.cp == 0x85 || c.cp == 0x2028 || c.cp == 0x2029;
    if (!nl) {
      i += c.len;
      continue;
    }
    out.emplace_back(s.substr(begin, i - begin));
    i += c.len;
    if (c.cp == '\r' && i < s.size() && s[i] == '\n') ++i;
    begin = i;
  }
  if (begin < s.size()) out.emplace_back(s.substr(begin));
  return out;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every character and at the end.
    int64_t n = 0;
    for (const std::string& c : chars(s)) {
      if (count < 0 || n < count) out.append(to), ++n;
      out += c;
    }
    if (count < 0 || n < count) out.append(to);
    return out;
  }
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    const size_t at = s.find(from, pos);
    if (at == std::string_view::npos) break;
    out.append(s.substr(pos, at - pos)).append(to);
    pos = at + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

int64_t find(std::string_view s, std::string_view needle) {
  const size_t at = s.find(needle);
  return at == std::string_view::npos ? -1 : int64_t(char_count(s.substr(0, at)));
}

int64_t count(std::string_view s, std::string_view needle) {
  if (needle.empty()) return int64_t(char_count(s)) + 1;
  int64_t n = 0;
  for (size_t pos = s.find(needle); pos != std::string_view::npos; pos = s.find(needle, pos + needle.size())) ++n;
  return n;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_upper(c);
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = to_upper(out[0]);
  return out;
}

std::string py_title(std::string_view s) {
  // A cased character right after another cased one is lowered, else raised.
  // Non-ASCII bytes count as cased letters left as they are, so "héllo"
  // becomes "Héllo" as in Python.
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    const bool cased = ascii_lower(c) || ascii_upper(c) || static_cast<unsigned char>(c) >= 0x80;
    if (ascii_lower(c) || ascii_upper(c)) c = prev_cased ? to_lower(c) : to_upper(c);
    prev_cased = cased;
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  // re.split(r"([-\s({\[<]+)") then item[0].upper() + item[1:].lower() per piece.
  auto separator = [](char c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || c == ' ' || c == '\t' || c == '\n' ||
           c == '\r' || c == '\f' || c == '\v';
  };
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    const bool sep = separator(s[i]);
    while (j < s.size() && separator(s[j]) == sep) ++j;
    std::string piece = lower(s.substr(i, j - i));
    piece[0] = to_upper(piece[0]);
    out += piece;
    i = j;
  }
  return out;
}

bool is_lower(std::string_view s) {
  bool cased = false;
  for (char c : s) {
    if (ascii_upper(c)) return false;
    cased = cased || ascii_lower(c);
  }
  return cased;
}

bool is_upper(std::string_view s) {
  bool cased = false;
  for (char c : s) {
    if (ascii_lower(c)) return false;
    cased = cased || ascii_upper(c);
  }
  return cased;
}

std::string repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    const Char c = decode(s, i);
    const std::string_view raw = s.substr(i, c.len);
    i += c.len;
    if (c.cp == 0xFFFFFFFF) {  // Python would hold a surrogate escape here; show the byte
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(raw[0]));
    } else if (c.cp == '\\' || c.cp == uint32_t(quote)) {
      out += '\\';
      out += char(c.cp);
    } else if (c.cp == '\n') {
      out += "\\n";
    } else if (c.cp == '\r') {
      out += "\\r";
    } else if (c.cp == '\t') {
      out += "\\t";
    } else if (c.cp < 0x20 || c.cp == 0x7F || (c.cp >= 0x80 && c.cp < 0xA0)) {
      out += fmt::format("\\x{:02x}", c.cp);
    } else {
      out += raw;
    }
  }
  out += quote;
  return out;
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace loom::tokenizer::jinja::text
