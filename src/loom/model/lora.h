// LoRA adapters in the Hugging Face PEFT layout, and merging them into a
// model's weights at load time. An adapter folder holds adapter_config.json
// ({"peft_type": "LORA", "r", "lora_alpha", "target_modules", ...}) and
// adapter_model.safetensors with, per adapted linear layer W (out, in),
//   base_model.model.model.layers.{l}.self_attn.q_proj.lora_A.weight   (r, in)
//   base_model.model.model.layers.{l}.self_attn.q_proj.lora_B.weight   (out, r)
// in Hugging Face orientation; the merged weight is W + (alpha / r) B A.
//
//   auto src = ModelSource::open("model.gguf");
//   src->merge_lora(LoraAdapter::open("run/step-000200"));   // before model::load
//
// Q/K rows: llama.cpp's GGUF (and llama2.c) store q_proj/k_proj rows
// permuted for adjacent-pair RoPE; B's rows of those targets are in Hugging
// Face order in the file and are permuted like the base when merged into such
// a source, so one adapter serves the GGUF and the Hugging Face model alike.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace loom::model {

// The Llama linear layers an adapter can target, by their PEFT module names:
// q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
const std::vector<std::string>& lora_target_modules();
// Index of `target` in lora_target_modules(); throws naming the known ones.
size_t lora_target_index(const std::string& target);
// "model.layers.{l}.self_attn.q_proj" (or mlp.*) for a target name.
std::string lora_module_path(int64_t layer, const std::string& target);
// The PEFT tensor name of matrix 'A' or 'B' of that module.
std::string peft_lora_name(int64_t layer, const std::string& target, char matrix);

// One adapted linear layer, in Hugging Face orientation (B rows in HF order).
struct LoraPair {
  int64_t layer = 0;
  std::string target;         // "q_proj"
  int64_t rank = 0, in = 0, out = 0;
  std::vector<float> a, b;    // (r, in), (out, r)
};

struct LoraAdapter {
  std::string path;                 // the folder
  int64_t rank = 0;                 // r
  double alpha = 0;                 // lora_alpha
  bool rslora = false;              // use_rslora: the scale is alpha / sqrt(r)
  std::vector<std::string> target_modules;
  std::string base_model;           // base_model_name_or_path
  std::vector<LoraPair> pairs;      // by layer, then target

  double scale() const;
  // Reads and checks a PEFT adapter folder (F32, F16 or BF16 tensors); throws
  // naming the file for a missing file, a non-LoRA config, an unknown tensor
  // name, or shapes that disagree with r.
  static LoraAdapter open(const std::string& dir);
};

// adapter_config.json of a LoRA adapter, as PEFT writes it.
nlohmann::json peft_adapter_config(int64_t rank, double alpha, const std::vector<std::string>& targets,
                                   const std::string& base_model);

// B's rows of a q_proj/k_proj adapter between Hugging Face order and the
// adjacent-pair order of llama.cpp's GGUF (to_gguf) or back; other targets
// are copied. b is (out, r) with out = n_head * head_dim.
std::vector<float> permute_lora_b(const std::vector<float>& b, int64_t out, int64_t rank, int64_t n_head,
                                  bool to_gguf);

}  // namespace loom::model
