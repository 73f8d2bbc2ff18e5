// Writing a model in another format: GGUF with llama.cpp's keys and tensor
// names (optionally converting its weight matrices to another type), or a
// Hugging Face folder (config.json + safetensors + tokenizer files). Used by
// `loom convert`.
//
//   model::write_gguf(*src, tokenizer_kv, {.type = DType::Q8_0}, "out.gguf");
//   model::write_hf(*src, tokenizer_kv, {}, "out_dir");
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "loom/core/dtype.h"
#include "loom/format/gguf.h"
#include "loom/model/source.h"

namespace loom::model {

struct ExportOptions {
  std::optional<DType> type = std::nullopt;  // weight matrices to this type; nullopt keeps each tensor's type
  size_t shard_bytes = 0;     // write_hf: split model.safetensors into shards of about this size (0: one file)
  // Optional per-tensor choice (e.g. `loom quantize`'s mixes): given a matrix
  // and the type the rule above picks, returns the type to write.
  std::function<DType(const SourceTensor&, DType)> type_for = nullptr;
};

// Which type a tensor gets: matrices take `type` when their rows split into
// whole blocks (else F16); vectors (norms, biases) stay F32.
DType export_type(const SourceTensor& t, const ExportOptions& options);

using MetadataList = std::vector<std::pair<std::string, format::GgufValue>>;

// Writes every metadata entry and tensor of `source` (plus `extra` metadata,
// e.g. a tokenizer, which overrides keys of the same name) to `path`. Sources
// that keep Hugging Face's Q/K row order (<arch>.rope.style = "neox" on
// llama/deepseek) are permuted to llama.cpp's layout and lose that key, so
// the file is what llama.cpp's converter would write.
void write_gguf(const ModelSource& source, const MetadataList& extra, const ExportOptions& options,
                const std::string& path);

// Writes `source` as a Hugging Face folder `dir` (created if needed):
// config.json, model.safetensors (or shards + model.safetensors.index.json),
// and, when the tokenizer.ggml.* keys of `source` or `extra` hold a
// SentencePiece vocabulary, tokenizer.model + tokenizer_config.json. Q/K rows
// go back to Hugging Face's order and stacked experts are split per expert.
// Supported: llama (incl. Mixtral-style experts), qwen2, qwen2moe, deepseek,
// glm4, chatglm, telechat2 (the layouts of docs/gguf-names.md). Returns notes
// for the user (e.g. a tokenizer that could not be written).
std::vector<std::string> write_hf(const ModelSource& source, const MetadataList& extra, const ExportOptions& options,
                                  const std::string& dir);

}  // namespace loom::model
