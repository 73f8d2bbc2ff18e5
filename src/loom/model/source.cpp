#include "loom/model/source.h"

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"

namespace loom::model {

using format::GgufValue;

const SourceTensor* ModelSource::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::unique_ptr<ModelSource> ModelSource::open(const std::string& path) {
  auto file = format::MappedFile::open(path);
  if (format::GgufFile::has_magic(*file)) return from_gguf(std::move(file));
  if (format::looks_like_llama2c(*file)) return from_llama2c(std::move(file));
  fail("[model] {}: not a GGUF file (no 'GGUF' magic) and not a llama2.c checkpoint (size does not match its header); "
       "give a .gguf model or a llama2.c .bin",
       path);
}

std::unique_ptr<ModelSource> ModelSource::from_gguf(std::shared_ptr<const format::MappedFile> file) {
  auto gguf = format::GgufFile::parse(file);
  std::unique_ptr<ModelSource> s(new ModelSource());
  s->path_ = file->path();
  s->kind_ = Kind::Gguf;
  s->metadata_ = gguf->metadata();
  for (const auto& t : gguf->tensors())
    s->tensors_.push_back(SourceTensor{t.name, t.ggml_type, t.dtype, t.shape, t.data, size_t(t.nbytes)});
  s->mapping_ = std::move(file);
  return s;
}

// A llama2.c checkpoint becomes a "llama" model: its header turns into the
// llama.* keys, and every layer's slice of its [L, ...] arrays into a
// blk.N.* tensor pointing into the file.
std::unique_ptr<ModelSource> ModelSource::from_llama2c(std::shared_ptr<const format::MappedFile> file) {
  const format::Llama2cCheckpoint ck = format::parse_llama2c_checkpoint(file);
  const format::Llama2cConfig& c = ck.config;
  std::unique_ptr<ModelSource> s(new ModelSource());
  s->path_ = file->path();
  s->kind_ = Kind::Llama2c;
  format::Metadata& m = s->metadata_;
  m = format::Metadata(file->path());
  m.set("general.architecture", GgufValue::make_string("llama"));
  m.set("general.name", GgufValue::make_string("llama2.c"));
  m.set("llama.context_length", GgufValue::make_uint32(uint32_t(c.seq_len)));
  m.set("llama.embedding_length", GgufValue::make_uint32(uint32_t(c.dim)));
  m.set("llama.feed_forward_length", GgufValue::make_uint32(uint32_t(c.hidden_dim)));
  m.set("llama.block_count", GgufValue::make_uint32(uint32_t(c.n_layers)));
  m.set("llama.attention.head_count", GgufValue::make_uint32(uint32_t(c.n_heads)));
  m.set("llama.attention.head_count_kv", GgufValue::make_uint32(uint32_t(c.n_kv_heads)));
  m.set("llama.rope.dimension_count", GgufValue::make_uint32(uint32_t(c.dim / c.n_heads)));
  m.set("llama.rope.freq_base", GgufValue::make_float32(10000.0f));
  m.set("llama.attention.layer_norm_rms_epsilon", GgufValue::make_float32(1e-5f));
  m.set("llama.vocab_size", GgufValue::make_uint32(uint32_t(c.vocab_size)));

  auto add = [&](std::string name, const float* data, Shape shape) {
    const size_t n = size_t(shape.numel());
    s->tensors_.push_back(SourceTensor{std::move(name), 0, DType::F32, shape,
                                       reinterpret_cast<const std::byte*>(data), n * 4});
  };
  // Layer l of an array [L, a, b] (or [L, a]).
  auto layer = [&](const format::Llama2cArray& arr, int64_t l) {
    const int64_t per = arr.shape.numel() / arr.shape[0];
    Shape sh = arr.shape.rank == 3 ? Shape{arr.shape[1], arr.shape[2]} : Shape{arr.shape[1]};
    return std::pair<const float*, Shape>(arr.data + l * per, sh);
  };
  add("token_embd.weight", ck.token_embedding.data, ck.token_embedding.shape);
  add("output_norm.weight", ck.rms_final.data, ck.rms_final.shape);
  if (!c.shared_classifier) add("output.weight", ck.wcls.data, ck.wcls.shape);
  const std::pair<const char*, const format::Llama2cArray*> per_layer[] = {
      {"attn_norm", &ck.rms_att}, {"attn_q", &ck.wq},   {"attn_k", &ck.wk},   {"attn_v", &ck.wv},
      {"attn_output", &ck.wo},    {"ffn_norm", &ck.rms_ffn}, {"ffn_gate", &ck.w1}, {"ffn_down", &ck.w2},
      {"ffn_up", &ck.w3}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    for (const auto& [name, arr] : per_layer) {
      auto [ptr, shape] = layer(*arr, l);
      add(fmt::format("blk.{}.{}.weight", l, name), ptr, shape);
    }
  }
  s->mapping_ = std::move(file);
  return s;
}

}  // namespace loom::model
