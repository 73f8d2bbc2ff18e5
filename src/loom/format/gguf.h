// GGUF (v2 and v3) reading and writing. A GGUF file is untrusted input: every
// count, length, offset and size is checked against the file before use, and
// a bad file gives a loom::Error naming the file and the problem.
// Tensor data stays in the memory mapping (GgufTensor::data points into it).
// Shapes are outermost first (GGUF's ne[] reversed): a weight written by
// llama.cpp with ne = {K, N} reads as Shape{N, K}.
//
//   auto f = GgufFile::open("model.gguf");
//   std::string arch = f->metadata().get_string("general.architecture");
//   int64_t layers = f->metadata().get_int(arch + ".block_count");
//   const GgufTensor* t = f->find_tensor("token_embd.weight");
//
//   GgufWriter w;
//   w.set("general.architecture", GgufValue::make_string("llama"));
//   w.add_tensor("token_embd.weight", DType::F32, {512, 64}, ptr);
//   w.write("out.gguf");
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/core/dtype.h"
#include "loom/core/tensor.h"
#include "loom/format/mapped_file.h"
#include "loom/format/metadata.h"

namespace loom::format {

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

  // Getters of required keys throw "[format] FILE: missing metadata key 'KEY'"
  // or a type error naming the file and the key.
  const Metadata& metadata() const { return metadata_; }

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  Metadata metadata_;
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
  // A tensor whose bytes `fill` produces into a buffer of its size during
  // write(), one tensor at a time: writes files larger than memory.
  void add_tensor_generated(std::string name, DType dtype, Shape shape, std::function<void(std::byte*)> fill);
  void write(const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    uint32_t ggml_type;
    Shape shape;
    const void* data;
    size_t nbytes;
    std::function<void(std::byte*)> fill;  // set instead of data for generated tensors
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace loom::format
