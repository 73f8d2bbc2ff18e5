// Private helpers shared by the GGUF reader (gguf.cpp), the value type
// (gguf_value.cpp) and the writer (gguf_writer.cpp). Not part of loom's API.
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/format/gguf.h"

namespace loom::format {

static_assert(std::endian::native == std::endian::little,
              "GGUF is little-endian and loom reads it in place: big-endian hosts are not supported");

// GGUF keys and tensor names are short in practice; a longer one means a
// corrupt file, and the limit keeps a bad length from allocating much.
constexpr uint64_t kMaxNameBytes = 64 * 1024;
// Arrays of arrays are legal GGUF, but nothing real nests deeply; the limit
// keeps a hostile file from recursing the stack away.
constexpr int kMaxArrayDepth = 8;
constexpr int kMaxDims = 4;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = uint64_t(1) << 30;
inline constexpr std::string_view kAlignmentKey = "general.alignment";

// Reaches into GgufValue's packed storage (it is a friend).
struct GgufValueAccess {
  // An array of integers, bools or floats; `raw` holds, per element, the
  // integer bits (sign-extended for signed types) or the double's bits.
  static GgufValue number_array(GgufType elem, std::vector<uint64_t> raw) {
    GgufValue v;
    v.type_ = GgufType::ARRAY;
    v.elem_ = elem;
    v.nums_ = std::move(raw);
    return v;
  }
  static uint64_t scalar_bits(const GgufValue& v) { return v.bits_; }
  static const std::vector<uint64_t>& raw_numbers(const GgufValue& v) { return v.nums_; }
};

bool is_valid_type(uint32_t t);
bool is_integer_type(GgufType t);
bool is_signed_type(GgufType t);
bool is_float_type(GgufType t);
// Bytes of one encoded scalar (0 for STRING and ARRAY).
size_t scalar_bytes(GgufType t);
// "UINT32", "STRING", "array of FLOAT32" — for error messages.
std::string describe(const GgufValue& v);

// a * b, failing with `where` when the product overflows uint64.
uint64_t checked_mul(uint64_t a, uint64_t b, std::string_view where);
uint64_t checked_add(uint64_t a, uint64_t b, std::string_view where);

// Bytes of a tensor of `shape` (outermost first) stored as ggml type `info`.
// Fails, naming `where` ("FILE: tensor 'X'"), when the innermost dimension is
// not a whole number of blocks or the size overflows.
uint64_t tensor_nbytes(const GgmlTypeInfo& info, const Shape& shape, std::string_view where);

// Validates a general.alignment value; `where` names the file or the writer.
uint64_t alignment_from(const GgufValue& v, std::string_view where);

}  // namespace loom::format
