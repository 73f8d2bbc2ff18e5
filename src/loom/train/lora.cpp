#include "loom/train/lora.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "loom/core/error.h"
#include "loom/model/hf_names.h"
#include "loom/model/layers.h"
#include "loom/model/lora.h"
#include "loom/model/source.h"

namespace loom::train {

BaseModel load_base_model(const std::string& path) {
  const auto src = model::ModelSource::open(path);
  const std::string arch = src->metadata().get_string("general.architecture", "");
  LOOM_CHECK(arch == "llama", "[train] {}: the architecture is '{}'; LoRA fine-tuning supports llama models", path,
             arch);
  const model::ModelConfig mc = model::read_decoder_config(*src, graph::RopeStyle::Adjacent);
  LOOM_CHECK(mc.n_expert == 0, "[train] {}: a mixture-of-experts model; LoRA fine-tuning supports dense llama models",
             path);
  LOOM_CHECK(mc.head_dim * mc.n_head == mc.n_embd && mc.rope.n_rot == mc.head_dim && mc.rope.freq_scale == 1.0f &&
                 src->find_tensor("rope_freqs.weight") == nullptr,
             "[train] {}: head size {} x {} heads != {}, partial or scaled RoPE: not supported for fine-tuning", path,
             mc.head_dim, mc.n_head, mc.n_embd);
  const model::SourceTensor* embd = src->find_tensor("token_embd.weight");
  LOOM_CHECK(embd != nullptr && embd->shape.rank == 2, "[train] {}: no token_embd.weight matrix", path);
  for (const auto& t : src->tensors())
    LOOM_CHECK(!t.name.ends_with(".bias"), "[train] {}: tensor '{}': models with biases are not supported for "
               "fine-tuning", path, t.name);

  BaseModel b;
  b.path = path;
  LlamaTrainConfig& c = b.config;
  c.vocab_size = embd->shape[0];
  c.dim = mc.n_embd;
  c.n_layers = mc.n_layer;
  c.n_heads = mc.n_head;
  c.n_kv_heads = mc.n_head_kv;
  c.ff_dim = mc.n_ff;
  c.max_seq_len = mc.n_ctx_train;
  c.norm_eps = mc.norm_eps;
  c.rope_base = mc.rope.base;
  c.rope_style = mc.rope.style;
  c.tied_output = src->find_tensor("output.weight") == nullptr;
  for (const ParamSpec& s : llama_param_specs(c)) {
    const auto n = model::hf_to_gguf_name("llama", s.name);
    const model::SourceTensor* t = n ? src->find_tensor(n->gguf) : nullptr;
    LOOM_CHECK(t != nullptr, "[train] {}: no tensor {} ({})", path, n ? n->gguf : s.name, s.name);
    bool same = t->shape.rank == int(s.shape.size());
    for (size_t d = 0; same && d < s.shape.size(); ++d) same = t->shape[int(d)] == s.shape[d];
    LOOM_CHECK(same && t->dtype.has_value(), "[train] {}: {} is {} {}, expected {} values as [{}]", path, t->name,
               t->type_name, t->shape.str(), s.size(), fmt::format("{}", fmt::join(s.shape, ", ")));
    std::vector<float> v(size_t(s.size()));
    const int64_t cols = s.shape.back(), rows = s.size() / cols;
    const size_t rb = row_bytes(*t->dtype, cols);
    for (int64_t r = 0; r < rows; ++r) dequantize_row(*t->dtype, t->data + size_t(r) * rb, v.data() + r * cols, cols);
    b.weights.push_back(std::move(v));
  }
  return b;
}

namespace {

// Converts B of every q_proj/k_proj adapter (to_hf: into Hugging Face order).
std::vector<std::vector<float>> convert_rows(const LlamaTrainConfig& c, const LoraConfig& lora,
                                             std::span<const std::vector<float>> in, bool to_hf) {
  const std::vector<ParamSpec> specs = lora_param_specs(c, lora);
  LOOM_CHECK(in.size() == specs.size(), "[train] {} adapter tensors for {} expected", in.size(), specs.size());
  std::vector<std::vector<float>> out(in.begin(), in.end());
  if (c.rope_style != graph::RopeStyle::Adjacent) return out;  // already Hugging Face's order
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string& n = specs[i].name;
    const bool q = n.find(".q_proj.lora_B.") != std::string::npos, k = n.find(".k_proj.lora_B.") != std::string::npos;
    if (q || k)
      out[i] = model::permute_lora_b(in[i], specs[i].shape[0], specs[i].shape[1], q ? c.n_heads : c.kv_heads(),
                                     /*to_gguf=*/!to_hf);
  }
  return out;
}

}  // namespace

std::vector<std::vector<float>> init_lora_params(const LlamaTrainConfig& c, const LoraConfig& lora, uint64_t seed) {
  const std::vector<ParamSpec> specs = lora_param_specs(c, lora);
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<float> v(size_t(specs[i].size()), 0.0f);
    if (specs[i].name.ends_with(".lora_A.weight")) {
      const double sd = 1.0 / std::sqrt(double(specs[i].shape[1]));
      fill_normal(v, sd, seed ^ (0x9fb21c651e98df25ull * (uint64_t(i) + 1)));
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<std::vector<float>> lora_to_peft(const LlamaTrainConfig& c, const LoraConfig& lora,
                                             std::span<const std::vector<float>> params) {
  return convert_rows(c, lora, params, /*to_hf=*/true);
}

std::vector<std::vector<float>> lora_from_peft(const LlamaTrainConfig& c, const LoraConfig& lora,
                                               std::span<const std::vector<float>> peft) {
  return convert_rows(c, lora, peft, /*to_hf=*/false);
}

}  // namespace loom::train
