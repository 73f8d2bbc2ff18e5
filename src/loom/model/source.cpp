#include "loom/model/source.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"
#include "loom/model/export.h"
#include "loom/model/hf_names.h"
#include "loom/quant/quantize.h"

namespace loom::model {

using format::GgufValue;

const SourceTensor* ModelSource::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::unique_ptr<ModelSource> ModelSource::open(const std::string& path) {
  if (std::filesystem::is_directory(path)) return from_hf_folder(path);
  auto file = format::MappedFile::open(path);
  if (format::GgufFile::has_magic(*file)) return from_gguf(std::move(file));
  if (format::looks_like_llama2c(*file)) return from_llama2c(std::move(file));
  fail("[model] {}: not a GGUF file (no 'GGUF' magic) and not a llama2.c checkpoint (size does not match its header); "
       "give a .gguf model, a llama2.c .bin, or a Hugging Face folder (config.json + *.safetensors)",
       path);
}

std::unique_ptr<ModelSource> ModelSource::from_gguf(std::shared_ptr<const format::MappedFile> file) {
  auto gguf = format::GgufFile::parse(file);
  std::unique_ptr<ModelSource> s(new ModelSource());
  s->path_ = file->path();
  s->kind_ = Kind::Gguf;
  s->metadata_ = gguf->metadata();
  for (const auto& t : gguf->tensors()) {
    const auto* info = format::ggml_type_info(t.ggml_type);
    s->tensors_.push_back(SourceTensor{t.name, t.ggml_type, t.dtype, t.shape, t.data, size_t(t.nbytes), 0,
                                       info ? std::string(info->name) : fmt::format("type {}", t.ggml_type), ""});
  }
  s->storages_.push_back(SourceStorage{file->path(), file->data(), file->size(), file, true});
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
                                       reinterpret_cast<const std::byte*>(data), n * 4, 0, "F32", ""});
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
  s->storages_.push_back(SourceStorage{file->path(), file->data(), file->size(), file, true});
  s->mapping_ = std::move(file);
  return s;
}

size_t ModelSource::add_owned(std::string what, std::shared_ptr<std::vector<std::byte>> bytes) {
  const std::byte* p = bytes->data();
  const size_t n = bytes->size();
  storages_.push_back(SourceStorage{std::move(what), p, n, std::move(bytes), false});
  return storages_.size() - 1;
}

std::string ModelSource::file_name_for(const std::string& name) const {
  if (kind_ != Kind::HuggingFace) return {};
  return gguf_to_hf_name(hf_layout_, metadata_.get_string("general.architecture", ""), name);
}

namespace {

// Tells the kernel this process no longer needs the pages of [p, p + n) of a
// read-only file mapping, so a weight converted at load time does not keep
// its original resident too. Only whole pages inside the range are dropped;
// they would be read back from the file if touched again.
void release_pages(const std::byte* p, size_t n) {
  static const auto page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

void ModelSource::quantize_weights(DType type) {
  LOOM_CHECK(type == DType::F32 || type == DType::F16 || type == DType::BF16 || type == DType::Q8_0 ||
                 type == DType::Q4_0,
             "[model] {}: cannot convert weights to {}; use f32, f16, bf16, q8_0 or q4_0", path_, name(type));
  for (SourceTensor& t : tensors_) {
    if (!t.dtype || t.shape.rank == 0) continue;  // unusable types fail when an architecture asks for them
    const DType to = export_type(t, {.type = type});
    if (to == *t.dtype) continue;
    const int64_t cols = t.shape[-1], rows = t.shape.numel() / std::max<int64_t>(cols, 1);
    const size_t in_rb = row_bytes(*t.dtype, cols), out_rb = row_bytes(to, cols);
    auto out = std::make_shared<std::vector<std::byte>>(out_rb * size_t(rows));
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(*t.dtype, t.data + size_t(r) * in_rb, row.data(), cols);
      quant::quantize_row(to, row.data(), out->data() + size_t(r) * out_rb, cols);
    }
    if (storages_[t.storage].file_backed) release_pages(t.data, t.nbytes);
    t.storage = add_owned(fmt::format("{} as {}", t.name, name(to)), out);
    t.data = out->data();
    t.nbytes = out->size();
    t.dtype = to;
    t.ggml_type = format::ggml_type_of(to);
    t.type_name = std::string(format::ggml_type_info(t.ggml_type)->name);
  }
}

}  // namespace loom::model
