// The training model: a Llama-architecture decoder (RMSNorm, RoPE, grouped-
// query causal attention, SwiGLU, tied or untied output) built as a graph
// over B sequences of T tokens, with FP32 parameters as graph Inputs under
// their Hugging Face names, so a checkpoint of them is a Llama folder that
// `loom run` loads. Attention is graph::causal_attention (no KV cache); the
// loss is the mean cross-entropy over the B*T targets.
//
//   LlamaTrainConfig c{.vocab_size = 512, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ff_dim = 172};
//   auto values = init_llama_params(c, /*seed=*/1);
//   LlamaTrainStep step(c, backend, /*batch=*/8, /*seq_len=*/64, {.grads = true});
//   float loss = step.run(values, batch.inputs, batch.targets);   // then step.grad(i)
//
// RoPE: Hugging Face's Llama rotates the two halves of each head
// (RopeStyle::Halves) on q_proj/k_proj rows as stored; loom's HF loader reads
// those rows unpermuted with the same style, so the trained weights need no
// permutation on either side. A LoRA fine-tune of a GGUF or llama2.c base
// keeps that file's row order and RopeStyle::Adjacent (rope_style), as the
// inference path does.
//
// LoRA (LoraConfig::rank > 0): the base weights are frozen Inputs (set once
// with set_frozen, no gradient) and every targeted linear W (out, in) gets
//   y = x W^T + (alpha / r) (x A^T) B^T,   A (r, in), B (out, r),
// with only the A and B matrices as trainable parameters (lora_param_specs).
//
// Legend: V vocabulary, C dim, L layers, Hq/Hkv query/KV heads, D = C / Hq
// head dim, F feed-forward, B batch rows, T sequence length.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "loom/backend/backend.h"
#include "loom/graph/graph.h"

namespace loom::train {

struct LlamaTrainConfig {
  int64_t vocab_size = 0;  // V
  int64_t dim = 0;         // C
  int64_t n_layers = 0;    // L
  int64_t n_heads = 0;     // Hq
  int64_t n_kv_heads = 0;  // Hkv (0: Hq)
  int64_t ff_dim = 0;      // F
  int64_t max_seq_len = 2048;  // written as max_position_embeddings
  float norm_eps = 1e-5f;
  float rope_base = 10000.0f;
  graph::RopeStyle rope_style = graph::RopeStyle::Halves;  // Adjacent: q/k rows in GGUF order
  bool tied_output = true;  // lm_head shares model.embed_tokens.weight

  int64_t kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int64_t head_dim() const { return dim / n_heads; }
  // Throws a loom::Error saying which hyper-parameter is inconsistent.
  void check() const;
  // config.json of the Hugging Face LlamaForCausalLM with these parameters.
  nlohmann::json hf_config(int32_t bos_token_id = -1, int32_t eos_token_id = -1) const;
  // Reads the fields back from such a config.json (resume, tests).
  static LlamaTrainConfig from_hf_config(const nlohmann::json& j);
};

// Low-rank adapters on the linear layers; rank 0 trains every weight instead.
struct LoraConfig {
  int64_t rank = 0;   // r
  float alpha = 0;    // the update is scaled by alpha / r
  std::vector<std::string> targets = {"q_proj", "v_proj"};  // PEFT module names (model::lora_target_modules)
  bool enabled() const { return rank > 0; }
  float scale() const { return alpha / float(rank); }
  // Throws a loom::Error naming an unknown target or a bad rank/alpha.
  void check() const;
};

struct ParamSpec {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // outermost first, as the file stores it
  bool decay = true;           // false for the RMSNorm weights
  int64_t size() const;
};

// Every parameter in a fixed order: embed_tokens, then per layer
// input_layernorm, q/k/v/o_proj, post_attention_layernorm, gate/up/down_proj,
// then model.norm and (untied) lm_head.
std::vector<ParamSpec> llama_param_specs(const LlamaTrainConfig& c);

// The adapter parameters under their PEFT names, per layer in the order
// q, k, v, o, gate, up, down (those targeted), A before B:
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" (r, in),
// "...lora_B.weight" (out, r). All decay.
std::vector<ParamSpec> lora_param_specs(const LlamaTrainConfig& c, const LoraConfig& lora);

// Seeded initial values, in llama_param_specs order: RMSNorm weights 1; every
// matrix N(0, 0.02^2), and the projections into the residual stream (o_proj,
// down_proj) scaled by 1/sqrt(2L) as in GPT-2. Each parameter draws from its
// own SplitMix64 stream (seed and its index) with Box-Muller, so the values
// are the same on every platform and standard library.
std::vector<std::vector<float>> init_llama_params(const LlamaTrainConfig& c, uint64_t seed);

// Fills v with N(0, sd^2) values from the SplitMix64 stream `stream_seed`
// (Box-Muller on pairs of uniforms): the same numbers everywhere.
void fill_normal(std::span<float> v, double sd, uint64_t stream_seed);

// The forward graph over B rows of T tokens.
struct LlamaTrainGraph {
  graph::Value tokens;     // [B*T] i32 input
  graph::Value positions;  // [B*T] i32 input: t for row r's token t
  graph::Value targets;    // [B*T] i32 input (negative: ignored)
  std::vector<graph::Value> params;  // f32 inputs: llama_param_specs order, or lora_param_specs order with LoRA
  std::vector<graph::Value> frozen;  // LoRA: the base weights, f32 inputs in llama_param_specs order
  graph::Value logits;     // [B*T, V]
  graph::Value loss;       // [1]
  std::vector<graph::Value> layer_outputs;  // the residual stream after each layer (recomputation checkpoints)
};
// matrix_type BF16: the weight matrices are BF16 inputs (the BF16 compute
// mode); norms, adapters, activations and gradients stay F32.
LlamaTrainGraph build_llama_train_graph(graph::Graph& g, const LlamaTrainConfig& c, int64_t batch, int64_t seq_len,
                                        const LoraConfig& lora = {}, DType matrix_type = DType::F32);

struct StepOptions {
  bool grads = true;    // append backward() and read gradients
  bool logits = false;  // keep the logits readable (tests)
  LoraConfig lora = {};  // rank > 0: params are the adapters, the base weights frozen
  bool recompute = false;  // recompute each layer's activations in the backward pass (less memory)
  // BF16 compute: run() feeds the weight matrices to the graph rounded to
  // BF16 (half the weight memory and bandwidth; the matmuls read BF16
  // weights, as inference does for BF16 files), while the caller keeps FP32
  // master weights and gets FP32 gradients.
  bool bf16 = false;
};

// The graph compiled for one batch shape; run() as many times as needed.
class LlamaTrainStep {
 public:
  LlamaTrainStep(const LlamaTrainConfig& c, backend::Backend& backend, int64_t batch, int64_t seq_len,
                 const StepOptions& options = {});
  ~LlamaTrainStep();

  // LoRA: the base weights (llama_param_specs order), copied once into the
  // graph's inputs; needed before the first run.
  void set_frozen(std::span<const std::vector<float>> base);
  // Runs forward (and backward) for tokens/targets [B*T]; returns the loss.
  // params: every weight, or with LoRA the adapters (lora_param_specs order).
  float run(std::span<const std::vector<float>> params, std::span<const int32_t> tokens,
            std::span<const int32_t> targets);
  // d loss / d param i of the last run, added into acc (size of param i).
  void add_grad(size_t i, std::span<float> acc);
  // Logits [B*T, V] of the last run (options.logits).
  std::vector<float> logits();

  int64_t batch() const { return batch_; }
  int64_t seq_len() const { return seq_len_; }

 private:
  LlamaTrainConfig c_;
  int64_t batch_, seq_len_;
  StepOptions o_;
  graph::Graph g_;
  LlamaTrainGraph net_;
  std::vector<graph::Value> grads_;
  std::unique_ptr<backend::Executable> exe_;
  std::vector<int32_t> positions_;
  std::vector<float> scratch_;
  std::vector<uint16_t> bf16_;
  bool frozen_set_ = false;

  void set_weights(graph::Value input, std::span<const float> values);
};

}  // namespace loom::train
