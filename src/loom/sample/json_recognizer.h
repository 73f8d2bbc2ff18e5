// Byte-level recognizer of JSON text (RFC 8259) valid under a compiled schema
// (json_schema.h): a pushdown automaton whose stack holds one small frame per
// open value. It reads one byte at a time, so tokens may end anywhere, even
// inside a UTF-8 character or an escape. anyOf makes it nondeterministic: a
// state is a set of stacks (Paths), one per alternative still alive.
//
//   json::Recognizer r(grammar);
//   json::Paths p = r.start(), next;
//   for (char c : text) { next.clear(); r.step(p, c, next); std::swap(p, next); }  // p.empty(): rejected
//   bool done = r.complete(p);
//
// The recognizer only accepts prefixes that can still be completed, so a
// token mask built from it never leads generation into a dead end.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "loom/sample/json_schema.h"

namespace loom::sample::json {

// Limits that keep a model from stalling in one place and keep numbers
// within what parsers read exactly. They restrict what may be generated, not
// what JSON is.
// Whitespace between two JSON tokens is what pretty-printers write: at most
// one space or tab, then at most one line break ("\n" or "\r\n") and an
// indentation of at most kMaxIndentPerLevel spaces or tabs per open object or
// array. So a model cannot pad the text with blank lines or runs of spaces.
inline constexpr int kMaxIndentPerLevel = 4;
inline constexpr int kMaxNesting = 32;      // open objects and arrays
inline constexpr int kMaxIntDigits = 15;    // digits before the decimal point
inline constexpr int kMaxFracDigits = 15;   // digits after it
inline constexpr int kMaxExpDigits = 2;     // digits of the exponent (so no overflow to infinity)
inline constexpr size_t kMaxPaths = 256;    // stacks alive at once (anyOf alternatives)

// The sub-states of a string's content. kContent is "between characters".
enum StringState : uint8_t {
  kContent = 0,
  kUtf8Tail1,  // 1 more continuation byte (80..BF)
  kUtf8Tail2,  // 2 more
  kUtf8Tail3,  // 3 more
  kUtf8E0,     // after E0: A0..BF, then 1 more (no overlong forms)
  kUtf8ED,     // after ED: 80..9F (no surrogates), then 1 more
  kUtf8F0,     // after F0: 90..BF, then 2 more
  kUtf8F4,     // after F4: 80..8F (at most U+10FFFF), then 2 more
  kEscape,     // after a backslash
  kHex0,       // after \u, hex digits read: 0
  kHex1,
  kHex1D,      // first digit was d/D: the second decides about surrogates
  kHex2,
  kHex2High,   // \uD8..\uDB: a high surrogate, which needs a low one after it
  kHex3,
  kHex3High,
  kLowBackslash,  // after a high surrogate: \uDC00..\uDFFF must follow
  kLowU,
  kLowD,
  kLowC,
  kLowHex1,
  kLowHex2,
  kStringStates,
  kStringClose = 0xFE,  // the closing quote
  kStringDead = 0xFF,
};

// Next string state after `byte` (kStringClose for the closing quote,
// kStringDead if the byte cannot appear here). Lone surrogates (\uDC00
// alone, or \uD800 not followed by a low surrogate) are rejected.
uint8_t string_next(uint8_t state, uint8_t byte);

enum class FrameKind : uint8_t { Root, Object, Array, String, Key, Number, Literal };

struct Frame {
  uint64_t seen = 0;  // Object: bit i = properties[i] present
  uint32_t node = 0;  // schema node; Literal: the literal set
  uint32_t a = 0;     // Array: items so far; String: characters so far; Number: digits in this part;
                      // Key, Literal: first candidate still matching (sorted order)
  uint32_t b = 0;     // Object: schema of the value that comes next; Key, Literal: end of the candidates
  uint32_t k = 0;     // Key, Literal: bytes matched so far
  FrameKind kind = FrameKind::Root;
  uint8_t phase = 0;  // per kind; String and Key: a StringState
  uint8_t ws = 0;     // the whitespace run read since the last token (Root, Object, Array; see whitespace())
};

// A set of stacks, stored back to back (no allocation once warmed up).
class Paths {
 public:
  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  void clear() {
    frames_.clear();
    ends_.clear();
  }
  std::span<const Frame> operator[](size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return {frames_.data() + begin, ends_[i] - begin};
  }
  void add(std::span<const Frame> stack) {
    frames_.insert(frames_.end(), stack.begin(), stack.end());
    ends_.push_back(static_cast<uint32_t>(frames_.size()));
  }

 private:
  friend class Recognizer;
  std::vector<Frame> frames_;
  std::vector<uint32_t> ends_;
  std::vector<Frame> scratch_;
};

class Recognizer {
 public:
  explicit Recognizer(const Grammar& grammar) : g_(grammar) {}

  Paths start() const;
  // Appends to `out` what `stack` becomes after `byte`: nothing if the byte
  // cannot come next, several stacks where an anyOf value starts.
  void step(std::span<const Frame> stack, uint8_t byte, Paths& out) const;
  // Every stack of `in` stepped by `byte` (`out` is another Paths). Throws
  // loom::Error past kMaxPaths.
  void step(const Paths& in, uint8_t byte, Paths& out) const;

  // A whole value was read, so the text may end here. Only a top-level
  // number (or enum [1, 12] after "1") can still go on then: "1" -> "12".
  bool complete(std::span<const Frame> stack) const;
  bool complete(const Paths& p) const;
  // complete(p) and no byte can follow: the text must end here.
  bool finished(const Paths& p, Paths& scratch) const;

  // For a stack whose top is free string content between characters (a
  // string value, or a key of an object that allows undeclared keys): how
  // many more characters it may take. -1 otherwise. Any run of
  // plain string content (no quote, backslash or control byte, whole UTF-8
  // characters) of at most that many characters is accepted there.
  int64_t free_string_room(std::span<const Frame> stack) const;

  const Grammar& grammar() const { return g_; }

 private:
  enum class Step : uint8_t { Dead, Ok, Fork };
  struct Ref;  // a stack being stepped in place inside a Paths

  Step step_in_place(Ref& s, uint8_t c, uint32_t* anyof) const;
  Step value_start(Ref& s, uint32_t node, uint8_t c, uint32_t* anyof) const;
  Step object_byte(Ref& s, uint8_t c, uint32_t* anyof) const;
  Step array_byte(Ref& s, uint8_t c, uint32_t* anyof) const;
  Step string_byte(Ref& s, uint8_t c) const;
  Step key_byte(Ref& s, uint8_t c) const;
  Step number_byte(Ref& s, uint8_t c, uint32_t* anyof) const;
  Step literal_byte(Ref& s, uint8_t c, uint32_t* anyof) const;
  void value_done(Ref& s) const;
  bool key_possible(const Frame& object) const;

  const Grammar& g_;
};

}  // namespace loom::sample::json
