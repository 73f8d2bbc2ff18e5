#include "loom/model/weights.h"

#include "loom/core/error.h"
#include "loom/format/gguf.h"

namespace loom::model {

WeightBinder::WeightBinder(const ModelSource& source, backend::Backend& backend) : source_(source) {
  const auto& m = source.mapping();
  buffer_ = backend.import_host(m->data(), m->size(), m);
}

Tensor WeightBinder::get(const std::string& name, Shape shape) const {
  Tensor t = optional(name, shape);
  if (!t.defined()) fail("[model] {}: missing tensor '{}' (expected shape {})", source_.path(), name, shape.str());
  return t;
}

Tensor WeightBinder::optional(const std::string& name, Shape shape) const {
  const SourceTensor* s = source_.find_tensor(name);
  if (!s) return {};
  if (!(s->shape == shape))
    fail("[model] {}: tensor '{}' has shape {}, expected {}", source_.path(), name, s->shape.str(), shape.str());
  if (!s->dtype) {
    const auto* info = format::ggml_type_info(s->ggml_type);
    fail("[model] {}: tensor '{}' has type {}, which loom cannot compute with yet; use a file with f32, f16, "
         "bf16, q8_0 or q4_0 weights",
         source_.path(), name, info ? std::string(info->name) : std::to_string(s->ggml_type));
  }
  const auto offset = size_t(s->data - source_.mapping()->data());
  return Tensor(buffer_, offset, *s->dtype, shape);
}

}  // namespace loom::model
