// loom::Error — the one error type of the library.
// Messages start with "[room]" and say what is wrong, where, and what to do
// next. Library code throws; only the edges (CLI, HTTP) catch and convert.
//
//   if (n > limit) throw Error(fmt::format("[format] {}: tensor count {} exceeds {}", path, n, limit));
//   LOOM_CHECK(x.rank() == 2, "[graph] matmul: x must be 2-D, got {}", x.rank());
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace loom {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace loom

// Checks a condition that depends on input (files, arguments, shapes).
#define LOOM_CHECK(cond, ...)        \
  do {                               \
    if (!(cond)) ::loom::fail(__VA_ARGS__); \
  } while (0)
