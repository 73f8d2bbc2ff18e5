// LoRA fine-tuning of a loaded model: the base model (GGUF, llama2.c or
// Hugging Face folder, through the model room's ModelSource) becomes frozen
// F32 weights of the training graph (llama_train.h with a LoraConfig), and the
// trained adapters go into checkpoints in the Hugging Face PEFT layout
// (model/lora.h), which `loom run --lora DIR` merges at load time.
//
//   BaseModel base = train::load_base_model("model.gguf");
//   LoraConfig lora{.rank = 8, .alpha = 16};
//   auto adapters = train::init_lora_params(base.config, lora, /*seed=*/1);
//   LlamaTrainStep step(base.config, backend, 8, 64, {.lora = lora});
//   step.set_frozen(base.weights);
//   float loss = step.run(adapters, tokens, targets);
//
// Orientation: the training graph computes with the base's own q_proj/k_proj
// row order (a GGUF's rows are permuted for RoPE on adjacent pairs, and the
// graph then uses RopeStyle::Adjacent, as inference does), so B of a q/k
// adapter has its rows in that order; lora_to_peft/lora_from_peft convert to
// and from Hugging Face order for the files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "loom/train/llama_train.h"

namespace loom::train {

struct BaseModel {
  std::string path;
  LlamaTrainConfig config;                  // shapes, norm eps, RoPE base and style of the file
  std::vector<std::vector<float>> weights;  // llama_param_specs(config) order, dequantized to F32
};

// Reads a Llama-architecture model (dense, no biases, no RoPE scaling) for
// fine-tuning; throws naming the file and what loom cannot train.
BaseModel load_base_model(const std::string& path);

// Initial adapters in lora_param_specs order: A ~ N(0, 1/in) (the variance
// that keeps x A^T at the scale of x, as PEFT's Kaiming-uniform A does), each
// from its own SplitMix64 stream of `seed`; B = 0, so training starts from
// the base model exactly.
std::vector<std::vector<float>> init_lora_params(const LlamaTrainConfig& c, const LoraConfig& lora, uint64_t seed);

// The adapters with B's q/k rows in Hugging Face order (what the PEFT file
// holds), from the training graph's order, and back.
std::vector<std::vector<float>> lora_to_peft(const LlamaTrainConfig& c, const LoraConfig& lora,
                                             std::span<const std::vector<float>> params);
std::vector<std::vector<float>> lora_from_peft(const LlamaTrainConfig& c, const LoraConfig& lora,
                                               std::span<const std::vector<float>> peft);

}  // namespace loom::train
