// loom train: train a Llama-architecture model from scratch on text or token
// shards, on one process or data-parallel under mpirun; checkpoints are
// Hugging Face folders that `loom run -m OUT/step-NNNNNN` loads.
//
//   loom train --data corpus.txt --tokenizer tok/ --dim 256 --layers 4 --steps 2000 --out run --log run/log.jsonl
//   mpirun -np 2 loom train --data run/data --tokenizer tok/ --batch 4 ...    (same as one process with --batch 8)
//   loom train --base model.gguf --lora-rank 8 --data corpus.txt --out lora   (LoRA: adapters as PEFT folders)
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/dist/communicator.h"
#include "loom/engine/session.h"
#include "loom/model/source.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/train/data.h"
#include "loom/train/trainer.h"

namespace loom::cli {

namespace {

namespace fs = std::filesystem;

struct TrainArgs {
  std::vector<std::string> data;
  std::string tokenizer;
  train::TrainOptions o;
  int64_t eval_windows = -1;
  bool untied = false;
  std::string lora_targets = "q_proj,v_proj";
};

// The tokenizer's files a checkpoint folder needs to run on its own.
std::vector<std::string> tokenizer_files(const std::string& path) {
  std::vector<std::string> out;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string name = e.path().filename().string(), ext = e.path().extension().string();
      if (!e.is_regular_file() || name == "config.json" || ext == ".safetensors" || ext == ".gguf" || ext == ".bin" ||
          name.ends_with(".index.json"))
        continue;
      out.push_back(e.path().string());
    }
  } else {
    const std::string name = fs::path(path).filename().string();
    if (name == "tokenizer.json" || name == "tokenizer.model") out.push_back(path);
  }
  return out;
}

void run_train(TrainArgs& a) {
  auto comm = dist::from_environment();
  const bool lead = comm->rank() == 0;
  train::TrainOptions& o = a.o;
  const bool lora = !o.base_model.empty();
  LOOM_CHECK(lora == (o.lora.rank > 0), "[cli] LoRA fine-tuning takes both --base MODEL and --lora-rank R");
  LOOM_CHECK(lora || !a.tokenizer.empty(), "[cli] --tokenizer is required (unless --base gives the model's own)");
  // LoRA: the base model's tokenizer, unless --tokenizer names another.
  const auto base = lora ? model::ModelSource::open(o.base_model) : nullptr;
  const auto tok = lora ? engine::load_tokenizer(*base, a.tokenizer) : tokenizer::load(a.tokenizer);
  if (lora) {
    o.lora.targets.clear();
    for (size_t at = 0; at <= a.lora_targets.size();) {
      const size_t comma = std::min(a.lora_targets.find(',', at), a.lora_targets.size());
      if (comma > at) o.lora.targets.push_back(a.lora_targets.substr(at, comma - at));
      at = comma + 1;
    }
    if (o.lora.alpha <= 0) o.lora.alpha = float(2 * o.lora.rank);
  }
  o.model.vocab_size = tok->vocab_size();
  o.model.max_seq_len = std::max(o.model.max_seq_len, o.seq_len);
  o.bos_token_id = tok->bos();
  o.eos_token_id = tok->eos();
  if (!lora) o.copy_files = tokenizer_files(a.tokenizer);
  if (lead && !lora && o.copy_files.empty() && !o.out_dir.empty())
    std::fprintf(stderr, "loom train: warning: %s is not a Hugging Face tokenizer folder or file; checkpoints will "
                         "have no tokenizer of their own\n", a.tokenizer.c_str());
  o.holdout_windows = a.eval_windows;
  if (o.eval_every > 0 && o.holdout_fraction == 0 && a.eval_windows < 0) o.holdout_fraction = 0.01;
  o.model.tied_output = !a.untied;

  // Shards: directories of *.tok, .tok files, and text files tokenized into OUT/data.
  std::vector<std::string> shards, texts;
  for (const auto& d : a.data) {
    if (fs::is_directory(d)) {
      const auto s = train::list_shards(d);
      LOOM_CHECK(!s.empty(), "[cli] {} holds no *.tok shards; pass text files or a folder of shards", d);
      shards.insert(shards.end(), s.begin(), s.end());
    } else if (fs::path(d).extension() == ".tok") {
      shards.push_back(d);
    } else {
      texts.push_back(d);
    }
  }
  if (!texts.empty()) {
    LOOM_CHECK(!o.out_dir.empty(), "[cli] text files are tokenized into OUT/data: pass --out DIR");
    const std::string dir = o.out_dir + "/data";
    if (lead) train::tokenize_corpus_to_shards(*tok, texts, dir);
    comm->barrier();
    const auto s = train::list_shards(dir);
    shards.insert(shards.end(), s.begin(), s.end());
  }
  if (lead)
    std::fprintf(stderr, "loom train: %zu shard(s), vocabulary %d, %d rank(s), %s\n", shards.size(),
                 tok->vocab_size(), comm->size(), comm->name().c_str());
  o.progress = lead ? stderr : nullptr;
  const auto r = train::run_training(o, shards, *comm);
  if (lead) std::fprintf(stderr, "loom train: done, %lld steps, loss %.4f\n", (long long)r.steps_done, r.last_loss);
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  train::TrainOptions& o = a->o;
  o.model.dim = 256;
  o.model.n_layers = 4;
  o.model.n_heads = 8;
  o.model.n_kv_heads = 0;
  o.model.ff_dim = 688;
  o.holdout_fraction = 0;
  CLI::App* c = app.add_subcommand(
      "train", "Train a Llama-architecture model, or LoRA adapters of a loaded one (data parallel under mpirun)");
  c->add_option("--data", a->data, "Text files (tokenized into OUT/data), *.tok shards or folders of them")
      ->required();
  c->add_option("--tokenizer", a->tokenizer,
                "Tokenizer folder or file (Hugging Face, .model, GGUF); with --base: the base model's by default");
  c->add_option("--base", o.base_model,
                "LoRA: the model to fine-tune (GGUF, llama2.c .bin, Hugging Face folder); its shapes replace "
                "--dim etc.");
  c->add_option("--lora-rank", o.lora.rank, "LoRA: rank r of the adapters (with --base)");
  c->add_option("--lora-alpha", o.lora.alpha, "LoRA: the update is scaled by alpha / r (default: 2 r)");
  c->add_option("--lora-targets", a->lora_targets,
                "LoRA: comma-separated linear layers (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)")
      ->capture_default_str();
  c->add_option("--dim", o.model.dim, "Embedding size")->capture_default_str();
  c->add_option("--layers", o.model.n_layers, "Decoder layers")->capture_default_str();
  c->add_option("--heads", o.model.n_heads, "Attention heads")->capture_default_str();
  c->add_option("--kv-heads", o.model.n_kv_heads, "Key/value heads (0: as many as --heads)")->capture_default_str();
  c->add_option("--ff", o.model.ff_dim, "Feed-forward size")->capture_default_str();
  c->add_flag("--untied", a->untied, "Separate lm_head (default: tied to the embedding)");
  c->add_option("--seq-len", o.seq_len, "Tokens per sequence")->capture_default_str();
  c->add_option("--batch", o.batch, "Sequences per micro-batch per process")->capture_default_str();
  c->add_option("--accum", o.accum, "Micro-batches per optimizer step")->capture_default_str();
  c->add_option("--steps", o.steps, "Optimizer steps")->capture_default_str();
  c->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  c->add_option("--min-lr", o.min_lr, "Learning rate at the end of the cosine")->capture_default_str();
  c->add_option("--warmup", o.warmup, "Linear warmup steps")->capture_default_str();
  c->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  c->add_option("--clip", o.clip, "Gradient norm clip (0: none)")->capture_default_str();
  c->add_option("--seed", o.seed, "Initialisation and data order")->capture_default_str();
  c->add_option("--eval-every", o.eval_every, "Eval loss every N steps (0: never)")->capture_default_str();
  c->add_option("--eval-fraction", o.holdout_fraction,
                "Share of windows held out for eval (0 with --eval-every: 0.01)")
      ->capture_default_str();
  c->add_option("--eval-windows", a->eval_windows, "Exactly this many held-out windows (overrides the fraction)");
  c->add_option("--save-every", o.save_every, "Checkpoint every N steps (and at the end)")->capture_default_str();
  c->add_option("--keep", o.keep_last, "Checkpoints kept (0: all)")->capture_default_str();
  c->add_option("--out", o.out_dir, "Folder for checkpoints (and tokenized text)");
  c->add_flag("--resume", o.resume, "Continue from OUT's latest checkpoint");
  c->add_flag("--bf16", o.bf16,
              "BF16 compute: the weight matrices enter each step rounded to BF16; FP32 master weights, "
              "activations and gradients");
  c->add_flag("--recompute", o.recompute,
              "Recompute each layer's activations in the backward pass instead of keeping them (less memory)");
  c->add_option("--log", o.log_path, "JSONL file of the loss curve");
  c->add_option("-t,--threads", o.threads, "Threads (0: all)")->capture_default_str();
  c->add_option("--backend", o.backend, "Backend (cpu, reference)")->capture_default_str();
  c->callback([a] { run_train(*a); });
}

}  // namespace loom::cli
