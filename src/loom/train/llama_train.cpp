#include "loom/train/llama_train.h"

#include <array>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/core/half.h"
#include "loom/graph/ops.h"
#include "loom/graph/train_ops.h"
#include "loom/model/lora.h"
#include "loom/train/backward.h"

namespace loom::train {

using graph::Value;

void LlamaTrainConfig::check() const {
  LOOM_CHECK(vocab_size > 0 && dim > 0 && n_layers > 0 && n_heads > 0 && ff_dim > 0,
             "[train] model sizes must be positive (vocab {}, dim {}, layers {}, heads {}, ff {})", vocab_size, dim,
             n_layers, n_heads, ff_dim);
  LOOM_CHECK(dim % n_heads == 0 && head_dim() % 2 == 0,
             "[train] dim {} must be a multiple of the heads {} with an even head size (RoPE rotates pairs)", dim,
             n_heads);
  LOOM_CHECK(kv_heads() > 0 && n_heads % kv_heads() == 0, "[train] the heads {} must be a multiple of the KV heads {}",
             n_heads, kv_heads());
  LOOM_CHECK(max_seq_len > 0 && norm_eps >= 0 && rope_base > 0, "[train] bad context length, norm eps or rope base");
}

nlohmann::json LlamaTrainConfig::hf_config(int32_t bos_token_id, int32_t eos_token_id) const {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"vocab_size", vocab_size},
                      {"hidden_size", dim},
                      {"intermediate_size", ff_dim},
                      {"num_hidden_layers", n_layers},
                      {"num_attention_heads", n_heads},
                      {"num_key_value_heads", kv_heads()},
                      {"head_dim", head_dim()},
                      {"max_position_embeddings", max_seq_len},
                      {"rms_norm_eps", norm_eps},
                      {"rope_theta", rope_base},
                      {"hidden_act", "silu"},
                      {"tie_word_embeddings", tied_output},
                      {"torch_dtype", "float32"}};
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  return j;
}

LlamaTrainConfig LlamaTrainConfig::from_hf_config(const nlohmann::json& j) {
  LlamaTrainConfig c;
  c.vocab_size = j.at("vocab_size").get<int64_t>();
  c.dim = j.at("hidden_size").get<int64_t>();
  c.ff_dim = j.at("intermediate_size").get<int64_t>();
  c.n_layers = j.at("num_hidden_layers").get<int64_t>();
  c.n_heads = j.at("num_attention_heads").get<int64_t>();
  c.n_kv_heads = j.value("num_key_value_heads", c.n_heads);
  c.max_seq_len = j.value("max_position_embeddings", int64_t(2048));
  c.norm_eps = j.value("rms_norm_eps", 1e-5f);
  c.rope_base = j.value("rope_theta", 10000.0f);
  c.tied_output = j.value("tie_word_embeddings", false);
  return c;
}

void LoraConfig::check() const {
  LOOM_CHECK(rank > 0 && alpha > 0, "[train] LoRA rank {} and alpha {} must be positive", rank, alpha);
  LOOM_CHECK(!targets.empty(), "[train] LoRA needs at least one target module (--lora-targets)");
  for (const std::string& t : targets) (void)model::lora_target_index(t);  // throws naming an unknown one
}

int64_t ParamSpec::size() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<ParamSpec> llama_param_specs(const LlamaTrainConfig& c) {
  c.check();
  const int64_t C = c.dim, D = c.head_dim(), Hq = c.n_heads, Hkv = c.kv_heads(), F = c.ff_dim;
  std::vector<ParamSpec> p;
  p.push_back({"model.embed_tokens.weight", {c.vocab_size, C}, true});  // (V, C)
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string b = fmt::format("model.layers.{}.", l);
    p.push_back({b + "input_layernorm.weight", {C}, false});
    p.push_back({b + "self_attn.q_proj.weight", {Hq * D, C}, true});
    p.push_back({b + "self_attn.k_proj.weight", {Hkv * D, C}, true});
    p.push_back({b + "self_attn.v_proj.weight", {Hkv * D, C}, true});
    p.push_back({b + "self_attn.o_proj.weight", {C, Hq * D}, true});
    p.push_back({b + "post_attention_layernorm.weight", {C}, false});
    p.push_back({b + "mlp.gate_proj.weight", {F, C}, true});
    p.push_back({b + "mlp.up_proj.weight", {F, C}, true});
    p.push_back({b + "mlp.down_proj.weight", {C, F}, true});
  }
  p.push_back({"model.norm.weight", {C}, false});
  if (!c.tied_output) p.push_back({"lm_head.weight", {c.vocab_size, C}, true});
  return p;
}

std::vector<ParamSpec> lora_param_specs(const LlamaTrainConfig& c, const LoraConfig& lora) {
  c.check();
  lora.check();
  const int64_t C = c.dim, D = c.head_dim(), r = lora.rank;
  const int64_t Q = c.n_heads * D, KV = c.kv_heads() * D, F = c.ff_dim;
  // (out, in) of each target, in model::lora_target_modules() order.
  const int64_t out_in[7][2] = {{Q, C}, {KV, C}, {KV, C}, {C, Q}, {F, C}, {F, C}, {C, F}};
  std::vector<bool> on(7, false);
  for (const std::string& t : lora.targets) on[model::lora_target_index(t)] = true;
  std::vector<ParamSpec> p;
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (size_t t = 0; t < 7; ++t) {
      if (!on[t]) continue;
      const std::string& name = model::lora_target_modules()[t];
      p.push_back({model::peft_lora_name(l, name, 'A'), {r, out_in[t][1]}, true});  // (r, in)
      p.push_back({model::peft_lora_name(l, name, 'B'), {out_in[t][0], r}, true});  // (out, r)
    }
  return p;
}

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

void fill_normal(std::span<float> v, double sd, uint64_t stream_seed) {
  uint64_t s = stream_seed;
  for (size_t j = 0; j < v.size(); j += 2) {
    // Box-Muller on two uniforms in (0, 1].
    const double u1 = (double(splitmix64(s) >> 11) + 1.0) / 9007199254740992.0;
    const double u2 = double(splitmix64(s) >> 11) / 9007199254740992.0;
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    v[j] = float(sd * r * std::cos(a));
    if (j + 1 < v.size()) v[j + 1] = float(sd * r * std::sin(a));
  }
}

std::vector<std::vector<float>> init_llama_params(const LlamaTrainConfig& c, uint64_t seed) {
  const std::vector<ParamSpec> specs = llama_param_specs(c);
  std::vector<std::vector<float>> out;
  const double residual_scale = 1.0 / std::sqrt(2.0 * double(c.n_layers));
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<float> v(size_t(specs[i].size()));
    if (specs[i].shape.size() == 1) {
      std::fill(v.begin(), v.end(), 1.0f);
    } else {
      double sd = 0.02;
      if (ends_with(specs[i].name, "o_proj.weight") || ends_with(specs[i].name, "down_proj.weight"))
        sd *= residual_scale;
      fill_normal(v, sd, seed ^ (0xd1b54a32d192ed03ull * (uint64_t(i) + 1)));
    }
    out.push_back(std::move(v));
  }
  return out;
}

LlamaTrainGraph build_llama_train_graph(graph::Graph& g, const LlamaTrainConfig& c, int64_t batch, int64_t seq_len,
                                        const LoraConfig& lora, DType matrix_type) {
  LOOM_CHECK(matrix_type == DType::F32 || matrix_type == DType::BF16,
             "[train] the weight matrices are f32 or bf16 in the training graph, not {}", name(matrix_type));
  const std::vector<ParamSpec> specs = llama_param_specs(c);
  LOOM_CHECK(batch > 0 && seq_len > 0, "[train] batch {} and sequence length {} must be positive", batch, seq_len);
  const int64_t N = batch * seq_len, D = c.head_dim(), Hq = c.n_heads, Hkv = c.kv_heads();
  LlamaTrainGraph net;
  net.tokens = g.input("tokens", DType::I32, {N});
  net.positions = g.input("positions", DType::I32, {N});
  net.targets = g.input("targets", DType::I32, {N});
  auto add_inputs = [&](const std::vector<ParamSpec>& list, std::vector<Value>& out, DType matrices) {
    for (const ParamSpec& s : list) {
      Shape shape;
      shape.rank = int(s.shape.size());
      for (size_t d = 0; d < s.shape.size(); ++d) shape.dims[d] = s.shape[d];
      out.push_back(g.input(s.name, shape.rank == 2 ? matrices : DType::F32, shape));
    }
  };
  std::vector<Value>& base = lora.enabled() ? net.frozen : net.params;
  add_inputs(specs, base, matrix_type);
  // Adapters of layer l, target t (model::lora_target_modules order): A, B or invalid.
  std::vector<std::array<Value, 2>> adapters(size_t(c.n_layers * 7));
  if (lora.enabled()) {
    add_inputs(lora_param_specs(c, lora), net.params, DType::F32);  // adapters stay f32: they are small
    std::vector<bool> on(7, false);
    for (const std::string& t : lora.targets) on[model::lora_target_index(t)] = true;
    size_t i = 0;
    for (int64_t l = 0; l < c.n_layers; ++l)
      for (size_t t = 0; t < 7; ++t)
        if (on[t]) {
          adapters[size_t(l) * 7 + t] = {net.params[i], net.params[i + 1]};
          i += 2;
        }
  }
  // x W^T, plus (alpha/r) (x A^T) B^T when (l, t) is adapted.
  auto linear = [&](Value x, Value w, int64_t l, size_t t) {
    const Value y = graph::matmul(x, w);  // (N, out)
    const auto& [a, b] = adapters[size_t(l) * 7 + t];
    if (!a.valid()) return y;
    const Value low = graph::matmul(graph::matmul(x, a), b);  // (N, r) -> (N, out)
    return graph::add(y, graph::scale(low, lora.scale()));
  };
  const graph::Rope rope{int32_t(D), c.rope_base, 1.0f, c.rope_style};
  const graph::CausalAttention attn{float(1.0 / std::sqrt(double(D))), int32_t(seq_len)};
  size_t k = 0;
  const Value embd = base[k++];
  Value x = graph::get_rows(embd, net.tokens);  // (N, C)
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const Value attn_norm = base[k++], wq = base[k++], wk = base[k++], wv = base[k++], wo = base[k++],
                ffn_norm = base[k++], wgate = base[k++], wup = base[k++], wdown = base[k++];
    Value h = graph::rms_norm(x, attn_norm, c.norm_eps);                   // (N, C)
    Value q = graph::reshape(linear(h, wq, l, 0), {N, Hq, D});             // (N, Hq, D)
    Value kk = graph::reshape(linear(h, wk, l, 1), {N, Hkv, D});           // (N, Hkv, D)
    const Value v = graph::reshape(linear(h, wv, l, 2), {N, Hkv, D});      // (N, Hkv, D)
    q = graph::rope(q, net.positions, rope);
    kk = graph::rope(kk, net.positions, rope);
    const Value a = graph::reshape(graph::causal_attention(q, kk, v, attn), {N, Hq * D});  // (N, Hq*D)
    x = graph::add(x, linear(a, wo, l, 3));                                                 // (N, C)
    h = graph::rms_norm(x, ffn_norm, c.norm_eps);                                           // (N, C)
    const Value act = graph::swiglu(linear(h, wgate, l, 4), linear(h, wup, l, 5));          // (N, F)
    x = graph::add(x, linear(act, wdown, l, 6));                                            // (N, C)
    net.layer_outputs.push_back(x);
  }
  const Value out_norm = base[k++];
  const Value head = c.tied_output ? embd : base[k++];
  net.logits = graph::matmul(graph::rms_norm(x, out_norm, c.norm_eps), head);  // (N, V)
  net.loss = graph::cross_entropy(net.logits, net.targets);                    // (1)
  return net;
}

LlamaTrainStep::LlamaTrainStep(const LlamaTrainConfig& c, backend::Backend& backend, int64_t batch, int64_t seq_len,
                               const StepOptions& options)
    : c_(c), batch_(batch), seq_len_(seq_len), o_(options) {
  net_ = build_llama_train_graph(g_, c_, batch, seq_len, o_.lora, o_.bf16 ? DType::BF16 : DType::F32);
  g_.mark_output(net_.loss);
  if (o_.logits) g_.mark_output(net_.logits);
  if (o_.grads) {
    BackwardOptions bo;
    if (o_.recompute) bo.checkpoints = net_.layer_outputs;
    grads_ = backward(g_, net_.loss, net_.params, bo);
    for (Value d : grads_) g_.mark_output(d);
  }
  exe_ = backend.compile(g_);
  positions_.resize(size_t(batch * seq_len));
  for (size_t i = 0; i < positions_.size(); ++i) positions_[i] = int32_t(int64_t(i) % seq_len);
  exe_->set_input(net_.positions, positions_.data(), positions_.size() * 4);
}

LlamaTrainStep::~LlamaTrainStep() = default;

void LlamaTrainStep::set_frozen(std::span<const std::vector<float>> base) {
  LOOM_CHECK(o_.lora.enabled() && base.size() == net_.frozen.size(),
             "[train] step: {} frozen weights for a graph of {} (only LoRA graphs have frozen weights)", base.size(),
             net_.frozen.size());
  for (size_t i = 0; i < base.size(); ++i) {
    LOOM_CHECK(int64_t(base[i].size()) == net_.frozen[i].shape().numel(),
               "[train] step: base weight '{}' has {} values, the graph wants {}", net_.frozen[i].node().name,
               base[i].size(), net_.frozen[i].shape().numel());
    set_weights(net_.frozen[i], base[i]);
  }
  frozen_set_ = true;
}

void LlamaTrainStep::set_weights(graph::Value input, std::span<const float> values) {
  if (input.dtype() != DType::BF16) {
    exe_->set_input(input, values.data(), values.size() * 4);
    return;
  }
  // BF16 compute copy of the FP32 master values, rounded to nearest even.
  bf16_.resize(values.size());
  for (size_t j = 0; j < values.size(); ++j) bf16_[j] = f32_to_bf16(values[j]);
  exe_->set_input(input, bf16_.data(), bf16_.size() * 2);
}

float LlamaTrainStep::run(std::span<const std::vector<float>> params, std::span<const int32_t> tokens,
                          std::span<const int32_t> targets) {
  const size_t n = size_t(batch_ * seq_len_);
  LOOM_CHECK(tokens.size() == n && targets.size() == n && params.size() == net_.params.size(),
             "[train] step: {} tokens, {} targets and {} parameters for a graph of {} tokens and {} parameters",
             tokens.size(), targets.size(), params.size(), n, net_.params.size());
  LOOM_CHECK(!o_.lora.enabled() || frozen_set_, "[train] step: LoRA graph run before set_frozen() gave the base");
  for (int32_t t : tokens)
    LOOM_CHECK(t >= 0 && t < c_.vocab_size, "[train] token {} is outside the vocabulary of {}", t, c_.vocab_size);
  exe_->set_input(net_.tokens, tokens.data(), n * 4);
  exe_->set_input(net_.targets, targets.data(), n * 4);
  for (size_t i = 0; i < params.size(); ++i) {
    LOOM_CHECK(int64_t(params[i].size()) == net_.params[i].shape().numel(),
               "[train] step: parameter '{}' has {} values, the graph wants {}", net_.params[i].node().name,
               params[i].size(), net_.params[i].shape().numel());
    set_weights(net_.params[i], params[i]);
  }
  exe_->run();
  float loss = 0;
  exe_->read(net_.loss, &loss, 4);
  return loss;
}

void LlamaTrainStep::add_grad(size_t i, std::span<float> acc) {
  LOOM_CHECK(o_.grads && i < grads_.size(), "[train] no gradient {} in this step", i);
  scratch_.resize(acc.size());
  exe_->read(grads_[i], scratch_.data(), scratch_.size() * 4);
  for (size_t j = 0; j < acc.size(); ++j) acc[j] += scratch_[j];
}

std::vector<float> LlamaTrainStep::logits() {
  LOOM_CHECK(o_.logits, "[train] logits were not kept (StepOptions::logits)");
  std::vector<float> out(size_t(batch_ * seq_len_ * c_.vocab_size));
  exe_->read(net_.logits, out.data(), out.size() * 4);
  return out;
}

}  // namespace loom::train
