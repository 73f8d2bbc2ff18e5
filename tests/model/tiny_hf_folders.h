// The tiny models of tiny_models.h as Hugging Face folders: config.json with
// each family's own keys, and model.safetensors with each family's own tensor
// names (experts one tensor per expert), written here from the Hugging Face
// modeling code's conventions — not from loom's name tables.
//
// The same numbers mean what the Hugging Face code makes of them. That differs
// from a GGUF file in two places, which hf_reference_config() accounts for:
// Llama's and DeepSeek's Q/K rows are in "rotate half" order (llama.cpp's
// GGUF permutes them for adjacent pairs), and DeepSeek-MoE's Hugging Face
// code has no routed scaling factor.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "loom/format/safetensors.h"
#include "model/tiny_models.h"

namespace loom::test {

// The float64 reference of the Hugging Face reading of a tiny model's weights.
inline ref::Config hf_reference_config(const TinySpec& s) {
  ref::Config c = s.config;
  if (c.arch == "llama" || c.arch == "deepseek") c.rope_adjacent = false;
  if (c.arch == "deepseek") c.moe_scale = 1.0;
  return c;
}

namespace detail {

// "blk.3.attn_q.weight" -> ("3", "attn_q.weight"); globals -> ("", name).
inline std::pair<std::string, std::string> split_layer(const std::string& gguf) {
  if (gguf.rfind("blk.", 0) != 0) return {"", gguf};
  const size_t dot = gguf.find('.', 4);
  return {gguf.substr(4, dot - 4), gguf.substr(dot + 1)};
}

// Hugging Face name of a (non-expert) tensor, per family.
inline std::string hf_name(const std::string& family, const std::string& gguf) {
  const auto [layer, rest] = split_layer(gguf);
  const size_t dot = rest.rfind('.');
  const std::string base = rest.substr(0, dot), suffix = rest.substr(dot);  // ".weight" / ".bias"
  if (family == "chatglm") {
    if (layer.empty()) {
      if (base == "token_embd") return "transformer.embedding.word_embeddings" + suffix;
      if (base == "output_norm") return "transformer.encoder.final_layernorm" + suffix;
      if (base == "output") return "transformer.output_layer" + suffix;
    }
    const std::map<std::string, std::string> m = {
        {"attn_norm", "input_layernorm"},          {"attn_qkv", "self_attention.query_key_value"},
        {"attn_output", "self_attention.dense"},   {"ffn_norm", "post_attention_layernorm"},
        {"ffn_up", "mlp.dense_h_to_4h"},           {"ffn_down", "mlp.dense_4h_to_h"}};
    return "transformer.encoder.layers." + layer + "." + m.at(base) + suffix;
  }
  if (family == "telechat2") {
    if (layer.empty()) {
      if (base == "token_embd") return "transformer.word_embeddings" + suffix;
      if (base == "token_embd_norm") return "transformer.word_embeddings_layernorm" + suffix;
      if (base == "output_norm") return "transformer.ln_f" + suffix;
      if (base == "output") return "lm_head" + suffix;
    }
    const std::map<std::string, std::string> m = {
        {"attn_norm", "input_layernorm"},       {"attn_q", "self_attention.query"},
        {"attn_kv", "self_attention.key_value"}, {"attn_output", "self_attention.dense"},
        {"ffn_norm", "post_attention_layernorm"}, {"ffn_gate", "mlp.gate_proj"},
        {"ffn_up", "mlp.up_proj"},              {"ffn_down", "mlp.down_proj"}};
    return "transformer.h." + layer + "." + m.at(base) + suffix;
  }
  // The model.layers.N.* families: Llama, Mixtral, Qwen2(-MoE), DeepSeek, GLM-4-0414.
  if (layer.empty()) {
    if (base == "token_embd") return "model.embed_tokens" + suffix;
    if (base == "output_norm") return "model.norm" + suffix;
    if (base == "output") return "lm_head" + suffix;
  }
  const bool mixtral = family == "llama_moe";
  const std::string shared = family == "deepseek" ? "mlp.shared_experts." : "mlp.shared_expert.";
  std::map<std::string, std::string> m = {
      {"attn_norm", "input_layernorm"},
      {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"},
      {"post_attention_norm", "post_self_attn_layernorm"},
      {"ffn_norm", "post_attention_layernorm"},
      {"post_ffw_norm", "post_mlp_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},
      {"ffn_up", family == "glm4" ? "mlp.gate_up_proj" : "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
      {"ffn_gate_inp", mixtral ? "block_sparse_moe.gate" : "mlp.gate"},
      {"ffn_gate_shexp", shared + "gate_proj"},
      {"ffn_up_shexp", shared + "up_proj"},
      {"ffn_down_shexp", shared + "down_proj"},
      {"ffn_gate_inp_shexp", "mlp.shared_expert_gate"}};
  return "model.layers." + layer + "." + m.at(base) + suffix;
}

// Expert e of a stacked expert tensor.
inline std::string hf_expert_name(const std::string& family, const std::string& gguf, int64_t e) {
  const auto [layer, rest] = split_layer(gguf);
  const std::string p = "model.layers." + layer + ".";
  const std::string E = std::to_string(e);
  if (family == "llama_moe") {  // Mixtral: w1 gate, w3 up, w2 down
    const char* w = rest == "ffn_gate_exps.weight" ? "w1" : rest == "ffn_up_exps.weight" ? "w3" : "w2";
    return p + "block_sparse_moe.experts." + E + "." + w + ".weight";
  }
  const char* proj = rest == "ffn_gate_exps.weight" ? "gate_proj"
                     : rest == "ffn_up_exps.weight" ? "up_proj"
                                                    : "down_proj";
  return p + "mlp.experts." + E + "." + proj + ".weight";
}

inline nlohmann::json hf_config(const TinySpec& s) {
  const ref::Config& c = s.config;
  nlohmann::json j;
  if (c.arch == "chatglm") {
    j = {{"architectures", {"ChatGLMModel"}}, {"model_type", "chatglm"},
         {"hidden_size", c.n_embd},           {"ffn_hidden_size", c.n_ff},
         {"num_layers", c.n_layer},           {"num_attention_heads", c.n_head},
         {"kv_channels", c.head_dim},         {"multi_query_attention", true},
         {"multi_query_group_num", c.n_head_kv}, {"layernorm_epsilon", c.eps},
         {"seq_length", 256},                 {"padded_vocab_size", c.n_vocab},
         {"add_qkv_bias", true},              {"add_bias_linear", false},
         {"rmsnorm", true},                   {"apply_residual_connection_post_layernorm", false},
         {"post_layer_norm", true},           {"rope_ratio", 1}};
    return j;
  }
  if (c.arch == "telechat2") {
    j = {{"architectures", {"Telechat2ForCausalLM"}}, {"model_type", "telechat"},
         {"hidden_size", c.n_embd},                  {"n_head", c.n_head},
         {"num_key_value_heads", c.n_head_kv},       {"n_layer", c.n_layer},
         {"ffn_hidden_size", c.n_ff},                {"layer_norm_epsilon", c.eps},
         {"training_seqlen", 256},                   {"base_seqlen", 256},
         {"vocab_size", c.n_vocab},                  {"embed_layernorm", s.embd_norm},
         {"apply_residual_connection_post_layernorm", false}, {"tie_word_embeddings", s.tied}};
    return j;
  }
  j = {{"hidden_size", c.n_embd},
       {"intermediate_size", c.n_ff},
       {"num_hidden_layers", c.n_layer},
       {"num_attention_heads", c.n_head},
       {"num_key_value_heads", c.n_head_kv},
       {"head_dim", c.head_dim},
       {"rms_norm_eps", c.eps},
       {"rope_theta", c.rope_base},
       {"max_position_embeddings", 256},
       {"vocab_size", c.n_vocab},
       {"tie_word_embeddings", s.tied}};
  if (s.name == "llama") {
    j["architectures"] = {"LlamaForCausalLM"};
    j["model_type"] = "llama";
  } else if (s.name == "llama_moe") {
    j["architectures"] = {"MixtralForCausalLM"};
    j["model_type"] = "mixtral";
    j["num_local_experts"] = c.n_expert;
    j["num_experts_per_tok"] = c.n_expert_used;
  } else if (s.name == "qwen2") {
    j["architectures"] = {"Qwen2ForCausalLM"};
    j["model_type"] = "qwen2";
  } else if (s.name == "qwen2moe") {
    j["architectures"] = {"Qwen2MoeForCausalLM"};
    j["model_type"] = "qwen2_moe";
    j["num_experts"] = c.n_expert;
    j["num_experts_per_tok"] = c.n_expert_used;
    j["moe_intermediate_size"] = s.n_ff_exp;
    j["shared_expert_intermediate_size"] = s.n_ff_shared;
    j["norm_topk_prob"] = false;
    j["decoder_sparse_step"] = 1;
  } else if (s.name == "deepseek") {
    j["architectures"] = {"DeepseekForCausalLM"};
    j["model_type"] = "deepseek";
    j["first_k_dense_replace"] = c.n_dense_lead;
    j["n_routed_experts"] = c.n_expert;
    j["n_shared_experts"] = s.n_shared_experts;
    j["num_experts_per_tok"] = c.n_expert_used;
    j["moe_intermediate_size"] = s.n_ff_exp;
    j["norm_topk_prob"] = false;
    j["scoring_func"] = "softmax";
  } else if (s.name == "glm4") {
    j["architectures"] = {"Glm4ForCausalLM"};
    j["model_type"] = "glm4";
    j["partial_rotary_factor"] = double(c.n_rot) / double(c.head_dim);
    j["attention_bias"] = true;
  } else {
    ADD_FAILURE() << "no Hugging Face form for " << s.name;
  }
  return j;
}

}  // namespace detail

// Writes `dir`/config.json and `dir`/model.safetensors for a tiny model.
inline void write_tiny_hf_folder(const TinySpec& s, const ref::Weights& w, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string family = s.config.arch == "telechat2" || s.config.arch == "chatglm" ? s.config.arch : s.name;
  format::SafetensorsWriter out;
  out.set_metadata("format", "pt");
  for (const auto& [name, t] : w) {
    if (name.find("_exps.") != std::string::npos) {
      const int64_t E = t.shape[0], per = int64_t(t.data.size()) / E;
      for (int64_t e = 0; e < E; ++e)
        out.add_tensor(detail::hf_expert_name(family, name, e), DType::F32, {t.shape[1], t.shape[2]},
                       t.data.data() + e * per);
      continue;
    }
    out.add_tensor(detail::hf_name(family, name), DType::F32, t.shape, t.data.data());
  }
  out.write(dir + "/model.safetensors");
  std::ofstream(dir + "/config.json") << detail::hf_config(s).dump(2);
}

}  // namespace loom::test
