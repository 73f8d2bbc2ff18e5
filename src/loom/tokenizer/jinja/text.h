// Python's string operations on UTF-8 text, as chat templates call them:
// lengths and indices count characters (code points), strip() removes
// Unicode whitespace, split() without a separator splits on runs of it.
// Case mapping is ASCII-only (templates upper-case role names, not prose).
// Bytes that are not valid UTF-8 count as one character each.
//
//   jinja::text::strip("\u3000 hi \n")            // "hi"
//   jinja::text::char_count("你好")                // 2
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::tokenizer::jinja::text {

// Byte offset of every character, then s.size().
std::vector<size_t> char_starts(std::string_view s);
size_t char_count(std::string_view s);
// The characters of s, one string each.
std::vector<std::string> chars(std::string_view s);

// str.strip / lstrip / rstrip; `chars` absent means whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars = std::nullopt, bool left = true,
                  bool right = true);
// str.split(sep, maxsplit) / str.rsplit; no sep: runs of whitespace, empty parts dropped.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit = -1,
                               bool from_right = false);
std::vector<std::string> splitlines(std::string_view s);
std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count = -1);
// Character index of the first `needle` at or after character `start`, -1 if none.
int64_t find(std::string_view s, std::string_view needle);
int64_t count(std::string_view s, std::string_view needle);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string capitalize(std::string_view s);  // str.capitalize and Jinja's capitalize
std::string py_title(std::string_view s);    // str.title()
std::string jinja_title(std::string_view s); // Jinja's title filter (words split at '-', space, brackets)
bool is_lower(std::string_view s);           // str.islower()
bool is_upper(std::string_view s);

std::string repr(std::string_view s);         // Python repr of a str: 'it''s' quoting rules, escapes
std::string json_quote(std::string_view s);   // json.dumps(s, ensure_ascii=False)
std::string html_escape(std::string_view s);  // markupsafe.escape

}  // namespace loom::tokenizer::jinja::text
