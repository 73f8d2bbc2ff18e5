// GgufValue: one metadata value of a GGUF file (a scalar, a string, or an
// array of one element type), also used for metadata that loom derives from
// other formats.
//
//   GgufValue v = GgufValue::make_uint32(4096);
//   int64_t n = v.as_int();
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::format {

enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
std::string_view gguf_type_name(GgufType t);

// One metadata value: a scalar, a string, or an array of one element type.
class GgufValue {
 public:
  GgufValue() = default;

  GgufType type() const { return type_; }
  GgufType element_type() const { return elem_; }  // arrays only
  bool is_array() const { return type_ == GgufType::ARRAY; }
  bool is_string() const { return type_ == GgufType::STRING; }
  bool is_integer() const;  // UINT8..INT64 (not BOOL, not floats)
  bool is_float() const;    // FLOAT32, FLOAT64

  // Scalar accessors; throw loom::Error when the type does not fit.
  int64_t as_int() const;  // integer or bool types; a UINT64 above INT64_MAX throws
  double as_float() const;  // float or integer types
  bool as_bool() const;     // BOOL or integer types
  const std::string& as_string() const;

  // Array accessors.
  size_t size() const;                               // number of elements
  const std::vector<std::string>& strings() const;   // array of STRING
  std::vector<int64_t> ints() const;                 // array of integers or bools
  std::vector<float> floats() const;                 // array of floats or integers
  const std::vector<GgufValue>& values() const;      // array of ARRAY (nested)

  // Short human-readable form for `loom info` ("[1, 2, 3, ... 32000 items]").
  std::string to_display(size_t max_items = 8) const;

  // Constructors (used by the reader and by writers).
  static GgufValue make_uint(GgufType t, uint64_t v);  // UINT8/16/32/64
  static GgufValue make_int(GgufType t, int64_t v);    // INT8/16/32/64
  static GgufValue make_float(GgufType t, double v);   // FLOAT32/64
  static GgufValue make_bool(bool v);
  static GgufValue make_string(std::string v);
  static GgufValue make_uint32(uint32_t v) { return make_uint(GgufType::UINT32, v); }
  static GgufValue make_int32(int32_t v) { return make_int(GgufType::INT32, v); }
  static GgufValue make_float32(float v) { return make_float(GgufType::FLOAT32, v); }
  static GgufValue make_string_array(std::vector<std::string> v);
  static GgufValue make_float32_array(std::vector<float> v);
  static GgufValue make_int32_array(std::vector<int32_t> v);
  static GgufValue make_array(GgufType elem, std::vector<GgufValue> items);  // any element type

 private:
  // The GGUF reader and writer (gguf*.cpp) fill and read the packed storage
  // below directly, so a 150k-entry array is not built one GgufValue at a time.
  friend struct GgufValueAccess;
  GgufType type_ = GgufType::UINT8;
  GgufType elem_ = GgufType::UINT8;
  uint64_t bits_ = 0;   // integer/bool payload (two's complement for signed)
  double float_ = 0;    // float payload
  std::string str_;
  std::vector<std::string> strs_;   // string arrays
  std::vector<uint64_t> nums_;      // integer/bool arrays (bits) and float arrays (as double bits)
  std::vector<GgufValue> items_;    // nested arrays
};

}  // namespace loom::format
