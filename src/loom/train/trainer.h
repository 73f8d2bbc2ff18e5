// The training loop: a Llama-architecture model (llama_train.h) trained on
// token shards with AdamW, gradient accumulation and data parallelism over a
// dist::Communicator, with eval loss, a JSONL log of the curve and
// checkpoints that resume bit for bit. `loom train` is a thin front end.
//
//   TrainOptions o{.model = c, .batch = 8, .steps = 1000, .out_dir = "run"};
//   auto comm = dist::from_environment();
//   TrainResult r = train::run_training(o, shard_paths, *comm);
//
// One optimizer step: `accum` micro-batches of `batch` rows per rank (each
// its own DataLoader::next(), so W ranks with batch B see what one process
// with batch W*B sees), gradients summed, all-reduced, divided by
// accum * world size; clip_grad_norm; AdamW at CosineSchedule::lr(step).
// Every rank holds the same parameters: they start from the same seed and
// apply the same averaged gradients.
//
// LoRA (options.lora.rank > 0): the model is read from options.base_model
// (lora.h) and frozen; only the adapters train, with the same loop, and each
// checkpoint is a PEFT adapter folder (adapter_config.json +
// adapter_model.safetensors, plus the optimizer and trainer state).
//
// Threads: the caller's thread runs everything; kernels use the backend's pool.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "loom/dist/communicator.h"
#include "loom/train/llama_train.h"

namespace loom::train {

struct TrainOptions {
  LlamaTrainConfig model;      // ignored with LoRA (the base model's shapes apply)
  std::string base_model;      // LoRA: GGUF, llama2.c or Hugging Face folder
  LoraConfig lora;             // rank > 0: fine-tune adapters on base_model
  int64_t seq_len = 256;       // T
  int64_t batch = 8;           // rows per rank per micro-batch
  int64_t accum = 1;           // micro-batches per optimizer step
  bool recompute = false;      // activation recomputation: less memory, one more forward pass
  bool bf16 = false;           // BF16 compute mode (StepOptions::bf16); the master weights stay FP32
  int64_t steps = 1000;        // optimizer steps in all
  float lr = 3e-4f;            // peak
  float min_lr = 3e-5f;
  int64_t warmup = 0;
  float weight_decay = 0.1f;
  float clip = 1.0f;           // <= 0: no clipping
  uint64_t seed = 1;           // initialisation and data order
  double holdout_fraction = 0;  // eval windows (DataLoader); -1 windows: use the fraction
  int64_t holdout_windows = -1;
  int64_t eval_every = 0;      // steps; 0: never
  int64_t save_every = 0;      // steps; 0: only at the end (when out_dir is set)
  int keep_last = 3;
  std::string out_dir;         // checkpoints (empty: none)
  bool resume = false;         // continue from out_dir's latest checkpoint, if any
  std::string log_path;        // JSONL curve (rank 0); empty: none
  std::string backend = "cpu";
  int threads = 0;
  std::vector<std::string> copy_files;  // into every checkpoint (the tokenizer)
  int32_t bos_token_id = -1, eos_token_id = -1;  // into config.json
  std::FILE* progress = stderr;  // rank 0's progress lines; nullptr: quiet
  // Called after each optimizer step with the step just done (1-based); tests stop runs here.
  std::function<void(int64_t step)> on_step = {};
};

struct TrainResult {
  int64_t steps_done = 0;  // optimizer steps in all (including resumed ones)
  float last_loss = 0;
  float last_eval_loss = -1;  // -1: no eval
  std::vector<std::vector<float>> params;  // final values, llama_param_specs order (LoRA: lora_param_specs
                                           // order, q/k rows in the base's order; lora_to_peft converts)
};

// Trains on the shards. Throws loom::Error (naming the file or option) on bad
// input; every rank must call it with the same options.
TrainResult run_training(const TrainOptions& options, const std::vector<std::string>& shards,
                         dist::Communicator& comm);

}  // namespace loom::train
