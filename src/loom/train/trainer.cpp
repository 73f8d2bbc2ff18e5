#include "loom/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/train/checkpoint.h"
#include "loom/model/lora.h"
#include "loom/train/data.h"
#include "loom/train/lora.h"
#include "loom/train/optimizer.h"

namespace loom::train {

namespace {

using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// Keeps the records of a JSONL log up to `step` (a resumed run writes the
// steps after its checkpoint again); drops a torn last line.
void truncate_log(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("step") || j["step"].get<int64_t>() > step) continue;
    kept += line + "\n";
  }
  in.close();
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << kept;
  std::filesystem::rename(tmp, path);
}

// Mean loss over the held-out windows, all ranks together (token-weighted).
float eval_loss(const LlamaTrainConfig& c, const LoraConfig& lora, std::span<const std::vector<float>> frozen,
                backend::Backend& be, const DataLoader& data, std::span<const std::vector<float>> params,
                std::map<int64_t, std::unique_ptr<LlamaTrainStep>>& steps, dist::Communicator& comm) {
  double acc[2] = {0, 0};  // loss * tokens, tokens
  for (int64_t i = 0; i < data.eval_batch_count(); ++i) {
    const Batch b = data.eval_batch(i);
    if (b.rows == 0) continue;
    auto& s = steps[b.rows];
    if (!s) {
      s = std::make_unique<LlamaTrainStep>(c, be, b.rows, b.seq_len, StepOptions{.grads = false, .lora = lora});
      if (lora.enabled()) s->set_frozen(frozen);
    }
    const double n = double(b.rows * b.seq_len);
    acc[0] += double(s->run(params, b.inputs, b.targets)) * n;
    acc[1] += n;
  }
  comm.all_reduce(std::span<double>(acc, 2), dist::ReduceOp::Sum);
  return acc[1] > 0 ? float(acc[0] / acc[1]) : -1.0f;
}

}  // namespace

TrainResult run_training(const TrainOptions& o, const std::vector<std::string>& shards, dist::Communicator& comm) {
  const bool lora = o.lora.enabled();
  BaseModel base;
  if (lora) {
    LOOM_CHECK(!o.base_model.empty(), "[train] LoRA fine-tuning needs the base model (--base MODEL)");
    o.lora.check();
    base = load_base_model(o.base_model);
  }
  const LlamaTrainConfig c = lora ? base.config : o.model;
  c.check();
  LOOM_CHECK(o.seq_len > 0 && o.batch > 0 && o.accum > 0 && o.steps > 0,
             "[train] --seq-len {}, --batch {}, --accum {} and --steps {} must be positive", o.seq_len, o.batch,
             o.accum, o.steps);
  LOOM_CHECK(o.seq_len <= c.max_seq_len, "[train] --seq-len {} exceeds the model's context {}", o.seq_len,
             c.max_seq_len);
  const bool lead = comm.rank() == 0;
  const int world = comm.size();

  DataLoader data(shards, {.seq_len = o.seq_len,
                           .batch_size = o.batch,
                           .seed = o.seed,
                           .holdout_fraction = o.holdout_fraction,
                           .holdout_windows = o.holdout_windows,
                           .rank = comm.rank(),
                           .world_size = world});
  const std::vector<ParamSpec> specs = lora ? lora_param_specs(c, o.lora) : llama_param_specs(c);
  std::vector<std::vector<float>> params = lora ? init_lora_params(c, o.lora, o.seed) : init_llama_params(c, o.seed);
  const nlohmann::json adapter_config =
      lora ? model::peft_adapter_config(o.lora.rank, o.lora.alpha, o.lora.targets, o.base_model) : nlohmann::json();
  std::vector<ParamInfo> info;
  for (const ParamSpec& s : specs) info.push_back({s.name, s.size(), s.decay});
  AdamW opt({.weight_decay = o.weight_decay}, info);
  const CosineSchedule schedule{o.lr, o.min_lr, o.warmup, o.steps};

  int64_t start = 0;
  if (o.resume && !o.out_dir.empty()) {
    if (auto ck = load_latest_checkpoint(o.out_dir)) {
      const nlohmann::json saved = ck->config(),
                           wanted = lora ? adapter_config : c.hf_config(o.bos_token_id, o.eos_token_id);
      const std::vector<const char*> keys =
          lora ? std::vector<const char*>{"peft_type", "r", "lora_alpha", "target_modules"}
               : std::vector<const char*>{"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                          "num_attention_heads", "num_key_value_heads", "tie_word_embeddings"};
      for (const char* key : keys)
        LOOM_CHECK(saved.value(key, nlohmann::json()) == wanted[key],
                   "[train] {}: the checkpoint's {} is {}, the options give {}; resume with the model options of the "
                   "run that wrote it",
                   ck->path(), key, saved.value(key, nlohmann::json()).dump(), wanted[key].dump());
      for (size_t i = 0; i < specs.size(); ++i) ck->read_tensor(specs[i].name, params[i]);
      if (lora) params = lora_from_peft(c, o.lora, params);
      ck->restore_optimizer(opt);
      data.restore(ck->loader_state());
      start = ck->step();
      if (lead && o.progress) fmt::print(o.progress, "resuming from {} (step {})\n", ck->path(), start);
    } else if (lead && o.progress) {
      fmt::print(o.progress, "no checkpoint in {}; starting at step 0\n", o.out_dir);
    }
  }
  if (lead && o.progress && o.eval_every > 0 && data.eval_batch_count() == 0)
    fmt::print(o.progress,
               "warning: no windows are held out, so there is no eval loss; hold some out (--eval-windows N)\n");
  LOOM_CHECK(start <= o.steps, "[train] the checkpoint is at step {}, beyond --steps {}", start, o.steps);

  std::ofstream log;
  if (lead && !o.log_path.empty()) {
    if (start > 0)
      truncate_log(o.log_path, start);
    else
      std::ofstream(o.log_path, std::ios::trunc);
    log.open(o.log_path, std::ios::app);
    LOOM_CHECK(bool(log), "[train] cannot write the log {}", o.log_path);
  }

  auto be = backend::create(o.backend, {.threads = o.threads});
  LlamaTrainStep step_graph(c, *be, o.batch, o.seq_len, {.lora = o.lora, .recompute = o.recompute, .bf16 = o.bf16});
  if (lora) step_graph.set_frozen(base.weights);
  std::map<int64_t, std::unique_ptr<LlamaTrainStep>> eval_graphs;

  // Gradients of all parameters in one buffer (one all-reduce), then the loss.
  std::vector<size_t> offset;
  size_t total = 0;
  for (const ParamSpec& s : specs) {
    offset.push_back(total);
    total += size_t(s.size());
  }
  std::vector<float> flat(total + 1);
  std::vector<std::span<float>> grads, param_spans;
  for (size_t i = 0; i < specs.size(); ++i) {
    grads.emplace_back(flat.data() + offset[i], size_t(specs[i].size()));
    param_spans.emplace_back(params[i]);
  }
  std::vector<std::span<const float>> const_grads(grads.begin(), grads.end());

  auto save = [&](int64_t step, float loss) {
    if (lead) {
      // LoRA: a PEFT adapter folder, B's q/k rows in Hugging Face order.
      const std::vector<std::vector<float>> peft = lora ? lora_to_peft(c, o.lora, params) : decltype(params)();
      const auto& saved = lora ? peft : params;
      std::vector<NamedTensor> named;
      for (size_t i = 0; i < specs.size(); ++i) named.push_back({specs[i].name, specs[i].shape, saved[i]});
      CheckpointOptions co{.keep_last = o.keep_last, .copy_files = o.copy_files};
      if (lora) {
        co.model_file = "adapter_model.safetensors";
        co.config_file = "adapter_config.json";
      }
      const std::string path =
          save_checkpoint(o.out_dir, step, named, lora ? adapter_config : c.hf_config(o.bos_token_id, o.eos_token_id),
                          opt, data.state(), {{"loss", loss}}, co);
      if (o.progress) fmt::print(o.progress, "saved {}\n", path);
    }
    comm.barrier();
  };

  TrainResult result;
  result.steps_done = start;
  const int64_t tokens_per_step = o.accum * o.batch * world * o.seq_len;
  const auto t0 = Clock::now();
  for (int64_t step = start; step < o.steps; ++step) {
    std::fill(flat.begin(), flat.end(), 0.0f);
    for (int64_t a = 0; a < o.accum; ++a) {
      const Batch b = data.next();
      flat[total] += step_graph.run(params, b.inputs, b.targets);
      for (size_t i = 0; i < specs.size(); ++i) step_graph.add_grad(i, grads[i]);
    }
    comm.all_reduce(flat, dist::ReduceOp::Sum);
    const float inv = 1.0f / float(o.accum * world);
    for (float& v : flat) v *= inv;
    const float loss = flat[total];
    const float norm = clip_grad_norm(grads, o.clip);
    const float lr = schedule.lr(step);
    opt.step(param_spans, const_grads, lr);
    const int64_t done = step + 1;
    result.steps_done = done;
    result.last_loss = loss;

    float ev = -1;
    const bool last = done == o.steps;
    if (o.eval_every > 0 && (done % o.eval_every == 0 || last) && data.eval_batch_count() > 0) {
      ev = eval_loss(c, o.lora, base.weights, *be, data, params, eval_graphs, comm);
      result.last_eval_loss = ev;
    }
    if (lead) {
      if (log.is_open()) {
        nlohmann::json j = {{"step", done}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                            {"tokens", done * tokens_per_step}};
        if (ev >= 0) j["eval_loss"] = ev;
        log << j.dump() << "\n";
        log.flush();
      }
      if (o.progress) {
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        const double per_step = secs / double(done - start);
        std::string line = fmt::format("step {}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.0f} tok/s | ETA {}",
                                       done, o.steps, loss, lr, norm, double(tokens_per_step) / per_step,
                                       format_duration(per_step * double(o.steps - done)));
        if (ev >= 0) line += fmt::format(" | eval {:.4f}", ev);
        fmt::print(o.progress, "{}\n", line);
        std::fflush(o.progress);
      }
    }
    if (!o.out_dir.empty() && ((o.save_every > 0 && done % o.save_every == 0) || last)) save(done, loss);
    if (o.on_step) o.on_step(done);
  }
  result.params = std::move(params);
  return result;
}

}  // namespace loom::train
