// GGUF (v2 and v3) reading and writing. A GGUF file is untrusted input: every
// count, length, offset and size is checked against the file before use, and
// a bad file gives a loom::Error naming the file and the problem.
// Tensor data stays in the memory mapping (GgufTensor::data points into it).
// Shapes are outermost first (GGUF's ne[] reversed): a weight written by
// llama.cpp with ne = {K, N} reads as Shape{N, K}.
//
//   auto f = GgufFile::open("model.gguf");
//   std::string arch = f->get_string("general.architecture");
//   int64_t layers = f->get_int(arch + ".block_count");
//   const GgufTensor* t = f->find_tensor("token_embd.weight");
//
//   GgufWriter w;
//   w.set("general.architecture", GgufValue::make_string("llama"));
//   w.add_tensor("token_embd.weight", DType::F32, {512, 64}, ptr);
//   w.write("out.gguf");
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/core/dtype.h"
#include "loom/core/tensor.h"
#include "loom/format/mapped_file.h"

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
  GgufType type_ = GgufType::UINT8;
  GgufType elem_ = GgufType::UINT8;
  uint64_t bits_ = 0;   // integer/bool payload (two's complement for signed)
  double float_ = 0;    // float payload
  std::string str_;
  std::vector<std::string> strs_;   // string arrays
  std::vector<uint64_t> nums_;      // integer/bool arrays (bits) and float arrays (as double bits)
  std::vector<GgufValue> items_;    // nested arrays
};

// What loom knows of every ggml tensor type, supported by loom's kernels or not
// (so `loom info` can list any GGUF and sizes can always be checked).
struct GgmlTypeInfo {
  uint32_t id;
  std::string_view name;  // "Q4_K"
  int block_size;         // elements per block
  int type_size;          // bytes per block
  std::optional<DType> dtype;  // loom's dtype, if loom supports the type
};
const GgmlTypeInfo* ggml_type_info(uint32_t id);  // nullptr for unknown ids
uint32_t ggml_type_of(DType t);                    // throws for dtypes GGUF cannot store

struct GgufTensor {
  std::string name;
  uint32_t ggml_type = 0;
  std::optional<DType> dtype;  // nullopt when loom has no kernels for the type
  Shape shape;                 // outermost first
  uint64_t offset = 0;         // from the start of the data section
  uint64_t nbytes = 0;
  const std::byte* data = nullptr;  // inside the mapping
};

class GgufFile {
 public:
  static std::unique_ptr<GgufFile> open(const std::string& path);
  static std::unique_ptr<GgufFile> parse(std::shared_ptr<const MappedFile> file);
  // True if the bytes start with the GGUF magic.
  static bool has_magic(const MappedFile& file);

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  // Required keys: throw "[format] FILE: missing metadata key 'KEY'" or a type error naming the key.
  const GgufValue& at(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  // Optional keys with a default.
  std::string get_string(std::string_view key, std::string_view fallback) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensor> tensors_;
};

// Builds a GGUF v3 file. Tensor data is read from the given pointers when
// write() runs, so it must stay valid until then. write() is atomic: it writes
// PATH.tmp, fsyncs, and renames it over PATH.
class GgufWriter {
 public:
  void set(std::string key, GgufValue value);  // replaces an existing key in place
  void add_tensor(std::string name, DType dtype, Shape shape, const void* data);
  void add_tensor_raw(std::string name, uint32_t ggml_type, Shape shape, const void* data, size_t nbytes);
  void write(const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    uint32_t ggml_type;
    Shape shape;
    const void* data;
    size_t nbytes;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace loom::format
