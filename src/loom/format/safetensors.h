// safetensors reading and writing (Hugging Face's weight format: an 8-byte
// little-endian header length, a JSON header naming every tensor's dtype,
// shape and byte range, then the raw little-endian data). A file is untrusted
// input: the header size, every offset and every size are checked, and a bad
// file gives a loom::Error naming the file and the tensor. Data stays in the
// memory mapping (SafetensorsTensor::data points into it).
//
//   auto f = SafetensorsFile::open("model.safetensors");
//   const SafetensorsTensor* t = f->find_tensor("model.embed_tokens.weight");
//   DType dt = f->loom_dtype(*t);                 // throws for I64, F64, ...
//
//   SafetensorsWriter w;
//   w.set_metadata("format", "pt");
//   w.add_tensor("lm_head.weight", DType::BF16, {32000, 4096}, ptr);
//   w.write("model.safetensors");
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

// A header longer than this is not a model's index (real ones are a few MiB at
// most); the limit keeps a header that claims 1 TB from being parsed.
constexpr uint64_t kSafetensorsMaxHeader = uint64_t(100) << 20;

struct SafetensorsTensor {
  std::string name;
  std::string dtype_name;      // as in the file: "BF16", "I64", ...
  std::optional<DType> dtype;  // F32, F16, BF16: the types loom computes with
  int element_size = 0;        // bytes per element
  std::vector<int64_t> dims;   // outermost first; empty for a scalar
  uint64_t offset = 0;         // from the start of the data section
  uint64_t nbytes = 0;
  const std::byte* data = nullptr;  // inside the mapping (not necessarily aligned to element_size)

  // The dims as a loom Shape; throws naming the tensor when the rank exceeds kMaxRank.
  Shape shape(std::string_view file) const;
};

class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  static std::unique_ptr<SafetensorsFile> parse(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<const MappedFile>& mapping() const { return file_; }
  // The "__metadata__" map (string -> string), in file order.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  // Tensors in data order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find_tensor(std::string_view name) const;
  // The tensor's loom dtype; throws "unsupported by loom" naming the file and
  // tensor for types loom does not compute with (I64, F64, U8, BOOL, ...).
  DType loom_dtype(const SafetensorsTensor& t) const;

 private:
  SafetensorsFile() = default;
  std::shared_ptr<const MappedFile> file_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<SafetensorsTensor> tensors_;
};

// Builds a safetensors file. Tensor data is read from the given pointers when
// write() runs, so it must stay valid until then. The header is padded with
// spaces to a multiple of 8 bytes and tensors are laid out largest element
// first, so every tensor starts aligned to its element size with no gaps (the
// format forbids holes). write() is atomic: PATH.tmp, fsync, rename.
class SafetensorsWriter {
 public:
  void set_metadata(std::string key, std::string value);  // replaces an existing key
  // dtype F32, F16 or BF16 (block-quantized types have no safetensors form).
  void add_tensor(std::string name, DType dtype, std::vector<int64_t> dims, const void* data);
  // Any safetensors dtype by name ("I64", "U8", ...); nbytes must match.
  void add_tensor_raw(std::string name, std::string dtype_name, std::vector<int64_t> dims, const void* data,
                      size_t nbytes);
  void write(const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    std::string dtype_name;
    int element_size;
    std::vector<int64_t> dims;
    const void* data;
    size_t nbytes;
  };
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<Pending> tensors_;
};

// Bytes per element of a safetensors dtype name, or 0 if loom does not know it.
int safetensors_element_size(std::string_view dtype_name);
// The safetensors name of a loom dtype ("F32", "F16", "BF16"); throws for others.
std::string_view safetensors_dtype_name(DType t);

}  // namespace loom::format
