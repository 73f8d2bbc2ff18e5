// The Hugging Face -> GGUF vocabulary. Expected keys and names come from
// llama.cpp's converter (convert_hf_to_gguf.py, gguf-py tensor_mapping.py)
// and from real config.json files (GLM-4-9B-chat's is in the shared data);
// values are worked out by hand from those configs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "loom/core/error.h"
#include "loom/model/hf_names.h"
#include "support/test_data.h"

namespace loom::model {
namespace {

using Json = nlohmann::json;

HfModelInfo translate(const std::string& text) { return hf_translate_config(Json::parse(text), "t/config.json"); }

int64_t u(const HfModelInfo& i, const std::string& key) {
  const auto* v = i.metadata.find(key);
  EXPECT_NE(v, nullptr) << key;
  if (!v) return -1;
  EXPECT_EQ(v->type(), format::GgufType::UINT32) << key;
  return v->as_int();
}
double f(const HfModelInfo& i, const std::string& key) {
  const auto* v = i.metadata.find(key);
  EXPECT_NE(v, nullptr) << key;
  if (!v) return -1;
  EXPECT_EQ(v->type(), format::GgufType::FLOAT32) << key;
  return v->as_float();
}

TEST(HfConfig, Llama2_7B) {
  const auto i = translate(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,
    "intermediate_size":11008,"num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":32,
    "max_position_embeddings":4096,"rms_norm_eps":1e-05,"rope_theta":10000.0,"vocab_size":32000,
    "tie_word_embeddings":false,"_name_or_path":"meta-llama/Llama-2-7b-hf"})");
  EXPECT_EQ(i.gguf_arch, "llama");
  EXPECT_EQ(i.layout, "llama");
  EXPECT_EQ(i.metadata.get_string("general.architecture"), "llama");
  EXPECT_EQ(i.metadata.get_string("general.name"), "Llama-2-7b-hf");
  EXPECT_EQ(u(i, "llama.block_count"), 32);
  EXPECT_EQ(u(i, "llama.context_length"), 4096);
  EXPECT_EQ(u(i, "llama.embedding_length"), 4096);
  EXPECT_EQ(u(i, "llama.feed_forward_length"), 11008);
  EXPECT_EQ(u(i, "llama.attention.head_count"), 32);
  EXPECT_EQ(u(i, "llama.attention.head_count_kv"), 32);
  EXPECT_EQ(u(i, "llama.vocab_size"), 32000);
  EXPECT_EQ(u(i, "llama.rope.dimension_count"), 128);
  EXPECT_FLOAT_EQ(f(i, "llama.rope.freq_base"), 10000.0f);
  EXPECT_FLOAT_EQ(f(i, "llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(i.metadata.get_string("llama.rope.style"), "neox");
  EXPECT_EQ(i.metadata.find("llama.expert_count"), nullptr);
}

TEST(HfConfig, Llama3_1RopeScalingBecomesRopeFreqs) {
  const auto i = translate(R"({"architectures":["LlamaForCausalLM"],"hidden_size":4096,"intermediate_size":14336,
    "num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"max_position_embeddings":131072,
    "rms_norm_eps":1e-05,"rope_theta":500000.0,"vocab_size":128256,"rope_scaling":{"factor":8.0,
    "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}})");
  ASSERT_EQ(i.rope_freqs.size(), 64u);
  EXPECT_EQ(i.metadata.find("llama.rope.scaling.type"), nullptr);  // llama.cpp writes the factors instead
  // By hand: pair 0 has wavelength 2 pi, far below 8192 / 4: kept. The last pair,
  // 2 pi * 500000^(126/128) ~ 2.6e6, is beyond 8192: divided by 8. Pair 32
  // (i = 64): wavelength 2 pi sqrt(500000) = 4442.88, between 2048 and 8192:
  // smooth = (8192 / 4442.88 - 1) / 3 = 0.281290, factor 1 / ((1 - smooth) / 8 + smooth) = 2.69448.
  EXPECT_EQ(i.rope_freqs[0], 1.0f);
  EXPECT_EQ(i.rope_freqs[63], 8.0f);
  EXPECT_NEAR(i.rope_freqs[32], 2.69448, 2e-4);
}

TEST(HfConfig, MixtralIsLlamaWithExperts) {
  const auto i = translate(R"({"architectures":["MixtralForCausalLM"],"hidden_size":4096,"intermediate_size":14336,
    "num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"max_position_embeddings":32768,
    "rms_norm_eps":1e-05,"rope_theta":1e6,"vocab_size":32000,"num_local_experts":8,"num_experts_per_tok":2})");
  EXPECT_EQ(i.gguf_arch, "llama");
  EXPECT_EQ(i.n_expert, 8);
  EXPECT_EQ(u(i, "llama.expert_count"), 8);
  EXPECT_EQ(u(i, "llama.expert_used_count"), 2);
  EXPECT_EQ(u(i, "llama.attention.head_count_kv"), 8);
  EXPECT_FLOAT_EQ(f(i, "llama.rope.freq_base"), 1e6f);
}

TEST(HfConfig, Qwen2_5_7B) {
  const auto i = translate(R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":3584,
    "intermediate_size":18944,"num_attention_heads":28,"num_hidden_layers":28,"num_key_value_heads":4,
    "max_position_embeddings":32768,"rms_norm_eps":1e-06,"rope_theta":1000000.0,"vocab_size":152064,
    "tie_word_embeddings":false})");
  EXPECT_EQ(i.gguf_arch, "qwen2");
  EXPECT_EQ(u(i, "qwen2.embedding_length"), 3584);
  EXPECT_EQ(u(i, "qwen2.attention.head_count_kv"), 4);
  EXPECT_FLOAT_EQ(f(i, "qwen2.rope.freq_base"), 1e6f);
  EXPECT_FLOAT_EQ(f(i, "qwen2.attention.layer_norm_rms_epsilon"), 1e-6f);
  // Qwen2 is NeoX in llama.cpp too: no permutation, no style key.
  EXPECT_EQ(i.metadata.find("qwen2.rope.style"), nullptr);
}

TEST(HfConfig, Qwen2Moe) {
  const auto i = translate(R"({"architectures":["Qwen2MoeForCausalLM"],"hidden_size":2048,"intermediate_size":5632,
    "moe_intermediate_size":1408,"shared_expert_intermediate_size":5632,"num_experts":60,"num_experts_per_tok":4,
    "num_attention_heads":16,"num_key_value_heads":16,"num_hidden_layers":24,"rope_theta":1000000.0,
    "rms_norm_eps":1e-06,"max_position_embeddings":8192})");
  EXPECT_EQ(i.gguf_arch, "qwen2moe");
  EXPECT_EQ(u(i, "qwen2moe.expert_count"), 60);
  EXPECT_EQ(u(i, "qwen2moe.expert_used_count"), 4);
  EXPECT_EQ(u(i, "qwen2moe.expert_feed_forward_length"), 1408);
  EXPECT_EQ(u(i, "qwen2moe.expert_shared_feed_forward_length"), 5632);
  EXPECT_EQ(u(i, "qwen2moe.feed_forward_length"), 5632);
}

TEST(HfConfig, DeepseekMoe16B) {
  const auto i = translate(R"({"architectures":["DeepseekForCausalLM"],"hidden_size":2048,"intermediate_size":10944,
    "moe_intermediate_size":1408,"n_routed_experts":64,"n_shared_experts":2,"num_experts_per_tok":6,
    "first_k_dense_replace":1,"num_attention_heads":16,"num_key_value_heads":16,"num_hidden_layers":28,
    "max_position_embeddings":4096,"rms_norm_eps":1e-06,"rope_theta":10000,"vocab_size":102400})");
  EXPECT_EQ(i.gguf_arch, "deepseek");
  EXPECT_EQ(u(i, "deepseek.expert_count"), 64);
  EXPECT_EQ(u(i, "deepseek.expert_shared_count"), 2);
  EXPECT_EQ(u(i, "deepseek.expert_used_count"), 6);
  EXPECT_EQ(u(i, "deepseek.expert_feed_forward_length"), 1408);
  EXPECT_EQ(u(i, "deepseek.leading_dense_block_count"), 1);
  EXPECT_EQ(u(i, "deepseek.rope.dimension_count"), 128);
  EXPECT_EQ(u(i, "deepseek.vocab_size"), 102400);
  EXPECT_FLOAT_EQ(f(i, "deepseek.expert_weights_scale"), 1.0f);
  EXPECT_EQ(i.metadata.get_string("deepseek.rope.scaling.type"), "none");
  EXPECT_EQ(i.metadata.get_string("deepseek.rope.style"), "neox");
}

TEST(HfConfig, Glm4_0414WithNestedRopeParameters) {
  const auto i = translate(R"({"architectures":["Glm4ForCausalLM"],"hidden_size":4096,"intermediate_size":13696,
    "num_attention_heads":32,"num_key_value_heads":2,"head_dim":128,"num_hidden_layers":40,
    "max_position_embeddings":32768,"rms_norm_eps":1e-05,"partial_rotary_factor":0.5,
    "rope_parameters":{"rope_theta":10000.0,"rope_type":"default"},"vocab_size":151552})");
  EXPECT_EQ(i.gguf_arch, "glm4");
  EXPECT_EQ(u(i, "glm4.rope.dimension_count"), 64);  // 128 * 0.5
  EXPECT_EQ(u(i, "glm4.attention.key_length"), 128);
  EXPECT_EQ(u(i, "glm4.attention.value_length"), 128);
  EXPECT_FLOAT_EQ(f(i, "glm4.rope.freq_base"), 10000.0f);
}

TEST(HfConfig, Glm4_9B_ChatFromTheSharedDataIsChatglm) {
  LOOM_DATA(path, "tokenizers/glm4/config.json");
  std::ifstream in(path);
  const auto i = hf_translate_config(Json::parse(in), path);
  EXPECT_EQ(i.gguf_arch, "chatglm");
  EXPECT_EQ(i.layout, "chatglm");
  EXPECT_EQ(u(i, "chatglm.block_count"), 40);
  EXPECT_EQ(u(i, "chatglm.context_length"), 131072);
  EXPECT_EQ(u(i, "chatglm.embedding_length"), 4096);
  EXPECT_EQ(u(i, "chatglm.feed_forward_length"), 13696);
  EXPECT_EQ(u(i, "chatglm.attention.head_count"), 32);
  EXPECT_EQ(u(i, "chatglm.attention.head_count_kv"), 2);
  EXPECT_EQ(u(i, "chatglm.rope.dimension_count"), 64);    // (4096 / 32) * 0.5
  EXPECT_FLOAT_EQ(f(i, "chatglm.rope.freq_base"), 5e6f);  // 10000 * rope_ratio 500
  EXPECT_FLOAT_EQ(f(i, "chatglm.attention.layer_norm_rms_epsilon"), 1.5625e-07f);
}

TEST(HfConfig, TeleChat2) {
  const std::string base = R"("architectures":["Telechat2ForCausalLM"],"model_type":"telechat","hidden_size":4096,
    "n_layer":30,"n_head":32,"num_key_value_heads":null,"ffn_hidden_size":12288,"layer_norm_epsilon":1e-5,
    "vocab_size":131072,)";
  const auto i = translate("{" + base + R"("training_seqlen":8192,"base_seqlen":8192})");
  EXPECT_EQ(i.gguf_arch, "telechat2");
  EXPECT_EQ(i.layout, "telechat");
  EXPECT_EQ(u(i, "telechat2.block_count"), 30);
  EXPECT_EQ(u(i, "telechat2.attention.head_count"), 32);
  EXPECT_EQ(u(i, "telechat2.attention.head_count_kv"), 32);  // null: as many as query heads
  EXPECT_EQ(u(i, "telechat2.feed_forward_length"), 12288);
  EXPECT_EQ(u(i, "telechat2.context_length"), 8192);
  EXPECT_EQ(u(i, "telechat2.rope.dimension_count"), 128);
  EXPECT_EQ(u(i, "telechat2.vocab_size"), 131072);
  EXPECT_FLOAT_EQ(f(i, "telechat2.rope.freq_base"), 10000.0f);
  // Trained at 4x the base length: log2(4) + 1 = 3, alpha = 2^3 - 1 = 7 (modeling_telechat2.py's
  // get_ntk_alpha), base = 10000 * 7^(128 / 126).
  const auto j = translate("{" + base + R"("training_seqlen":32768,"base_seqlen":8192})");
  EXPECT_FLOAT_EQ(f(j, "telechat2.rope.freq_base"), float(10000.0 * std::pow(7.0, 128.0 / 126.0)));
}

TEST(HfConfig, UnknownArchitecturesAndMissingKeysAreNamed) {
  try {
    translate(R"({"architectures":["FooForCausalLM"],"model_type":"foo"})");
    ADD_FAILURE();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("t/config.json"), std::string::npos) << m;
    EXPECT_NE(m.find("unknown architecture 'FooForCausalLM'"), std::string::npos) << m;
    EXPECT_NE(m.find("LlamaForCausalLM"), std::string::npos) << m;  // says what is supported
  }
  try {
    translate(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_attention_heads":8})");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing \"num_hidden_layers\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(translate(R"({"architectures":["LlamaForCausalLM"],"num_hidden_layers":"two"})"), Error);
}

TEST(HfNames, LlamaLayoutAsLlamaCppMapsIt) {
  const std::pair<const char*, const char*> cases[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
      {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
      {"model.layers.11.self_attn.q_proj.weight", "blk.11.attn_q.weight"},
      {"model.layers.11.self_attn.q_proj.bias", "blk.11.attn_q.bias"},
      {"model.layers.3.self_attn.k_proj.weight", "blk.3.attn_k.weight"},
      {"model.layers.3.self_attn.v_proj.bias", "blk.3.attn_v.bias"},
      {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
      {"model.layers.3.post_attention_layernorm.weight", "blk.3.ffn_norm.weight"},
      {"model.layers.3.mlp.gate_proj.weight", "blk.3.ffn_gate.weight"},
      {"model.layers.3.mlp.up_proj.weight", "blk.3.ffn_up.weight"},
      {"model.layers.3.mlp.down_proj.weight", "blk.3.ffn_down.weight"},
      {"model.layers.3.post_self_attn_layernorm.weight", "blk.3.post_attention_norm.weight"},
      {"model.layers.3.post_mlp_layernorm.weight", "blk.3.post_ffw_norm.weight"},
      {"model.layers.3.mlp.gate_up_proj.weight", "blk.3.ffn_up.weight"},
      {"model.layers.3.block_sparse_moe.gate.weight", "blk.3.ffn_gate_inp.weight"},
      {"model.layers.3.mlp.gate.weight", "blk.3.ffn_gate_inp.weight"},
      {"model.layers.3.mlp.shared_expert.up_proj.weight", "blk.3.ffn_up_shexp.weight"},
      {"model.layers.3.mlp.shared_expert_gate.weight", "blk.3.ffn_gate_inp_shexp.weight"},
      {"model.layers.3.mlp.shared_experts.down_proj.weight", "blk.3.ffn_down_shexp.weight"},
  };
  for (const auto& [hf, gguf] : cases) {
    const auto n = hf_to_gguf_name("llama", hf);
    ASSERT_TRUE(n.has_value()) << hf;
    EXPECT_EQ(n->gguf, gguf) << hf;
    EXPECT_EQ(n->expert, -1) << hf;
  }
  const auto e = hf_to_gguf_name("llama", "model.layers.7.block_sparse_moe.experts.5.w2.weight");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->gguf, "blk.7.ffn_down_exps.weight");
  EXPECT_EQ(e->expert, 5);
  const auto q = hf_to_gguf_name("llama", "model.layers.2.mlp.experts.59.gate_proj.weight");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->gguf, "blk.2.ffn_gate_exps.weight");
  EXPECT_EQ(q->expert, 59);
  EXPECT_TRUE(hf_to_gguf_name("llama", "model.layers.0.self_attn.rotary_emb.inv_freq")->ignore);
  for (const char* bad : {"model.layers.x.mlp.up_proj.weight", "model.layers.01.mlp.up_proj.weight",
                          "model.layers.1.mlp.sideways.weight", "model.embed_tokens.scale", "vision.patch.weight"})
    EXPECT_FALSE(hf_to_gguf_name("llama", bad).has_value()) << bad;
}

TEST(HfNames, ChatglmAndTelechatLayouts) {
  const std::tuple<const char*, const char*, const char*> cases[] = {
      {"chatglm", "transformer.embedding.word_embeddings.weight", "token_embd.weight"},
      {"chatglm", "transformer.encoder.final_layernorm.weight", "output_norm.weight"},
      {"chatglm", "transformer.output_layer.weight", "output.weight"},
      {"chatglm", "transformer.encoder.layers.4.self_attention.query_key_value.bias", "blk.4.attn_qkv.bias"},
      {"chatglm", "transformer.encoder.layers.4.self_attention.dense.weight", "blk.4.attn_output.weight"},
      {"chatglm", "transformer.encoder.layers.4.mlp.dense_h_to_4h.weight", "blk.4.ffn_up.weight"},
      {"chatglm", "transformer.encoder.layers.4.mlp.dense_4h_to_h.weight", "blk.4.ffn_down.weight"},
      {"telechat", "transformer.word_embeddings.weight", "token_embd.weight"},
      {"telechat", "transformer.ln_f.weight", "output_norm.weight"},
      {"telechat", "transformer.h.9.self_attention.query.weight", "blk.9.attn_q.weight"},
      {"telechat", "transformer.h.9.self_attention.key_value.weight", "blk.9.attn_kv.weight"},
      {"telechat", "transformer.h.9.self_attention.dense.bias", "blk.9.attn_output.bias"},
      {"telechat", "transformer.h.9.mlp.down_proj.bias", "blk.9.ffn_down.bias"},
      {"telechat", "transformer.h.9.post_attention_layernorm.weight", "blk.9.ffn_norm.weight"},
  };
  for (const auto& [layout, hf, gguf] : cases) {
    const auto n = hf_to_gguf_name(layout, hf);
    ASSERT_TRUE(n.has_value()) << hf;
    EXPECT_EQ(n->gguf, gguf) << hf;
    // And back.
    const std::string arch = std::string(layout) == "chatglm" ? "chatglm" : "telechat2";
    EXPECT_EQ(gguf_to_hf_name(layout, arch, gguf), hf);
  }
  EXPECT_TRUE(hf_to_gguf_name("chatglm", "transformer.rotary_pos_emb.inv_freq")->ignore);
}

TEST(HfNames, ReverseNamesFollowTheArchitecture) {
  EXPECT_EQ(gguf_to_hf_name("llama", "llama", "blk.1.ffn_gate_exps.weight", 3),
            "model.layers.1.block_sparse_moe.experts.3.w1.weight");
  EXPECT_EQ(gguf_to_hf_name("llama", "qwen2moe", "blk.1.ffn_gate_exps.weight", 3),
            "model.layers.1.mlp.experts.3.gate_proj.weight");
  EXPECT_EQ(gguf_to_hf_name("llama", "qwen2moe", "blk.1.ffn_up_shexp.weight"), "model.layers.1.mlp.shared_expert.up_proj.weight");
  EXPECT_EQ(gguf_to_hf_name("llama", "deepseek", "blk.1.ffn_up_shexp.weight"), "model.layers.1.mlp.shared_experts.up_proj.weight");
  EXPECT_EQ(gguf_to_hf_name("llama", "qwen2", "blk.0.attn_q.bias"), "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(gguf_to_hf_name("llama", "llama", "rope_freqs.weight"), "");
}

TEST(HfNames, QkPermutationIsLlamaCppsReshapeSwapaxes) {
  // llama.cpp: w.reshape(n_head, 2, D/2, ...).swapaxes(1, 2).reshape(...), so
  // new row h*D + 2i + j = old row h*D + j*D/2 + i. Two heads of D = 4 rows,
  // each row one float holding its old index:
  std::vector<float> hf = {0, 1, 2, 3, 4, 5, 6, 7}, gguf(8), back(8);
  permute_qk_rows(reinterpret_cast<const std::byte*>(hf.data()), reinterpret_cast<std::byte*>(gguf.data()), 2, 8, 4,
                  true);
  EXPECT_EQ(gguf, (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
  permute_qk_rows(reinterpret_cast<const std::byte*>(gguf.data()), reinterpret_cast<std::byte*>(back.data()), 2, 8, 4,
                  false);
  EXPECT_EQ(back, hf);
  EXPECT_THROW(permute_qk_rows(reinterpret_cast<const std::byte*>(hf.data()), reinterpret_cast<std::byte*>(gguf.data()),
                               3, 8, 4, true),
               Error);
}

}  // namespace
}  // namespace loom::model
