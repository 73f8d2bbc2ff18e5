// Writing a model as GGUF with llama.cpp's keys and tensor names, optionally
// converting its weight matrices to another type. Used by `loom convert`.
//
//   model::write_gguf(*src, tokenizer_kv, {.type = DType::Q8_0}, "out.gguf");
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "loom/core/dtype.h"
#include "loom/format/gguf.h"
#include "loom/model/source.h"

namespace loom::model {

struct ExportOptions {
  std::optional<DType> type;  // weight matrices to this type; nullopt keeps each tensor's type
};

// Which type a tensor gets: matrices take `type` when their rows split into
// whole blocks (else F16); vectors (norms, biases) stay F32.
DType export_type(const SourceTensor& t, const ExportOptions& options);

// Writes every metadata entry and tensor of `source` (plus `extra` metadata,
// e.g. a tokenizer, which overrides keys of the same name) to `path`.
void write_gguf(const ModelSource& source, const std::vector<std::pair<std::string, format::GgufValue>>& extra,
                const ExportOptions& options, const std::string& path);

}  // namespace loom::model
