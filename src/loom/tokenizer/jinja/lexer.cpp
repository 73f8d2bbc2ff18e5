#include "loom/tokenizer/jinja/lexer.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "loom/core/error.h"

namespace loom::tokenizer::jinja {

void fail_at(std::string_view name, Pos pos, const std::string& message) {
  fail("[tokenizer] chat template {}, line {}, column {}: {}", name, pos.line, pos.column, message);
}

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Turns byte offsets into line/column, for offsets that only grow.
class PosTracker {
 public:
  explicit PosTracker(std::string_view s) : s_(s) {}
  Pos at(size_t offset) {
    for (; off_ < offset && off_ < s_.size(); ++off_) {
      const auto c = static_cast<unsigned char>(s_[off_]);
      if (c == '\n') {
        ++pos_.line;
        pos_.column = 1;
      } else if ((c & 0xC0) != 0x80) {
        ++pos_.column;
      }
    }
    return pos_;
  }

 private:
  std::string_view s_;
  size_t off_ = 0;
  Pos pos_;
};

class Lexer {
 public:
  Lexer(std::string_view source, const LexOptions& options, std::string_view name)
      : opt_(options), name_(name), src_(normalize(source)), where_(src_) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t open = next_opener(pos_);
      if (open == std::string::npos) {
        emit_text(src_.substr(pos_), pos_);
        break;
      }
      const char kind = src_[open + 1];
      const char sign = open + 2 < src_.size() && (src_[open + 2] == '-' || src_[open + 2] == '+') ? src_[open + 2] : 0;
      std::string text = src_.substr(pos_, open - pos_);
      strip_before_tag(text, sign, kind != '{');
      emit_text(text, pos_);
      size_t p = open + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        comment(open, p);
      } else if (kind == '%' && raw_begin(p)) {
        raw(open, p);
      } else {
        tag(open, p, kind == '{');
      }
    }
    Token eof;
    eof.type = TokenType::Eof;
    eof.pos = where_.at(src_.size());
    out_.push_back(eof);
    return std::move(out_);
  }

 private:
  // Jinja2 reads \r\n and \r as \n and drops one trailing newline.
  static std::string normalize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\r') {
        out += '\n';
        if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      } else {
        out += s[i];
      }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  [[noreturn]] void error(size_t offset, const std::string& message) {
    // Positions are tracked forward only; errors may point back, so count afresh.
    PosTracker fresh(src_);
    fail_at(name_, fresh.at(offset), message);
  }

  size_t next_opener(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void emit_text(std::string text, size_t offset) {
    if (text.empty()) return;
    Token t;
    t.type = TokenType::Text;
    t.text = std::move(text);
    t.pos = where_.at(offset);
    out_.push_back(std::move(t));
  }

  void emit(TokenType type, std::string text, size_t offset) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.pos = where_.at(offset);
    out_.push_back(std::move(t));
  }

  // The text before a tag: "{%-" strips all whitespace; otherwise, for block
  // and comment tags, lstrip_blocks drops spaces between a line start and the tag.
  void strip_before_tag(std::string& text, char sign, bool block_or_comment) const {
    if (sign == '-') {
      size_t end = text.size();
      while (end > 0 && is_ws(text[end - 1])) --end;
      text.resize(end);
    } else if (sign != '+' && opt_.lstrip_blocks && block_or_comment) {
      const size_t nl = text.rfind('\n');
      const size_t line_start = nl == std::string::npos ? 0 : nl + 1;
      if (line_start > 0 || line_starting_) {
        bool only_ws = line_start < text.size();
        for (size_t i = line_start; i < text.size() && only_ws; ++i) only_ws = is_ws(text[i]);
        if (only_ws) text.resize(line_start);
      }
    }
  }

  // After a tag's closing delimiter at `p`: "-" consumed all following
  // whitespace, a block tag with trim_blocks eats one newline.
  void after_tag(size_t p, bool strip_all, bool trim_newline) {
    if (strip_all) {
      while (p < src_.size() && is_ws(src_[p])) ++p;
    } else if (trim_newline && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    line_starting_ = p > 0 && src_[p - 1] == '\n';
    pos_ = p;
  }

  void comment(size_t open, size_t p) {
    const size_t close = src_.find("#}", p);
    if (close == std::string::npos) error(open, "missing end of comment tag '#}'");
    const char sign = close > p && (src_[close - 1] == '-' || src_[close - 1] == '+') ? src_[close - 1] : 0;
    after_tag(close + 2, sign == '-', sign != '+' && opt_.trim_blocks);
  }

  // "{% raw %}" (p is after "{%" and its sign): leaves p after the tag.
  bool raw_begin(size_t& p) const {
    size_t i = p;
    while (i < src_.size() && is_ws(src_[i])) ++i;
    if (src_.compare(i, 3, "raw") != 0) return false;
    i += 3;
    while (i < src_.size() && is_ws(src_[i])) ++i;
    if (src_.compare(i, 3, "-%}") == 0) {
      i += 3;
      while (i < src_.size() && is_ws(src_[i])) ++i;
    } else if (src_.compare(i, 2, "%}") == 0) {
      i += 2;  // no trim_blocks after raw, as in Jinja2
    } else {
      return false;
    }
    p = i;
    return true;
  }

  void raw(size_t open, size_t p) {
    line_starting_ = p > 0 && src_[p - 1] == '\n';
    for (size_t at = src_.find("{%", p); at != std::string::npos; at = src_.find("{%", at + 2)) {
      size_t i = at + 2;
      const char sign = i < src_.size() && (src_[i] == '-' || src_[i] == '+') ? src_[i] : 0;
      if (sign) ++i;
      while (i < src_.size() && is_ws(src_[i])) ++i;
      if (src_.compare(i, 6, "endraw") != 0) continue;
      i += 6;
      while (i < src_.size() && is_ws(src_[i])) ++i;
      bool strip_all = false, trim = false;
      if (src_.compare(i, 3, "+%}") == 0) {
        i += 3;
      } else if (src_.compare(i, 3, "-%}") == 0) {
        i += 3, strip_all = true;
      } else if (src_.compare(i, 2, "%}") == 0) {
        i += 2, trim = opt_.trim_blocks;
      } else {
        continue;
      }
      std::string text = src_.substr(p, at - p);
      strip_before_tag(text, sign, true);
      emit_text(text, p);
      after_tag(i, strip_all, trim);
      return;
    }
    error(open, "missing '{% endraw %}' for this '{% raw %}'");
  }

  // A {{ }} or {% %} tag: its tokens up to the closing delimiter, which only
  // counts while no bracket is open (so "{{ {'a': {'b': 1}} }}" works).
  void tag(size_t open, size_t p, bool variable) {
    emit(variable ? TokenType::VarBegin : TokenType::BlockBegin, "", open);
    std::string brackets;
    for (;;) {
      if (brackets.empty() && closes(p, variable)) return;
      if (p >= src_.size())
        error(open, fmt::format("this '{}' is never closed: add '{}'", variable ? "{{" : "{%", variable ? "}}" : "%}"));
      const char c = src_[p];
      if (is_ws(c)) {
        ++p;
      } else if (is_digit(c)) {
        p = number(p);
      } else if (is_name_start(c)) {
        size_t e = p;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        emit(TokenType::Name, src_.substr(p, e - p), p);
        p = e;
      } else if (c == '\'' || c == '"') {
        p = string(p);
      } else {
        p = op(p, brackets);
      }
    }
  }

  bool closes(size_t p, bool variable) {
    const char* end = variable ? "}}" : "%}";
    if (src_.compare(p, 3, std::string("-") + end) == 0) {
      emit(variable ? TokenType::VarEnd : TokenType::BlockEnd, "", p);
      after_tag(p + 3, true, false);
      return true;
    }
    if (!variable && src_.compare(p, 3, "+%}") == 0) {
      emit(TokenType::BlockEnd, "", p);
      after_tag(p + 3, false, false);
      return true;
    }
    if (src_.compare(p, 2, end) == 0) {
      emit(variable ? TokenType::VarEnd : TokenType::BlockEnd, "", p);
      after_tag(p + 2, false, !variable && opt_.trim_blocks);
      return true;
    }
    return false;
  }

  size_t digits(size_t p, int base) const {
    auto ok = [&](char c) {
      if (base == 16) return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      return c >= '0' && c < char('0' + base);
    };
    while (p < src_.size() && (ok(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && ok(src_[p + 1])))) ++p;
    return p;
  }

  size_t number(size_t p) {
    const size_t start = p;
    auto strip_underscores = [](std::string s) {
      std::erase(s, '_');
      return s;
    };
    if (src_[p] == '0' && p + 2 < src_.size() && std::string_view("xXoObB").find(src_[p + 1]) != std::string_view::npos) {
      const char b = char(src_[p + 1] | 0x20);
      const int base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
      const size_t e = digits(p + 2, base);
      if (e == p + 2) error(start, "invalid number literal");
      const std::string d = strip_underscores(src_.substr(p + 2, e - p - 2));
      Token t;
      t.type = TokenType::Int;
      t.pos = where_.at(start);
      const auto r = std::from_chars(d.data(), d.data() + d.size(), t.int_value, base);
      if (r.ec != std::errc()) error(start, "integer literal out of range");
      out_.push_back(std::move(t));
      return e;
    }
    p = digits(p, 10);
    bool is_float = false;
    if (p + 1 < src_.size() && src_[p] == '.' && is_digit(src_[p + 1])) {
      p = digits(p + 1, 10);
      is_float = true;
    }
    if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && is_digit(src_[q])) {
        p = digits(q, 10);
        is_float = true;
      }
    }
    const std::string d = strip_underscores(src_.substr(start, p - start));
    Token t;
    t.pos = where_.at(start);
    if (is_float) {
      t.type = TokenType::Float;
      t.float_value = std::strtod(d.c_str(), nullptr);
    } else {
      t.type = TokenType::Int;
      const auto r = std::from_chars(d.data(), d.data() + d.size(), t.int_value);
      if (r.ec != std::errc()) error(start, "integer literal out of range (loom's templates use 64-bit integers)");
    }
    t.text = d;
    out_.push_back(std::move(t));
    return p;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  // A quoted string with Python's escapes (Jinja decodes literals with
  // "unicode-escape"); an unknown escape keeps its backslash.
  size_t string(size_t p) {
    const size_t start = p;
    const char quote = src_[p++];
    std::string value;
    for (;;) {
      if (p >= src_.size()) error(start, "unterminated string literal");
      const char c = src_[p++];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (p >= src_.size()) error(start, "unterminated string literal");
      const char e = src_[p++];
      auto hex = [&](int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k, ++p) {
          if (p >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[p])))
            error(p - 2 - size_t(k), fmt::format("truncated \\{} escape in a string", e));
          const char h = char(src_[p] | 0x20);
          v = v * 16 + uint32_t(is_digit(h) ? h - '0' : h - 'a' + 10);
        }
        return v;
      };
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\n': break;  // line continuation
        case 'x': append_utf8(value, hex(2)); break;
        case 'u': append_utf8(value, hex(4)); break;
        case 'U': {
          const uint32_t cp = hex(8);
          if (cp > 0x10FFFF) error(p - 10, "\\U escape beyond U+10FFFF");
          append_utf8(value, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = uint32_t(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k) v = v * 8 + uint32_t(src_[p++] - '0');
            append_utf8(value, v);
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    emit(TokenType::String, std::move(value), start);
    return p;
  }

  size_t op(size_t p, std::string& brackets) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view two : kTwo) {
      if (src_.compare(p, 2, two) == 0) {
        emit(TokenType::Op, std::string(two), p);
        return p + 2;
      }
    }
    const char c = src_[p];
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos)
      error(p, fmt::format("unexpected character '{}' in a tag", c));
    if (c == '(' || c == '[' || c == '{') {
      brackets += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) error(p, fmt::format("unexpected '{}'", c));
      if (brackets.back() != c) error(p, fmt::format("unexpected '{}', expected '{}'", c, brackets.back()));
      brackets.pop_back();
    }
    emit(TokenType::Op, std::string(1, c), p);
    return p + 1;
  }

  LexOptions opt_;
  std::string name_;
  std::string src_;
  PosTracker where_;
  std::vector<Token> out_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> lex(std::string_view source, const LexOptions& options, std::string_view name) {
  return Lexer(source, options, name).run();
}

}  // namespace loom::tokenizer::jinja
