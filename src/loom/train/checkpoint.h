// Training checkpoints: the model in the Hugging Face layout (model.safetensors
// + config.json, so `loom run` and other tools load the folder as it is), the
// AdamW state, and the trainer's state (step, data loader position, anything
// else the loop needs to continue bit for bit). A checkpoint appears only
// when complete: its files are written into a hidden temporary directory,
// fsynced, and the directory is renamed into place; then the `latest` file is
// replaced atomically. A process killed at any point leaves the previous
// checkpoint loadable.
//
//   train::save_checkpoint("ckpt", step, weights, config, opt, data.state(), {{"rng", rng_state}});
//   if (auto c = train::load_latest_checkpoint("ckpt")) {
//     c->read_tensor("model.embed_tokens.weight", embd);    // bit-exact F32
//     c->restore_optimizer(opt);
//     data.restore(c->loader_state());
//   }
//
// Layout of DIR:
//   step-000123/model.safetensors      F32 weights under the caller's (Hugging Face) names, metadata format=pt
//   step-000123/config.json            the caller's model configuration
//   step-000123/optimizer.safetensors  F32 "m.<param>" and "v.<param>" per AdamW parameter ([size] each);
//                                      metadata "step" (AdamW's step count) and "optimizer" = "adamw"
//   step-000123/trainer_state.json     {"format": "loom-checkpoint", "version": 1, "step", "loader", "extra"}
//   step-000123/<copied files>         e.g. tokenizer.json, tokenizer_config.json
// A LoRA fine-tune names the model files adapter_model.safetensors and
// adapter_config.json instead (CheckpointOptions), so each step directory is
// a PEFT adapter folder; Checkpoint::open reads either.
//   latest                             "step-000123\n"
//   .step-000123.tmp/                  a checkpoint being written (removed by the next save)
//
// One writer per directory (rank 0 in data-parallel training).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loom/format/safetensors.h"

namespace loom::train {

class AdamW;

// A model weight to save: FP32 master values under the name the file uses.
struct NamedTensor {
  std::string name;             // "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;   // outermost first
  std::span<const float> data;  // product(shape) values
};

struct CheckpointOptions {
  int keep_last = 3;  // checkpoints kept (this one included); 0 keeps all
  // Files copied into the checkpoint under their own names (the tokenizer,
  // so the folder runs on its own).
  std::vector<std::string> copy_files = {};
  // The names of the model's files ("adapter_model.safetensors" and
  // "adapter_config.json" for LoRA adapters).
  std::string model_file = "model.safetensors";
  std::string config_file = "config.json";
  // Called after each stage of the write ("model.safetensors",
  // "optimizer.safetensors", "config.json", "trainer_state.json", copied file
  // names, "synced", "renamed", "latest", "pruned"): progress reporting, and
  // the crash tests kill the process there.
  std::function<void(std::string_view stage)> on_stage = {};
};

// Writes checkpoint `step` into dir/step-NNNNNN (six digits or more) and
// points dir/latest at it; returns the checkpoint's path. Leftover temporary
// directories of interrupted saves are removed first. Writing a step that
// already exists replaces it. Throws loom::Error naming the file on I/O errors
// (the previous checkpoint then stays the latest).
std::string save_checkpoint(const std::string& dir, int64_t step, std::span<const NamedTensor> model,
                            const nlohmann::json& config, const AdamW& optimizer, const nlohmann::json& loader_state,
                            const nlohmann::json& extra = nlohmann::json::object(),
                            const CheckpointOptions& options = {});

// A checkpoint read back; tensors stay in the file mappings.
class Checkpoint {
 public:
  // Opens and checks every file of a step directory (config.json and
  // model.safetensors, or adapter_config.json and adapter_model.safetensors);
  // throws naming the file.
  static Checkpoint open(const std::string& step_dir);

  const std::string& path() const { return path_; }
  int64_t step() const { return step_; }
  const nlohmann::json& config() const { return config_; }  // config.json or adapter_config.json
  const nlohmann::json& trainer_state() const { return state_; }
  const nlohmann::json& loader_state() const { return state_.at("loader"); }
  const nlohmann::json& extra() const { return state_.at("extra"); }
  const format::SafetensorsFile& model() const { return *model_; }
  const format::SafetensorsFile& optimizer_file() const { return *optimizer_; }

  // Copies F32 tensor `name` of model.safetensors into out (sizes must match).
  void read_tensor(std::string_view name, std::span<float> out) const;
  std::vector<float> tensor(std::string_view name) const;
  // Restores the moments and step count; the optimizer's parameters (names
  // and sizes) must be the ones saved.
  void restore_optimizer(AdamW& optimizer) const;

 private:
  std::string path_;
  int64_t step_ = 0;
  nlohmann::json config_, state_;
  std::shared_ptr<format::SafetensorsFile> model_, optimizer_;
};

// The checkpoint `dir/latest` names; if that is missing or does not open, the
// highest-numbered step directory that opens. nullopt when there is none.
std::optional<Checkpoint> load_latest_checkpoint(const std::string& dir);

// Step directories of `dir` (complete checkpoints by construction), by step ascending.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir);

}  // namespace loom::train
