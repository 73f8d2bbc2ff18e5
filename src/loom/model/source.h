// ModelSource: the weights and hyper-parameters of a model, whatever its
// format, in one vocabulary: metadata under llama.cpp's GGUF keys and tensors
// under llama.cpp's GGUF names ("blk.0.attn_q.weight"), with their bytes left
// in the file mappings. Architectures read only this. Sources: a GGUF file, a
// llama2.c checkpoint, or a Hugging Face folder (config.json + safetensors,
// see hf_source.cpp and docs/gguf-names.md).
//
//   auto src = ModelSource::open("model.gguf");          // or a llama2.c .bin, or a folder
//   std::string arch = src->metadata().get_string("general.architecture");
//   const SourceTensor* t = src->find_tensor("token_embd.weight");
//   src->quantize_weights(DType::Q8_0);                   // optional: matrices to q8_0 in owned memory
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loom/core/tensor.h"
#include "loom/format/mapped_file.h"
#include "loom/format/metadata.h"

namespace loom::model {

struct LoraAdapter;  // lora.h

struct SourceTensor {
  std::string name;
  uint32_t ggml_type = 0;      // the type id in GGUF numbering (kNoGgmlType if GGUF has none)
  std::optional<DType> dtype;  // nullopt if loom has no kernels for it
  Shape shape;                 // outermost first
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  size_t storage = 0;          // index into ModelSource::storages() of the memory `data` points into
  std::string type_name = {};  // the type as the file names it ("Q4_K", "BF16", "I64"), for messages
  std::string origin = {};     // where it came from when the file used another name, e.g.
                               // "model.layers.0.self_attn.q_proj.weight in model-00001-of-00002.safetensors"
};

// A block of memory that tensors point into: a file mapping (zero-copy), or
// bytes the source owns (tensors it had to derive: stacked experts, weights
// converted at load time).
struct SourceStorage {
  std::string name;                    // the file, or what the bytes are
  const std::byte* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner;   // keeps `data` alive
  bool file_backed = false;            // a read-only file mapping (pages can be dropped and re-read)
};

inline constexpr uint32_t kNoGgmlType = UINT32_MAX;

class ModelSource {
 public:
  enum class Kind { Gguf, Llama2c, HuggingFace };

  // Opens a GGUF file or a llama2.c checkpoint (told apart by content), or a
  // Hugging Face folder (config.json with model.safetensors, or sharded
  // *.safetensors with model.safetensors.index.json).
  static std::unique_ptr<ModelSource> open(const std::string& path);

  const std::string& path() const { return path_; }
  Kind kind() const { return kind_; }
  const format::Metadata& metadata() const { return metadata_; }
  const std::vector<SourceTensor>& tensors() const { return tensors_; }
  const SourceTensor* find_tensor(std::string_view name) const;
  // The memory blocks tensor data points into (see SourceTensor::storage).
  const std::vector<SourceStorage>& storages() const { return storages_; }
  // The file mapping of a GGUF or llama2.c source (null for a folder).
  const std::shared_ptr<const format::MappedFile>& mapping() const { return mapping_; }
  // For messages about a missing tensor: the name the file would use for the
  // GGUF name `name` ("model.layers.3.mlp.up_proj.weight"), or "" if the same.
  std::string file_name_for(const std::string& name) const;

  // Converts the weight matrices to `type` (q8_0, q4_0, f16, ...) into owned
  // memory, with the rule of `loom convert --type` (model::export_type):
  // matrices whose rows split into whole blocks take `type`, other matrices
  // F16, vectors F32. This copies every converted weight; the file mappings
  // stay (their pages are only read once, and the kernel may drop them).
  void quantize_weights(DType type);

  // Adds an adapter's (alpha / r) B A to every weight it targets (lora.h);
  // those weights become F32 in owned memory (quantized ones dequantized
  // first), the others stay in the file mapping. Throws naming the adapter for
  // a tensor the model does not have or a shape that does not match.
  void merge_lora(const LoraAdapter& adapter);

 private:
  ModelSource() = default;
  static std::unique_ptr<ModelSource> from_gguf(std::shared_ptr<const format::MappedFile> file);
  static std::unique_ptr<ModelSource> from_llama2c(std::shared_ptr<const format::MappedFile> file);
  static std::unique_ptr<ModelSource> from_hf_folder(const std::string& dir);  // hf_source.cpp
  // Adds owned bytes as a new storage; returns its index.
  size_t add_owned(std::string what, std::shared_ptr<std::vector<std::byte>> bytes);

  std::string path_;
  Kind kind_ = Kind::Gguf;
  format::Metadata metadata_;
  std::vector<SourceTensor> tensors_;
  std::vector<SourceStorage> storages_;
  std::shared_ptr<const format::MappedFile> mapping_;
  std::string hf_layout_;  // Hugging Face folders: the name table used (hf_names.h), for file_name_for()
};

}  // namespace loom::model
