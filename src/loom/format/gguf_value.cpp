// GgufValue: metadata scalars and arrays, their typed accessors and display.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <string>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/gguf_internal.h"

namespace loom::format {

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "UINT8";
    case GgufType::INT8: return "INT8";
    case GgufType::UINT16: return "UINT16";
    case GgufType::INT16: return "INT16";
    case GgufType::UINT32: return "UINT32";
    case GgufType::INT32: return "INT32";
    case GgufType::FLOAT32: return "FLOAT32";
    case GgufType::BOOL: return "BOOL";
    case GgufType::STRING: return "STRING";
    case GgufType::ARRAY: return "ARRAY";
    case GgufType::UINT64: return "UINT64";
    case GgufType::INT64: return "INT64";
    case GgufType::FLOAT64: return "FLOAT64";
  }
  return "UNKNOWN";
}

bool is_valid_type(uint32_t t) { return t <= uint32_t(GgufType::FLOAT64); }

bool is_integer_type(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::UINT16:
    case GgufType::INT16:
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::UINT64:
    case GgufType::INT64:
      return true;
    default:
      return false;
  }
}

bool is_signed_type(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 || t == GgufType::INT64;
}

bool is_float_type(GgufType t) { return t == GgufType::FLOAT32 || t == GgufType::FLOAT64; }

size_t scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      return 1;
    case GgufType::UINT16:
    case GgufType::INT16:
      return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32:
      return 4;
    case GgufType::UINT64:
    case GgufType::INT64:
    case GgufType::FLOAT64:
      return 8;
    default:
      return 0;
  }
}

std::string describe(const GgufValue& v) {
  if (v.is_array()) return fmt::format("an array of {}", gguf_type_name(v.element_type()));
  return std::string(gguf_type_name(v.type()));
}

namespace {

// One array element (or scalar) of a numeric type, as an int64; throws for a
// UINT64 that int64 cannot hold rather than wrapping it negative.
int64_t bits_to_int(GgufType t, uint64_t bits) {
  if (t == GgufType::UINT64 && bits > uint64_t(std::numeric_limits<int64_t>::max()))
    fail("[format] metadata value {} (UINT64) does not fit in int64", bits);
  return int64_t(bits);  // signed values are stored sign-extended
}

double bits_to_double(GgufType t, uint64_t bits) {
  if (is_float_type(t)) return std::bit_cast<double>(bits);
  if (is_signed_type(t)) return double(int64_t(bits));
  return double(bits);
}

std::string quoted(const std::string& s, size_t max_bytes) {
  size_t n = s.size();
  bool cut = false;
  if (n > max_bytes) {
    n = max_bytes;
    // Do not end inside a UTF-8 sequence (continuation bytes are 10xxxxxx).
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    cut = true;
  }
  std::string out = "\"";
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  out += '"';
  if (cut) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

std::string number_display(GgufType t, uint64_t bits) {
  if (t == GgufType::BOOL) return bits ? "true" : "false";
  if (t == GgufType::FLOAT32) return fmt::format("{}", float(std::bit_cast<double>(bits)));
  if (t == GgufType::FLOAT64) return fmt::format("{}", std::bit_cast<double>(bits));
  if (is_signed_type(t)) return fmt::format("{}", int64_t(bits));
  return fmt::format("{}", bits);
}

constexpr size_t kDisplayStringBytes = 80;

}  // namespace

bool GgufValue::is_integer() const { return is_integer_type(type_); }
bool GgufValue::is_float() const { return is_float_type(type_); }

int64_t GgufValue::as_int() const {
  if (type_ == GgufType::BOOL || is_integer()) return bits_to_int(type_, bits_);
  fail("[format] metadata value is {}, not an integer", describe(*this));
}

double GgufValue::as_float() const {
  if (is_float()) return float_;
  if (is_integer()) return bits_to_double(type_, bits_);
  fail("[format] metadata value is {}, not a number", describe(*this));
}

bool GgufValue::as_bool() const {
  if (type_ == GgufType::BOOL || is_integer()) return bits_ != 0;
  fail("[format] metadata value is {}, not a bool", describe(*this));
}

const std::string& GgufValue::as_string() const {
  if (is_string()) return str_;
  fail("[format] metadata value is {}, not a string", describe(*this));
}

size_t GgufValue::size() const {
  if (!is_array()) fail("[format] metadata value is {}, not an array", describe(*this));
  if (elem_ == GgufType::STRING) return strs_.size();
  if (elem_ == GgufType::ARRAY) return items_.size();
  return nums_.size();
}

const std::vector<std::string>& GgufValue::strings() const {
  if (is_array() && elem_ == GgufType::STRING) return strs_;
  fail("[format] metadata value is {}, not an array of STRING", describe(*this));
}

std::vector<int64_t> GgufValue::ints() const {
  if (!is_array() || !(is_integer_type(elem_) || elem_ == GgufType::BOOL))
    fail("[format] metadata value is {}, not an array of integers", describe(*this));
  std::vector<int64_t> out(nums_.size());
  for (size_t i = 0; i < nums_.size(); ++i) out[i] = bits_to_int(elem_, nums_[i]);
  return out;
}

std::vector<float> GgufValue::floats() const {
  if (!is_array() || !(is_float_type(elem_) || is_integer_type(elem_)))
    fail("[format] metadata value is {}, not an array of numbers", describe(*this));
  std::vector<float> out(nums_.size());
  for (size_t i = 0; i < nums_.size(); ++i) out[i] = float(bits_to_double(elem_, nums_[i]));
  return out;
}

const std::vector<GgufValue>& GgufValue::values() const {
  if (is_array() && elem_ == GgufType::ARRAY) return items_;
  fail("[format] metadata value is {}, not an array of arrays", describe(*this));
}

std::string GgufValue::to_display(size_t max_items) const {
  if (is_string()) return quoted(str_, kDisplayStringBytes);
  if (!is_array()) return number_display(type_, is_float() ? std::bit_cast<uint64_t>(float_) : bits_);
  const size_t n = size();
  const size_t shown = std::min(n, max_items);
  std::string out = "[";
  for (size_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    if (elem_ == GgufType::STRING) {
      out += quoted(strs_[i], kDisplayStringBytes);
    } else if (elem_ == GgufType::ARRAY) {
      out += items_[i].to_display(std::max<size_t>(1, max_items / 2));
    } else {
      out += number_display(elem_, nums_[i]);
    }
  }
  if (shown < n) out += fmt::format("{}... {} items", shown ? ", " : "", n);
  return out + "]";
}

GgufValue GgufValue::make_uint(GgufType t, uint64_t v) {
  uint64_t max = 0;
  switch (t) {
    case GgufType::UINT8: max = 0xff; break;
    case GgufType::UINT16: max = 0xffff; break;
    case GgufType::UINT32: max = 0xffffffff; break;
    case GgufType::UINT64: max = std::numeric_limits<uint64_t>::max(); break;
    default: fail("[format] make_uint: {} is not an unsigned integer type", gguf_type_name(t));
  }
  LOOM_CHECK(v <= max, "[format] make_uint: {} does not fit in {}", v, gguf_type_name(t));
  GgufValue r;
  r.type_ = t;
  r.bits_ = v;
  return r;
}

GgufValue GgufValue::make_int(GgufType t, int64_t v) {
  int64_t lo = 0, hi = 0;
  switch (t) {
    case GgufType::INT8: lo = INT8_MIN, hi = INT8_MAX; break;
    case GgufType::INT16: lo = INT16_MIN, hi = INT16_MAX; break;
    case GgufType::INT32: lo = INT32_MIN, hi = INT32_MAX; break;
    case GgufType::INT64: lo = INT64_MIN, hi = INT64_MAX; break;
    default: fail("[format] make_int: {} is not a signed integer type", gguf_type_name(t));
  }
  LOOM_CHECK(v >= lo && v <= hi, "[format] make_int: {} does not fit in {}", v, gguf_type_name(t));
  GgufValue r;
  r.type_ = t;
  r.bits_ = uint64_t(v);
  return r;
}

GgufValue GgufValue::make_float(GgufType t, double v) {
  LOOM_CHECK(is_float_type(t), "[format] make_float: {} is not a float type", gguf_type_name(t));
  GgufValue r;
  r.type_ = t;
  // A FLOAT32 holds what the file will hold, so a written value reads back equal.
  r.float_ = t == GgufType::FLOAT32 ? double(float(v)) : v;
  return r;
}

GgufValue GgufValue::make_bool(bool v) {
  GgufValue r;
  r.type_ = GgufType::BOOL;
  r.bits_ = v ? 1 : 0;
  return r;
}

GgufValue GgufValue::make_string(std::string v) {
  GgufValue r;
  r.type_ = GgufType::STRING;
  r.str_ = std::move(v);
  return r;
}

GgufValue GgufValue::make_string_array(std::vector<std::string> v) {
  GgufValue r;
  r.type_ = GgufType::ARRAY;
  r.elem_ = GgufType::STRING;
  r.strs_ = std::move(v);
  return r;
}

GgufValue GgufValue::make_float32_array(std::vector<float> v) {
  std::vector<uint64_t> raw(v.size());
  for (size_t i = 0; i < v.size(); ++i) raw[i] = std::bit_cast<uint64_t>(double(v[i]));
  return GgufValueAccess::number_array(GgufType::FLOAT32, std::move(raw));
}

GgufValue GgufValue::make_int32_array(std::vector<int32_t> v) {
  std::vector<uint64_t> raw(v.size());
  for (size_t i = 0; i < v.size(); ++i) raw[i] = uint64_t(int64_t(v[i]));
  return GgufValueAccess::number_array(GgufType::INT32, std::move(raw));
}

GgufValue GgufValue::make_array(GgufType elem, std::vector<GgufValue> items) {
  LOOM_CHECK(is_valid_type(uint32_t(elem)), "[format] make_array: unknown element type {}", uint32_t(elem));
  for (size_t i = 0; i < items.size(); ++i) {
    LOOM_CHECK(items[i].type_ == elem, "[format] make_array: item {} is {}, expected {}", i, describe(items[i]),
               gguf_type_name(elem));
  }
  GgufValue r;
  r.type_ = GgufType::ARRAY;
  r.elem_ = elem;
  if (elem == GgufType::ARRAY) {
    r.items_ = std::move(items);
  } else if (elem == GgufType::STRING) {
    r.strs_.reserve(items.size());
    for (auto& it : items) r.strs_.push_back(std::move(it.str_));
  } else {
    r.nums_.reserve(items.size());
    for (const auto& it : items) r.nums_.push_back(is_float_type(elem) ? std::bit_cast<uint64_t>(it.float_) : it.bits_);
  }
  return r;
}

}  // namespace loom::format
