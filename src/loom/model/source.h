// ModelSource: the weights and hyper-parameters of a model file, whatever its
// format, in one vocabulary: metadata under llama.cpp's GGUF keys and tensors
// under llama.cpp's GGUF names ("blk.0.attn_q.weight"), with their bytes left
// in the file mapping. Architectures read only this.
//
//   auto src = ModelSource::open("model.gguf");          // or a llama2.c .bin
//   std::string arch = src->metadata().get_string("general.architecture");
//   const SourceTensor* t = src->find_tensor("token_embd.weight");
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loom/core/tensor.h"
#include "loom/format/mapped_file.h"
#include "loom/format/metadata.h"

namespace loom::model {

struct SourceTensor {
  std::string name;
  uint32_t ggml_type = 0;      // the file's type id (GGUF numbering)
  std::optional<DType> dtype;  // nullopt if loom has no kernels for it
  Shape shape;                 // outermost first
  const std::byte* data = nullptr;
  size_t nbytes = 0;
};

class ModelSource {
 public:
  enum class Kind { Gguf, Llama2c };

  // Opens a GGUF file or a llama2.c checkpoint, told apart by content.
  static std::unique_ptr<ModelSource> open(const std::string& path);

  const std::string& path() const { return path_; }
  Kind kind() const { return kind_; }
  const format::Metadata& metadata() const { return metadata_; }
  const std::vector<SourceTensor>& tensors() const { return tensors_; }
  const SourceTensor* find_tensor(std::string_view name) const;
  // The mapping all tensor data points into (kept alive by tensors built from it).
  const std::shared_ptr<const format::MappedFile>& mapping() const { return mapping_; }

 private:
  ModelSource() = default;
  static std::unique_ptr<ModelSource> from_gguf(std::shared_ptr<const format::MappedFile> file);
  static std::unique_ptr<ModelSource> from_llama2c(std::shared_ptr<const format::MappedFile> file);

  std::string path_;
  Kind kind_ = Kind::Gguf;
  format::Metadata metadata_;
  std::vector<SourceTensor> tensors_;
  std::shared_ptr<const format::MappedFile> mapping_;
};

}  // namespace loom::model
