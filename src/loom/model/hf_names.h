// Hugging Face <-> GGUF vocabulary, internal to the model room: which
// config.json keys become which llama.cpp metadata keys, and which Hugging
// Face tensor names become which GGUF tensor names, for every architecture
// loom reads from a Hugging Face folder. docs/gguf-names.md lists the result.
//
//   HfModelInfo info = hf_translate_config(config_json, "dir/config.json");
//   std::optional<HfName> n = hf_to_gguf_name(info.layout, "model.layers.3.mlp.up_proj.weight");
//   // n->gguf == "blk.3.ffn_up.weight"
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "loom/format/metadata.h"

namespace loom::model {

// How a family names its tensors: "llama" (model.layers.N.self_attn.q_proj:
// Llama, Mistral, Mixtral, Qwen2, Qwen2-MoE, DeepSeek, GLM-4-0414),
// "chatglm" (transformer.encoder.layers.N.self_attention.query_key_value) or
// "telechat" (transformer.h.N.self_attention.query / key_value).
struct HfModelInfo {
  std::string hf_arch;    // "LlamaForCausalLM"
  std::string gguf_arch;  // "llama"
  std::string layout;     // "llama", "chatglm", "telechat"
  format::Metadata metadata;  // GGUF keys (general.*, <arch>.*)
  int64_t n_expert = 0;       // experts per MoE layer (0: dense)
  bool tied_output = false;   // tie_word_embeddings
  // Llama 3.1-style RoPE scaling ("rope_type": "llama3"): one factor per
  // rotated pair, which llama.cpp's converter stores as rope_freqs.weight.
  std::vector<float> rope_freqs;
};

// Reads config.json (already parsed) into GGUF metadata; throws naming
// `config_path` and the key for unknown architectures and missing keys.
HfModelInfo hf_translate_config(const nlohmann::json& config, const std::string& config_path);

// A Hugging Face tensor name in GGUF terms.
struct HfName {
  std::string gguf;    // "blk.3.ffn_up.weight"; for one expert: the stacked tensor "blk.3.ffn_up_exps.weight"
  int64_t expert = -1;  // >= 0: this is expert `expert` of the stacked tensor `gguf`
  bool ignore = false;  // a buffer the model does not need (rotary inv_freq tables)
};
std::optional<HfName> hf_to_gguf_name(const std::string& layout, const std::string& hf_name);

// The Hugging Face name of a GGUF tensor for `gguf_arch` in `layout` ("" if
// there is none). Expert tensors give the name of expert `expert`.
std::string gguf_to_hf_name(const std::string& layout, const std::string& gguf_arch, const std::string& gguf_name,
                            int64_t expert = 0);

// True if Hugging Face stores this architecture's Q/K rows in "halves" order
// where llama.cpp's GGUF stores them permuted for adjacent-pair RoPE (llama,
// deepseek): loom then presents the weights unpermuted with
// <arch>.rope.style = "neox", and `loom convert` permutes them.
bool hf_rope_is_permuted_in_gguf(const std::string& gguf_arch);

// The permutation itself, on the rows of a [n_head * D, ...] weight or bias
// (row_bytes bytes per row): to_gguf moves each head's rows from halves order
// (i, i + D/2) to adjacent pairs (2i, 2i + 1), as llama.cpp's converter does;
// !to_gguf undoes it.
void permute_qk_rows(const std::byte* src, std::byte* dst, int64_t n_head, int64_t rows, size_t row_bytes,
                     bool to_gguf);

}  // namespace loom::model
