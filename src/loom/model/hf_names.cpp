// The Hugging Face -> GGUF vocabulary: config.json keys to llama.cpp's
// metadata keys (as convert_hf_to_gguf.py writes them) and tensor names to
// llama.cpp's tensor names. TeleChat2, which llama.cpp does not know, gets
// loom's own names (docs/gguf-names.md).
#include "loom/model/hf_names.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <vector>

#include "loom/core/error.h"

namespace loom::model {

namespace {

using format::GgufValue;
using Json = nlohmann::json;

// --- config.json ------------------------------------------------------------------

// Typed, named access to config.json; every error names the file and key.
class Config {
 public:
  Config(const Json& j, std::string path) : j_(j), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // The first of `keys` present with a non-null value.
  const Json* find(std::initializer_list<const char*> keys, const char** found = nullptr) const {
    for (const char* k : keys) {
      auto it = j_.find(k);
      if (it != j_.end() && !it->is_null()) {
        if (found) *found = k;
        return &*it;
      }
    }
    return nullptr;
  }
  std::optional<int64_t> opt_int(std::initializer_list<const char*> keys) const {
    const char* k = nullptr;
    const Json* v = find(keys, &k);
    return v ? std::optional<int64_t>(as_int(*v, k)) : std::nullopt;
  }
  int64_t req_int(std::initializer_list<const char*> keys) const {
    if (auto v = opt_int(keys)) return *v;
    fail("[model] {}: missing \"{}\"{}; is this a complete config.json?", path_, *keys.begin(), also(keys));
  }
  std::optional<double> opt_float(std::initializer_list<const char*> keys) const {
    const char* k = nullptr;
    const Json* v = find(keys, &k);
    return v ? std::optional<double>(as_float(*v, k)) : std::nullopt;
  }
  bool flag(const char* key, bool fallback) const {
    const Json* v = find({key});
    if (!v) return fallback;
    LOOM_CHECK(v->is_boolean(), "[model] {}: \"{}\" is {}, expected true or false", path_, key, v->dump());
    return v->get<bool>();
  }
  std::string str(std::initializer_list<const char*> keys) const {
    const char* k = nullptr;
    const Json* v = find(keys, &k);
    if (!v) return {};
    LOOM_CHECK(v->is_string(), "[model] {}: \"{}\" is {}, expected a string", path_, k, v->dump());
    return v->get<std::string>();
  }
  // RoPE settings: newer configs nest them in rope_parameters (or the older
  // rope_scaling); older ones keep rope_theta at the top level.
  const Json* rope(const char* key) const {
    for (const char* group : {"rope_parameters", "rope_scaling"}) {
      auto g = j_.find(group);
      if (g != j_.end() && g->is_object()) {
        auto it = g->find(key);
        if (it != g->end() && !it->is_null()) return &*it;
      }
    }
    return find({key});
  }
  std::optional<double> rope_float(const char* key) const {
    const Json* v = rope(key);
    return v ? std::optional<double>(as_float(*v, key)) : std::nullopt;
  }

  int64_t as_int(const Json& v, const char* key) const {
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 9e15)
      return int64_t(v.get<double>());
    fail("[model] {}: \"{}\" is {}, expected an integer", path_, key, v.dump());
  }
  double as_float(const Json& v, const char* key) const {
    LOOM_CHECK(v.is_number(), "[model] {}: \"{}\" is {}, expected a number", path_, key, v.dump());
    return v.get<double>();
  }

 private:
  static std::string also(std::initializer_list<const char*> keys) {
    if (keys.size() < 2) return {};
    std::string s = " (or";
    for (auto it = keys.begin() + 1; it != keys.end(); ++it) s += std::string(" \"") + *it + "\"";
    return s + ")";
  }
  const Json& j_;
  std::string path_;
};

struct ArchEntry {
  const char* hf_arch;     // config.json "architectures"[0]
  const char* model_type;  // config.json "model_type" (used when the class is absent)
  const char* gguf_arch;
  const char* layout;
};
constexpr ArchEntry kArchs[] = {
    {"LlamaForCausalLM", "llama", "llama", "llama"},
    {"LLaMAForCausalLM", nullptr, "llama", "llama"},
    {"MistralForCausalLM", "mistral", "llama", "llama"},
    {"MixtralForCausalLM", "mixtral", "llama", "llama"},
    {"Qwen2ForCausalLM", "qwen2", "qwen2", "llama"},
    {"Qwen2MoeForCausalLM", "qwen2_moe", "qwen2moe", "llama"},
    {"DeepseekForCausalLM", "deepseek", "deepseek", "llama"},
    {"Glm4ForCausalLM", "glm4", "glm4", "llama"},
    {"ChatGLMModel", "chatglm", "chatglm", "chatglm"},
    {"ChatGLMForConditionalGeneration", nullptr, "chatglm", "chatglm"},
    {"Telechat2ForCausalLM", "telechat", "telechat2", "telechat"},
    {"TeleChat2ForCausalLM", "telechat2", "telechat2", "telechat"},
    {"TelechatForCausalLM", nullptr, "telechat2", "telechat"},
};

const ArchEntry& detect_arch(const Json& j, const Config& c) {
  std::string cls;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string())
    cls = (*it)[0].get<std::string>();
  const std::string type = c.str({"model_type"});
  for (const auto& e : kArchs)
    if (!cls.empty() && cls == e.hf_arch) return e;
  for (const auto& e : kArchs)
    if (cls.empty() && e.model_type && type == e.model_type) return e;
  std::string known;
  for (const auto& e : kArchs) known += (known.empty() ? "" : ", ") + std::string(e.hf_arch);
  fail("[model] {}: unknown architecture '{}' (model_type '{}'); loom reads Hugging Face folders of: {}", c.path(),
       cls.empty() ? "(none given)" : cls, type, known);
}

void set_u32(format::Metadata& m, const std::string& key, int64_t v, const Config& c) {
  LOOM_CHECK(v >= 0 && v <= int64_t(UINT32_MAX), "[model] {}: {} = {} is out of range", c.path(), key, v);
  m.set(key, GgufValue::make_uint32(uint32_t(v)));
}
void set_f32(format::Metadata& m, const std::string& key, double v) { m.set(key, GgufValue::make_float32(float(v))); }

// Keys every llama-layout family shares (convert_hf_to_gguf.py's TextModel).
void common_llama_keys(format::Metadata& m, const std::string& a, const Config& c, bool need_ff) {
  set_u32(m, a + ".block_count", c.req_int({"num_hidden_layers", "n_layers", "n_layer", "num_layers"}), c);
  if (auto v = c.opt_int({"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length"}))
    set_u32(m, a + ".context_length", *v, c);
  set_u32(m, a + ".embedding_length", c.req_int({"hidden_size", "n_embd", "dim"}), c);
  if (need_ff)
    set_u32(m, a + ".feed_forward_length", c.req_int({"intermediate_size", "n_inner", "hidden_dim"}), c);
  else if (auto v = c.opt_int({"intermediate_size", "n_inner", "hidden_dim"}))
    set_u32(m, a + ".feed_forward_length", *v, c);
  const int64_t heads = c.req_int({"num_attention_heads", "n_head", "n_heads"});
  set_u32(m, a + ".attention.head_count", heads, c);
  set_u32(m, a + ".attention.head_count_kv", c.opt_int({"num_key_value_heads", "n_kv_heads"}).value_or(heads), c);
  if (const Json* t = c.rope("rope_type"); t && t->is_string()) {
    const std::string type = t->get<std::string>();
    const auto factor = c.rope_float("factor");
    if ((type == "linear" || type == "yarn") && factor) {
      m.set(a + ".rope.scaling.type", GgufValue::make_string(type));
      set_f32(m, a + ".rope.scaling.factor", *factor);
      if (type == "yarn")
        if (auto n = c.rope_float("original_max_position_embeddings"))
          set_u32(m, a + ".rope.scaling.original_context_length", int64_t(*n), c);
    } else if (type != "default" && type != "llama3") {
      fail("[model] {}: RoPE scaling '{}' is not supported by loom (it reads default, linear and yarn)", c.path(),
           type);
    }
  } else if (const Json* t2 = c.rope("type"); t2 && t2->is_string() && c.rope_float("factor")) {
    const std::string type = t2->get<std::string>();
    LOOM_CHECK(type == "linear" || type == "yarn" || type == "default",
               "[model] {}: RoPE scaling '{}' is not supported by loom", c.path(), type);
    if (type != "default") {
      m.set(a + ".rope.scaling.type", GgufValue::make_string(type));
      set_f32(m, a + ".rope.scaling.factor", *c.rope_float("factor"));
    }
  }
  if (auto theta = c.rope_float("rope_theta")) set_f32(m, a + ".rope.freq_base", *theta);
  if (auto eps = c.opt_float({"rms_norm_eps", "norm_eps"})) set_f32(m, a + ".attention.layer_norm_rms_epsilon", *eps);
  if (auto e = c.opt_int({"num_local_experts", "num_experts", "n_routed_experts"}))
    set_u32(m, a + ".expert_count", *e, c);
  if (auto k = c.opt_int({"num_experts_per_tok", "num_experts_per_token", "top_k_experts"}))
    set_u32(m, a + ".expert_used_count", *k, c);
  if (auto d = c.opt_int({"head_dim"})) {
    set_u32(m, a + ".attention.key_length", *d, c);
    set_u32(m, a + ".attention.value_length", *d, c);
  }
}

int64_t head_dim(const Config& c) {
  if (auto d = c.opt_int({"head_dim"})) return *d;
  const int64_t heads = c.req_int({"num_attention_heads", "n_head", "n_heads"});
  LOOM_CHECK(heads > 0, "[model] {}: num_attention_heads must be positive", c.path());
  return c.req_int({"hidden_size", "n_embd", "dim"}) / heads;
}

void chatglm_keys(format::Metadata& m, const std::string& a, const Config& c) {
  LOOM_CHECK(c.flag("rmsnorm", true), "[model] {}: \"rmsnorm\": false (LayerNorm ChatGLM) is not supported by loom",
             c.path());
  LOOM_CHECK(!c.flag("apply_residual_connection_post_layernorm", false),
             "[model] {}: apply_residual_connection_post_layernorm is not supported by loom", c.path());
  const int64_t C = c.req_int({"hidden_size", "n_embed"});
  const int64_t heads = c.req_int({"num_attention_heads", "n_head"});
  LOOM_CHECK(heads > 0, "[model] {}: num_attention_heads must be positive", c.path());
  set_u32(m, a + ".context_length", c.opt_int({"seq_length"}).value_or(C), c);
  set_u32(m, a + ".embedding_length", C, c);
  set_u32(m, a + ".feed_forward_length", c.opt_int({"ffn_hidden_size", "intermediate_size"}).value_or(4 * C), c);
  set_u32(m, a + ".block_count", c.req_int({"num_layers", "num_hidden_layers", "n_layer"}), c);
  set_u32(m, a + ".attention.head_count", heads, c);
  const bool mqa = c.flag("multi_query_attention", true);
  set_u32(m, a + ".attention.head_count_kv",
          mqa ? c.opt_int({"multi_query_group_num", "num_key_value_heads"}).value_or(heads) : heads, c);
  set_f32(m, a + ".attention.layer_norm_rms_epsilon", c.opt_float({"layernorm_epsilon"}).value_or(1e-5));
  const int64_t D = c.opt_int({"attention_dim"}).value_or(C / heads);
  const double partial = c.rope_float("partial_rotary_factor").value_or(0.5);
  set_u32(m, a + ".rope.dimension_count", int64_t(double(D) * partial), c);
  set_f32(m, a + ".rope.freq_base", 10000.0 * c.opt_float({"rope_ratio"}).value_or(1.0));
}

// TeleChat2's own Hugging Face code (modeling_telechat2.py) rotates halves
// over the whole head with base 10000, widened by an NTK factor fixed at the
// training length: alpha = 2^ceil(log2(training_seqlen / base_seqlen) + 1) - 1,
// base' = base * alpha^(D / (D - 2)). With training_seqlen == base_seqlen
// (the released models) alpha is 1 and the base stays 10000.
void telechat_keys(format::Metadata& m, const std::string& a, const Config& c) {
  LOOM_CHECK(!c.flag("apply_residual_connection_post_layernorm", false),
             "[model] {}: apply_residual_connection_post_layernorm is not supported by loom", c.path());
  const int64_t C = c.req_int({"hidden_size", "n_embed"});
  const int64_t heads = c.req_int({"n_head", "num_attention_heads"});
  LOOM_CHECK(heads > 0 && C % heads == 0, "[model] {}: hidden_size {} is not a multiple of n_head {}", c.path(), C,
             heads);
  const int64_t D = C / heads;
  set_u32(m, a + ".embedding_length", C, c);
  set_u32(m, a + ".block_count", c.req_int({"n_layer", "num_hidden_layers", "num_layers"}), c);
  set_u32(m, a + ".attention.head_count", heads, c);
  set_u32(m, a + ".attention.head_count_kv", c.opt_int({"num_key_value_heads"}).value_or(heads), c);
  set_u32(m, a + ".feed_forward_length", c.req_int({"ffn_hidden_size", "intermediate_size"}), c);
  set_f32(m, a + ".attention.layer_norm_rms_epsilon", c.opt_float({"layer_norm_epsilon", "rms_norm_eps"}).value_or(1e-5));
  const int64_t train = c.opt_int({"training_seqlen", "max_position_embeddings", "seq_length"}).value_or(8192);
  set_u32(m, a + ".context_length", train, c);
  set_u32(m, a + ".rope.dimension_count", D, c);
  double base = c.rope_float("rope_theta").value_or(10000.0);
  if (auto base_len = c.opt_int({"base_seqlen"}); base_len && *base_len > 0 && D > 2) {
    const double ctx = std::log2(double(train) / double(*base_len)) + 1.0;
    const double alpha = std::max(1.0, std::pow(2.0, std::ceil(ctx)) - 1.0);
    base *= std::pow(alpha, double(D) / double(D - 2));
  }
  set_f32(m, a + ".rope.freq_base", base);
}

// --- tensor names ------------------------------------------------------------------

struct NameEntry {
  const char* hf;    // module path, relative to the layer for layer entries
  const char* gguf;  // GGUF name without ".weight"/".bias", relative to "blk.N." for layer entries
  const char* only_arch = nullptr;  // for gguf -> hf: use this entry only for this GGUF architecture
};

struct Layout {
  const char* name;
  const char* layer_prefix;  // "model.layers."
  std::vector<NameEntry> globals;
  std::vector<NameEntry> layer;
  std::vector<NameEntry> experts;  // hf holds "{E}" for the expert index
  std::vector<const char*> ignored_suffixes;
};

const Layout kLayouts[] = {
    {"llama",
     "model.layers.",
     {{"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"}, {"lm_head", "output"}},
     {{"input_layernorm", "attn_norm"},
      {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"},
      {"post_self_attn_layernorm", "post_attention_norm"},  // GLM-4-0414
      {"post_attention_layernorm", "ffn_norm"},
      {"post_mlp_layernorm", "post_ffw_norm"},              // GLM-4-0414
      {"mlp.gate_proj", "ffn_gate"},
      {"mlp.gate_up_proj", "ffn_up", "glm4"},               // GLM-4-0414: gate rows, then up rows
      {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"},
      {"block_sparse_moe.gate", "ffn_gate_inp", "llama"},   // Mixtral
      {"mlp.gate", "ffn_gate_inp"},                         // Qwen2-MoE, DeepSeek
      {"mlp.shared_expert.gate_proj", "ffn_gate_shexp", "qwen2moe"},
      {"mlp.shared_expert.up_proj", "ffn_up_shexp", "qwen2moe"},
      {"mlp.shared_expert.down_proj", "ffn_down_shexp", "qwen2moe"},
      {"mlp.shared_expert_gate", "ffn_gate_inp_shexp"},     // Qwen2-MoE: [1, C]
      {"mlp.shared_experts.gate_proj", "ffn_gate_shexp"},   // DeepSeek
      {"mlp.shared_experts.up_proj", "ffn_up_shexp"},
      {"mlp.shared_experts.down_proj", "ffn_down_shexp"}},
     {{"block_sparse_moe.experts.{E}.w1", "ffn_gate_exps", "llama"},  // Mixtral
      {"block_sparse_moe.experts.{E}.w3", "ffn_up_exps", "llama"},
      {"block_sparse_moe.experts.{E}.w2", "ffn_down_exps", "llama"},
      {"mlp.experts.{E}.gate_proj", "ffn_gate_exps"},  // Qwen2-MoE, DeepSeek
      {"mlp.experts.{E}.up_proj", "ffn_up_exps"},
      {"mlp.experts.{E}.down_proj", "ffn_down_exps"}},
     {"rotary_emb.inv_freq"}},
    {"chatglm",
     "transformer.encoder.layers.",
     {{"transformer.embedding.word_embeddings", "token_embd"},
      {"transformer.encoder.final_layernorm", "output_norm"},
      {"transformer.output_layer", "output"}},
     {{"input_layernorm", "attn_norm"},
      {"self_attention.query_key_value", "attn_qkv"},
      {"self_attention.dense", "attn_output"},
      {"post_attention_layernorm", "ffn_norm"},
      {"mlp.dense_h_to_4h", "ffn_up"},  // gate rows, then up rows
      {"mlp.dense_4h_to_h", "ffn_down"}},
     {},
     {"rotary_pos_emb.inv_freq"}},
    {"telechat",
     "transformer.h.",
     {{"transformer.word_embeddings", "token_embd"},
      {"transformer.word_embeddings_layernorm", "token_embd_norm"},
      {"transformer.ln_f", "output_norm"},
      {"lm_head", "output"}},
     {{"input_layernorm", "attn_norm"},
      {"self_attention.query", "attn_q"},
      {"self_attention.key_value", "attn_kv"},  // per KV head: D key rows, then D value rows
      {"self_attention.dense", "attn_output"},
      {"post_attention_layernorm", "ffn_norm"},
      {"mlp.gate_proj", "ffn_gate"},
      {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}},
     {},
     {"rotary_emb.inv_freq"}},
};

const Layout& layout_named(const std::string& name) {
  for (const auto& l : kLayouts)
    if (name == l.name) return l;
  fail("[model] unknown Hugging Face name layout '{}'", name);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Parses a non-negative decimal index at the start of `s`; returns the digits used (0 if none).
size_t parse_index(std::string_view s, int64_t* out) {
  size_t i = 0;
  int64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 9) v = v * 10 + (s[i++] - '0');
  *out = v;
  return (i > 0 && (i == 1 || s[0] != '0')) ? i : 0;
}

// The per-pair factors of Llama 3.1's RoPE scaling, computed in float32 as
// convert_hf_to_gguf.py does: high frequencies stay, low ones are divided by
// `factor`, and the band between is blended smoothly.
std::vector<float> llama3_rope_factors(const Config& c, int64_t dim) {
  const float base = float(c.rope_float("rope_theta").value_or(10000.0));
  const float factor = float(c.rope_float("factor").value_or(8.0));
  const float low = float(c.rope_float("low_freq_factor").value_or(1.0));
  const float high = float(c.rope_float("high_freq_factor").value_or(4.0));
  const float old_ctx = float(c.rope_float("original_max_position_embeddings").value_or(8192.0));
  const float low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, float(i) / float(dim));
    const float wavelen = float(2.0 * M_PI) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

}  // namespace

HfModelInfo hf_translate_config(const Json& j, const std::string& path) {
  LOOM_CHECK(j.is_object(), "[model] {}: config.json must hold a JSON object", path);
  Config c(j, path);
  const ArchEntry& e = detect_arch(j, c);
  HfModelInfo info;
  info.hf_arch = e.hf_arch;
  info.gguf_arch = e.gguf_arch;
  info.layout = e.layout;
  const std::string a = e.gguf_arch;
  format::Metadata& m = info.metadata;
  m = format::Metadata(path);
  m.set("general.architecture", GgufValue::make_string(a));
  if (const std::string n = c.str({"_name_or_path"}); !n.empty())
    m.set("general.name", GgufValue::make_string(std::filesystem::path(n).filename().string()));

  if (std::string(e.layout) == "llama") {
    common_llama_keys(m, a, c, /*need_ff=*/a != "qwen2moe");
    if (a == "llama" || a == "deepseek") {
      set_u32(m, a + ".vocab_size", c.req_int({"vocab_size"}), c);
      set_u32(m, a + ".rope.dimension_count", head_dim(c), c);
      m.set(a + ".rope.style", GgufValue::make_string("neox"));  // see hf_rope_is_permuted_in_gguf
    }
    if (a == "qwen2moe" || a == "deepseek") {
      if (auto f = c.opt_int({"moe_intermediate_size"})) set_u32(m, a + ".expert_feed_forward_length", *f, c);
    }
    if (a == "qwen2moe") {
      if (auto f = c.opt_int({"shared_expert_intermediate_size"}))
        set_u32(m, a + ".expert_shared_feed_forward_length", *f, c);
    }
    if (a == "deepseek") {
      m.set(a + ".rope.scaling.type", GgufValue::make_string("none"));
      set_u32(m, a + ".leading_dense_block_count", c.opt_int({"first_k_dense_replace"}).value_or(0), c);
      set_f32(m, a + ".expert_weights_scale", 1.0);
      set_u32(m, a + ".expert_shared_count", c.opt_int({"n_shared_experts"}).value_or(0), c);
    }
    if (a == "glm4") {
      const double partial = c.rope_float("partial_rotary_factor").value_or(0.5);
      set_u32(m, a + ".rope.dimension_count", int64_t(double(head_dim(c)) * partial), c);
    }
  } else if (std::string(e.layout) == "chatglm") {
    chatglm_keys(m, a, c);
  } else {
    telechat_keys(m, a, c);
    set_u32(m, a + ".vocab_size", c.req_int({"vocab_size"}), c);
  }
  if (const GgufValue* n = m.find(a + ".expert_count")) info.n_expert = n->as_int();
  if (const Json* t = c.rope("rope_type"); t && t->is_string() && t->get<std::string>() == "llama3")
    info.rope_freqs = llama3_rope_factors(c, head_dim(c));
  info.tied_output = c.flag("tie_word_embeddings", false);
  return info;
}

std::optional<HfName> hf_to_gguf_name(const std::string& layout_name, const std::string& hf) {
  const Layout& L = layout_named(layout_name);
  for (const char* s : L.ignored_suffixes)
    if (ends_with(hf, s)) return HfName{"", -1, true};
  std::string module, suffix;
  if (ends_with(hf, ".weight")) {
    module = hf.substr(0, hf.size() - 7);
    suffix = ".weight";
  } else if (ends_with(hf, ".bias")) {
    module = hf.substr(0, hf.size() - 5);
    suffix = ".bias";
  } else {
    return std::nullopt;
  }
  for (const auto& e : L.globals)
    if (module == e.hf) return HfName{std::string(e.gguf) + suffix};
  const std::string_view prefix = L.layer_prefix;
  if (module.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  int64_t layer = 0;
  const size_t digits = parse_index(std::string_view(module).substr(prefix.size()), &layer);
  if (digits == 0 || module.size() <= prefix.size() + digits || module[prefix.size() + digits] != '.')
    return std::nullopt;
  const std::string rest = module.substr(prefix.size() + digits + 1);
  const std::string blk = "blk." + std::to_string(layer) + ".";
  for (const auto& e : L.layer)
    if (rest == e.hf) return HfName{blk + e.gguf + suffix};
  for (const auto& e : L.experts) {
    const std::string_view pat = e.hf;
    const size_t at = pat.find("{E}");
    const std::string_view before = pat.substr(0, at), after = pat.substr(at + 3);
    if (rest.size() <= before.size() + after.size() || rest.compare(0, before.size(), before) != 0 ||
        !ends_with(rest, after))
      continue;
    int64_t expert = 0;
    const std::string_view mid = std::string_view(rest).substr(before.size(), rest.size() - before.size() - after.size());
    if (parse_index(mid, &expert) != mid.size()) continue;
    return HfName{blk + e.gguf + suffix, expert};
  }
  return std::nullopt;
}

std::string gguf_to_hf_name(const std::string& layout_name, const std::string& arch, const std::string& gguf,
                            int64_t expert) {
  const Layout& L = layout_named(layout_name);
  std::string module, suffix;
  if (ends_with(gguf, ".weight")) {
    module = gguf.substr(0, gguf.size() - 7);
    suffix = ".weight";
  } else if (ends_with(gguf, ".bias")) {
    module = gguf.substr(0, gguf.size() - 5);
    suffix = ".bias";
  } else {
    return {};
  }
  auto usable = [&](const NameEntry& e) { return e.only_arch == nullptr || arch == e.only_arch; };
  for (const auto& e : L.globals)
    if (module == e.gguf && usable(e)) return e.hf + suffix;
  int64_t layer = 0;
  const size_t digits = module.rfind("blk.", 0) == 0 ? parse_index(std::string_view(module).substr(4), &layer) : 0;
  if (digits == 0 || module.size() <= 4 + digits || module[4 + digits] != '.') return {};
  const std::string rest = module.substr(4 + digits + 1);
  const std::string prefix = L.layer_prefix + std::to_string(layer) + ".";
  for (const auto& e : L.layer)
    if (rest == e.gguf && usable(e)) return prefix + e.hf + suffix;
  for (const auto& e : L.experts) {
    if (rest != e.gguf || !usable(e)) continue;
    std::string hf = e.hf;
    hf.replace(hf.find("{E}"), 3, std::to_string(expert));
    return prefix + hf + suffix;
  }
  return {};
}

bool hf_rope_is_permuted_in_gguf(const std::string& arch) { return arch == "llama" || arch == "deepseek"; }

void permute_qk_rows(const std::byte* src, std::byte* dst, int64_t n_head, int64_t rows, size_t row_bytes,
                     bool to_gguf) {
  LOOM_CHECK(n_head > 0 && rows % n_head == 0 && (rows / n_head) % 2 == 0,
             "[model] cannot permute {} rows into {} heads of an even size", rows, n_head);
  const int64_t D = rows / n_head, half = D / 2;
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t halves = h * D + j * half + i;  // row in Hugging Face order
        const int64_t pairs = h * D + 2 * i + j;      // row in GGUF (adjacent pairs) order
        const int64_t from = to_gguf ? halves : pairs, to = to_gguf ? pairs : halves;
        std::memcpy(dst + size_t(to) * row_bytes, src + size_t(from) * row_bytes, row_bytes);
      }
    }
  }
}

}  // namespace loom::model
