#include "loom/sample/json_recognizer.h"

#include <array>

#include "loom/core/error.h"

namespace loom::sample::json {

namespace {

enum RootPhase : uint8_t { kRootBefore, kRootDone };
enum ObjectPhase : uint8_t { kObjStart, kObjColon, kObjValue, kObjAfter, kObjComma };
enum ArrayPhase : uint8_t { kArrStart, kArrAfter, kArrComma };
enum NumberPhase : uint8_t { kNumSign, kNumZero, kNumInt, kNumDot, kNumFrac, kNumExp, kNumExpSign, kNumExpDigits };

bool is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Frame::ws, the whitespace read since the last JSON token: nothing, one
// space or tab, a carriage return (a line feed must follow), or a line
// break followed by ws - kWsNewLine bytes of indentation.
enum WsState : uint8_t { kWsNone, kWsSpace, kWsReturn, kWsNewLine };

// Steps `ws` over the whitespace byte c; false when c breaks the rule of
// kMaxIndentPerLevel, `levels` being the objects and arrays open.
bool whitespace(uint8_t& ws, uint8_t c, size_t levels) {
  const bool line_break = c == '\n' || c == '\r';
  switch (ws) {
    case kWsNone:
    case kWsSpace:
      if (!line_break && ws == kWsSpace) return false;
      ws = c == '\r' ? kWsReturn : c == '\n' ? kWsNewLine : kWsSpace;
      return true;
    case kWsReturn:
      if (c != '\n') return false;
      ws = kWsNewLine;
      return true;
    default:
      if (line_break || size_t(ws - kWsNewLine) >= size_t(kMaxIndentPerLevel) * levels) return false;
      ++ws;
      return true;
  }
}
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool in(uint8_t c, uint8_t lo, uint8_t hi) { return c >= lo && c <= hi; }

uint8_t string_next_slow(uint8_t s, uint8_t c) {
  const bool cont = in(c, 0x80, 0xBF);
  switch (s) {
    case kContent:
      if (c == '"') return kStringClose;
      if (c == '\\') return kEscape;
      if (c < 0x20) return kStringDead;  // control characters must be escaped
      if (c < 0x80) return kContent;
      if (in(c, 0xC2, 0xDF)) return kUtf8Tail1;
      if (c == 0xE0) return kUtf8E0;
      if (c == 0xED) return kUtf8ED;
      if (in(c, 0xE1, 0xEF)) return kUtf8Tail2;
      if (c == 0xF0) return kUtf8F0;
      if (in(c, 0xF1, 0xF3)) return kUtf8Tail3;
      if (c == 0xF4) return kUtf8F4;
      return kStringDead;  // stray continuation byte, overlong lead (C0, C1) or past U+10FFFF
    case kUtf8Tail1: return cont ? kContent : kStringDead;
    case kUtf8Tail2: return cont ? kUtf8Tail1 : kStringDead;
    case kUtf8Tail3: return cont ? kUtf8Tail2 : kStringDead;
    case kUtf8E0: return in(c, 0xA0, 0xBF) ? kUtf8Tail1 : kStringDead;
    case kUtf8ED: return in(c, 0x80, 0x9F) ? kUtf8Tail1 : kStringDead;
    case kUtf8F0: return in(c, 0x90, 0xBF) ? kUtf8Tail2 : kStringDead;
    case kUtf8F4: return in(c, 0x80, 0x8F) ? kUtf8Tail2 : kStringDead;
    case kEscape:
      switch (c) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': return kContent;
        case 'u': return kHex0;
        default: return kStringDead;
      }
    case kHex0:
      if (c == 'd' || c == 'D') return kHex1D;
      return is_hex(c) ? kHex1 : kStringDead;
    case kHex1: return is_hex(c) ? kHex2 : kStringDead;
    case kHex1D:
      if (in(c, '0', '7')) return kHex2;
      if (in(c, '8', '9') || c == 'a' || c == 'b' || c == 'A' || c == 'B') return kHex2High;
      return kStringDead;  // \uDC..\uDF: a low surrogate without a high one
    case kHex2: return is_hex(c) ? kHex3 : kStringDead;
    case kHex3: return is_hex(c) ? kContent : kStringDead;
    case kHex2High: return is_hex(c) ? kHex3High : kStringDead;
    case kHex3High: return is_hex(c) ? kLowBackslash : kStringDead;
    case kLowBackslash: return c == '\\' ? kLowU : kStringDead;
    case kLowU: return c == 'u' ? kLowD : kStringDead;
    case kLowD: return c == 'd' || c == 'D' ? kLowC : kStringDead;
    case kLowC: return in(c, 'c', 'f') || in(c, 'C', 'F') ? kLowHex1 : kStringDead;
    case kLowHex1: return is_hex(c) ? kLowHex2 : kStringDead;
    case kLowHex2: return is_hex(c) ? kContent : kStringDead;
    default: return kStringDead;
  }
}

using StringTable = std::array<std::array<uint8_t, 256>, kStringStates>;

const StringTable& string_table() {
  static const StringTable table = [] {
    StringTable t{};
    for (int s = 0; s < kStringStates; ++s) {
      for (int c = 0; c < 256; ++c) t[s][c] = string_next_slow(uint8_t(s), uint8_t(c));
    }
    return t;
  }();
  return table;
}

// Narrows the sorted candidates [a, b), which share their first k bytes, to
// those whose byte k is c.
template <typename Name>
void narrow(uint32_t& a, uint32_t& b, uint32_t k, uint8_t c, Name name) {
  auto rank = [&](uint32_t i) {
    const std::string& s = name(i);
    return s.size() > k ? int(uint8_t(s[k])) + 1 : 0;
  };
  const int want = int(c) + 1;
  uint32_t lo = a, hi = b;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (rank(mid) < want) lo = mid + 1; else hi = mid;
  }
  const uint32_t first = lo;
  hi = b;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (rank(mid) <= want) lo = mid + 1; else hi = mid;
  }
  a = first;
  b = lo;
}

// Keys must be spelled the one way nlohmann::json::dump() spells them (the
// form declared names are matched in): the short escapes, and \u00xx in
// lowercase only for the other control characters. So a declared name cannot
// slip through as an "undeclared" key spelled differently ("\u0061" for "a").
enum KeyEscape : uint8_t { kKeyU = 0xF0, kKeyU0, kKeyU00, kKeyU000, kKeyU001 };

uint8_t key_next(uint8_t s, uint8_t c) {
  switch (s) {
    case kEscape:
      if (c == '/') return kStringDead;
      return c == 'u' ? kKeyU : string_table()[kEscape][c];
    case kKeyU: return c == '0' ? kKeyU0 : kStringDead;
    case kKeyU0: return c == '0' ? kKeyU00 : kStringDead;
    case kKeyU00: return c == '0' ? kKeyU000 : c == '1' ? kKeyU001 : kStringDead;
    case kKeyU000:  // not \b \t \n \f \r
      return (is_digit(c) && c != '8' && c != '9') || c == 'b' || c == 'e' || c == 'f' ? kContent : kStringDead;
    case kKeyU001: return is_digit(c) || in(c, 'a', 'f') ? kContent : kStringDead;
    default: return string_table()[s][c];
  }
}

}  // namespace

uint8_t string_next(uint8_t state, uint8_t byte) {
  return state < kStringStates ? string_table()[state][byte] : uint8_t{kStringDead};
}

// One stack of a Paths (its last one), stepped in place.
struct Recognizer::Ref {
  std::vector<Frame>& v;
  size_t base;
  Frame& top() { return v.back(); }
  Frame& parent() { return v[v.size() - 2]; }
  size_t depth() const { return v.size() - base; }
  void push(const Frame& f) { v.push_back(f); }
  void pop() { v.pop_back(); }
};

Paths Recognizer::start() const {
  Paths p;
  Frame root;
  root.kind = FrameKind::Root;
  root.node = g_.root;
  p.add(std::span<const Frame>(&root, 1));
  return p;
}

void Recognizer::step(std::span<const Frame> stack, uint8_t byte, Paths& out) const {
  std::vector<Frame>& v = out.frames_;
  const size_t base = v.size();
  v.insert(v.end(), stack.begin(), stack.end());
  Ref r{v, base};
  uint32_t anyof = kNoNode;
  const Step st = step_in_place(r, byte, &anyof);
  if (st == Step::Dead) {
    v.resize(base);
    return;
  }
  if (st == Step::Ok) {
    out.ends_.push_back(static_cast<uint32_t>(v.size()));
    return;
  }
  // An anyOf value starts: one stack per alternative (alternatives are never
  // anyOf themselves, see json_schema.cpp, so they do not fork again).
  out.scratch_.assign(v.begin() + std::ptrdiff_t(base), v.end());
  v.resize(base);
  for (uint32_t alt : g_.nodes[anyof].alternatives) {
    const size_t b = v.size();
    v.insert(v.end(), out.scratch_.begin(), out.scratch_.end());
    Ref ra{v, b};
    if (value_start(ra, alt, byte, &anyof) == Step::Ok) {
      out.ends_.push_back(static_cast<uint32_t>(v.size()));
    } else {
      v.resize(b);
    }
  }
}

void Recognizer::step(const Paths& in, uint8_t byte, Paths& out) const {
  LOOM_CHECK(&in != &out, "[sample] json recognizer: step() needs distinct input and output");
  for (size_t i = 0; i < in.size(); ++i) step(in[i], byte, out);
  LOOM_CHECK(out.size() <= kMaxPaths,
             "[sample] json schema: more than {} anyOf alternatives match the text at once; make the "
             "alternatives distinguishable (e.g. by a const discriminator property)", kMaxPaths);
}

bool Recognizer::complete(std::span<const Frame> s) const {
  if (s.empty() || s[0].phase != kRootDone) return false;
  if (s.size() == 1) return true;
  if (s.size() != 2) return false;
  const Frame& f = s[1];
  if (f.kind == FrameKind::Number) {
    return f.phase == kNumZero || f.phase == kNumInt || f.phase == kNumFrac || f.phase == kNumExpDigits;
  }
  if (f.kind == FrameKind::Literal) return f.a < f.b && g_.literal_sets[f.node][f.a].size() == f.k;
  return false;
}

bool Recognizer::complete(const Paths& p) const {
  for (size_t i = 0; i < p.size(); ++i) {
    if (complete(p[i])) return true;
  }
  return false;
}

bool Recognizer::finished(const Paths& p, Paths& scratch) const {
  if (!complete(p)) return false;
  for (int c = 0; c < 256; ++c) {
    scratch.clear();
    for (size_t i = 0; i < p.size() && scratch.empty(); ++i) step(p[i], uint8_t(c), scratch);
    if (!scratch.empty()) return false;
  }
  return true;
}

int64_t Recognizer::free_string_room(std::span<const Frame> s) const {
  const Frame& f = s.back();
  if (f.phase != kContent) return -1;
  if (f.kind == FrameKind::String) return int64_t(g_.nodes[f.node].max_length) - f.a;
  // With undeclared keys allowed, every byte that keeps a key a valid string
  // keeps it alive (key_byte); only the closing quote depends on the name.
  if (f.kind == FrameKind::Key && g_.nodes[f.node].additional != kNoNode) return int64_t{1} << 40;
  return -1;
}

Recognizer::Step Recognizer::step_in_place(Ref& s, uint8_t c, uint32_t* anyof) const {
  Frame& f = s.top();
  switch (f.kind) {
    case FrameKind::Root:
      if (f.phase != kRootBefore) return Step::Dead;  // nothing follows the value
      if (is_ws(c)) return whitespace(f.ws, c, 0) ? Step::Ok : Step::Dead;
      if (f.ws == kWsReturn) return Step::Dead;
      f.phase = kRootDone;
      f.ws = kWsNone;
      return value_start(s, f.node, c, anyof);
    case FrameKind::Object: return object_byte(s, c, anyof);
    case FrameKind::Array: return array_byte(s, c, anyof);
    case FrameKind::String: return string_byte(s, c);
    case FrameKind::Key: return key_byte(s, c);
    case FrameKind::Number: return number_byte(s, c, anyof);
    case FrameKind::Literal: return literal_byte(s, c, anyof);
  }
  return Step::Dead;
}

Recognizer::Step Recognizer::value_start(Ref& s, uint32_t node, uint8_t c, uint32_t* anyof) const {
  const SchemaNode& n = g_.nodes[node];
  Frame f;
  f.node = node;
  switch (n.kind) {
    case SchemaNode::Kind::AnyOf: *anyof = node; return Step::Fork;
    case SchemaNode::Kind::Ref: return Step::Dead;  // resolved by compile_schema; never reached
    case SchemaNode::Kind::Literals:
      f.kind = FrameKind::Literal;
      f.node = n.target;
      f.b = static_cast<uint32_t>(g_.literal_sets[n.target].size());
      s.push(f);
      return literal_byte(s, c, anyof);
    case SchemaNode::Kind::Types: break;
  }
  const bool room = s.depth() - 1 < size_t(kMaxNesting);  // frames below: the root and open containers
  if (c == '{' && (n.types & kObject) && room) {
    f.kind = FrameKind::Object;
    f.phase = kObjStart;
  } else if (c == '[' && (n.types & kArray) && room) {
    f.kind = FrameKind::Array;
    f.phase = kArrStart;
  } else if (c == '"' && (n.types & kString)) {
    f.kind = FrameKind::String;
    f.phase = kContent;
  } else if ((c == '-' || is_digit(c)) && (n.types & (kNumber | kInteger))) {
    f.kind = FrameKind::Number;
    f.phase = c == '-' ? kNumSign : c == '0' ? kNumZero : kNumInt;
    f.a = is_digit(c) ? 1 : 0;
  } else if ((c == 't' || c == 'f') && (n.types & kBoolean)) {
    f.kind = FrameKind::Literal;
    f.node = Grammar::kBooleanSet;
    f.b = 2;
    s.push(f);
    return literal_byte(s, c, anyof);
  } else if (c == 'n' && (n.types & kNull)) {
    f.kind = FrameKind::Literal;
    f.node = Grammar::kNullSet;
    f.b = 1;
    s.push(f);
    return literal_byte(s, c, anyof);
  } else {
    return Step::Dead;
  }
  s.push(f);
  return Step::Ok;
}

bool Recognizer::key_possible(const Frame& object) const {
  const SchemaNode& n = g_.nodes[object.node];
  if (n.additional != kNoNode) return true;
  const size_t count = n.properties.size();
  const uint64_t all = count >= 64 ? ~uint64_t{0} : (uint64_t{1} << count) - 1;
  return (object.seen & all) != all;
}

Recognizer::Step Recognizer::object_byte(Ref& s, uint8_t c, uint32_t* anyof) const {
  Frame& f = s.top();
  const SchemaNode& n = g_.nodes[f.node];
  if (is_ws(c)) return whitespace(f.ws, c, s.depth() - 1) ? Step::Ok : Step::Dead;
  if (f.ws == kWsReturn) return Step::Dead;
  f.ws = kWsNone;
  const bool may_close = (f.seen & n.required_mask) == n.required_mask;
  switch (f.phase) {
    case kObjStart:
    case kObjComma:
      if (c == '"' && key_possible(f)) {
        f.phase = kObjColon;
        Frame key;
        key.kind = FrameKind::Key;
        key.node = f.node;
        key.b = static_cast<uint32_t>(n.by_name.size());
        key.phase = kContent;
        s.push(key);
        return Step::Ok;
      }
      if (c == '}' && f.phase == kObjStart && may_close) {
        s.pop();
        return Step::Ok;
      }
      return Step::Dead;
    case kObjColon:
      if (c != ':') return Step::Dead;
      f.phase = kObjValue;
      return Step::Ok;
    case kObjValue: {
      f.phase = kObjAfter;
      const uint32_t value = f.b;
      return value_start(s, value, c, anyof);
    }
    case kObjAfter:
      if (c == ',' && key_possible(f)) {
        f.phase = kObjComma;
        return Step::Ok;
      }
      if (c == '}' && may_close) {
        s.pop();
        return Step::Ok;
      }
      return Step::Dead;
  }
  return Step::Dead;
}

Recognizer::Step Recognizer::array_byte(Ref& s, uint8_t c, uint32_t* anyof) const {
  Frame& f = s.top();
  const SchemaNode& n = g_.nodes[f.node];
  if (is_ws(c)) return whitespace(f.ws, c, s.depth() - 1) ? Step::Ok : Step::Dead;
  if (f.ws == kWsReturn) return Step::Dead;
  f.ws = kWsNone;
  switch (f.phase) {
    case kArrStart:
      if (c == ']') {
        if (n.min_items > 0) return Step::Dead;
        s.pop();
        return Step::Ok;
      }
      if (n.max_items == 0) return Step::Dead;
      [[fallthrough]];
    case kArrComma:
      f.a++;
      f.phase = kArrAfter;
      return value_start(s, n.items, c, anyof);
    case kArrAfter:
      if (c == ',' && f.a < n.max_items) {
        f.phase = kArrComma;
        return Step::Ok;
      }
      if (c == ']' && f.a >= n.min_items) {
        s.pop();
        return Step::Ok;
      }
      return Step::Dead;
  }
  return Step::Dead;
}

Recognizer::Step Recognizer::string_byte(Ref& s, uint8_t c) const {
  Frame& f = s.top();
  const SchemaNode& n = g_.nodes[f.node];
  if (f.phase == kContent && c != '"' && f.a >= n.max_length) return Step::Dead;
  const uint8_t next = string_table()[f.phase][c];
  if (next == kStringDead) return Step::Dead;
  if (next == kStringClose) {
    if (f.a < n.min_length) return Step::Dead;
    s.pop();
    return Step::Ok;
  }
  if (next == kContent) f.a++;  // a character is complete
  f.phase = next;
  return Step::Ok;
}

Recognizer::Step Recognizer::key_byte(Ref& s, uint8_t c) const {
  Frame& f = s.top();
  const SchemaNode& n = g_.nodes[f.node];
  const uint8_t next = key_next(f.phase, c);
  if (next == kStringDead) return Step::Dead;
  const uint64_t seen = s.parent().seen;
  if (next == kStringClose) {
    // The key's bytes equal a declared name iff the first candidate left has
    // exactly k bytes (shorter names sort first).
    uint32_t value = n.additional;
    if (f.a < f.b && n.properties[n.by_name[f.a]].name.size() == f.k) {
      const uint32_t p = n.by_name[f.a];
      if (seen >> p & 1) return Step::Dead;  // a key appears once
      s.parent().seen |= uint64_t{1} << p;
      value = n.properties[p].node;
    }
    if (value == kNoNode) return Step::Dead;
    s.pop();
    s.top().b = value;
    return Step::Ok;
  }
  if (f.a < f.b) {
    narrow(f.a, f.b, f.k, c, [&](uint32_t i) -> const std::string& { return n.properties[n.by_name[i]].name; });
  }
  f.k++;
  f.phase = next;
  if (n.additional != kNoNode) return Step::Ok;
  for (uint32_t i = f.a; i < f.b; ++i) {
    if (!(seen >> n.by_name[i] & 1)) return Step::Ok;  // a declared key not used yet can still be written
  }
  return Step::Dead;
}

Recognizer::Step Recognizer::number_byte(Ref& s, uint8_t c, uint32_t* anyof) const {
  Frame& f = s.top();
  const bool fraction = g_.nodes[f.node].types & kNumber;  // else integers only
  const bool digit = is_digit(c);
  switch (f.phase) {
    case kNumSign:
      if (!digit) return Step::Dead;
      f.phase = c == '0' ? kNumZero : kNumInt;
      f.a = 1;
      return Step::Ok;
    case kNumInt:
      if (digit) return f.a++ < kMaxIntDigits ? Step::Ok : Step::Dead;
      [[fallthrough]];
    case kNumZero:
      if (c == '.' && fraction) {
        f.phase = kNumDot;
        return Step::Ok;
      }
      if ((c == 'e' || c == 'E') && fraction) {
        f.phase = kNumExp;
        return Step::Ok;
      }
      break;  // the number ends before c
    case kNumDot:
      if (!digit) return Step::Dead;
      f.phase = kNumFrac;
      f.a = 1;
      return Step::Ok;
    case kNumFrac:
      if (digit) return f.a++ < kMaxFracDigits ? Step::Ok : Step::Dead;
      if (c == 'e' || c == 'E') {
        f.phase = kNumExp;
        return Step::Ok;
      }
      break;
    case kNumExp:
      if (c == '+' || c == '-') {
        f.phase = kNumExpSign;
        return Step::Ok;
      }
      [[fallthrough]];
    case kNumExpSign:
      if (!digit) return Step::Dead;
      f.phase = kNumExpDigits;
      f.a = 1;
      return Step::Ok;
    case kNumExpDigits:
      if (digit) return f.a++ < kMaxExpDigits ? Step::Ok : Step::Dead;
      break;
  }
  if (digit) return Step::Dead;  // "01", or past a digit limit
  s.pop();
  return step_in_place(s, c, anyof);
}

Recognizer::Step Recognizer::literal_byte(Ref& s, uint8_t c, uint32_t* anyof) const {
  Frame& f = s.top();
  const std::vector<std::string>& set = g_.literal_sets[f.node];
  uint32_t a = f.a, b = f.b;
  narrow(a, b, f.k, c, [&](uint32_t i) -> const std::string& { return set[i]; });
  if (a < b) {
    f.a = a;
    f.b = b;
    f.k++;
    if (set[b - 1].size() == f.k) s.pop();  // the only candidate left is complete: the value ends here
    return Step::Ok;
  }
  // c continues no candidate: the value may have ended before it (enum [1, 12] after "1").
  if (f.a < f.b && set[f.a].size() == f.k) {
    s.pop();
    return step_in_place(s, c, anyof);
  }
  return Step::Dead;
}

}  // namespace loom::sample::json
