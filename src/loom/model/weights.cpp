#include "loom/model/weights.h"

#include "loom/core/error.h"

namespace loom::model {

namespace {
// " (model.layers.0.self_attn.q_proj.weight in model.safetensors)" when the file used another name.
std::string from(const SourceTensor& s) { return s.origin.empty() ? "" : " (" + s.origin + ")"; }
}  // namespace

WeightBinder::WeightBinder(const ModelSource& source, backend::Backend& backend) : source_(source) {
  for (const SourceStorage& st : source.storages()) buffers_.push_back(backend.import_host(st.data, st.size, st.owner, st.file_backed));
}

Tensor WeightBinder::get(const std::string& name, Shape shape) const {
  Tensor t = optional(name, shape);
  if (!t.defined()) {
    const std::string hf = source_.file_name_for(name);
    fail("[model] {}: missing tensor '{}' (expected shape {}){}; the file is incomplete or not this architecture",
         source_.path(), name, shape.str(), hf.empty() ? "" : " — a Hugging Face folder names it '" + hf + "'");
  }
  return t;
}

Tensor WeightBinder::optional(const std::string& name, Shape shape) const {
  const SourceTensor* s = source_.find_tensor(name);
  if (!s) return {};
  if (!(s->shape == shape))
    fail("[model] {}: tensor '{}'{} has shape {}, expected {}; the file does not match its hyper-parameters",
         source_.path(), name, from(*s), s->shape.str(), shape.str());
  if (!s->dtype)
    fail("[model] {}: tensor '{}'{} has type {}, which loom cannot compute with yet; use a file with f32, f16, "
         "bf16, q8_0 or q4_0 weights",
         source_.path(), name, from(*s), s->type_name);
  LOOM_CHECK(s->storage < buffers_.size(), "[model] {}: tensor '{}' points into storage {} of {}", source_.path(),
             name, s->storage, buffers_.size());
  const SourceStorage& st = source_.storages()[s->storage];
  const auto offset = size_t(s->data - st.data);
  LOOM_CHECK(s->data >= st.data && offset + s->nbytes <= st.size, "[model] {}: tensor '{}' lies outside its storage",
             source_.path(), name);
  return Tensor(buffers_[s->storage], offset, *s->dtype, shape);
}

}  // namespace loom::model
