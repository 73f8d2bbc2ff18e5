// loom tokenizer train: learn a byte-level BPE tokenizer from text files and
// write it as a Hugging Face tokenizer folder (tokenizer.json +
// tokenizer_config.json) that loom and other tools load.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/tokenizer/bpe_trainer.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::cli {

namespace {

struct TrainTokenizerArgs {
  std::vector<std::string> corpus;
  std::string output, pre = "gpt-2";
  int32_t vocab_size = 4096;
  std::vector<std::string> special = {"<|endoftext|>"};
  int64_t min_frequency = 2;
};

void train_tokenizer(const TrainTokenizerArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  tokenizer::BpeTrainer trainer(
      {.vocab_size = a.vocab_size, .pre = a.pre, .special_tokens = a.special, .min_frequency = a.min_frequency});
  size_t bytes = 0;
  for (const auto& path : a.corpus) {
    std::ifstream f(path, std::ios::binary);
    LOOM_CHECK(f.good(), "[cli] cannot read corpus file {}", path);
    std::ostringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    bytes += text.size();
    trainer.add_text(text);
  }
  const auto r = trainer.train();
  tokenizer::write_hf_tokenizer(r, a.output);
  // Read back what was written and report how well it compresses the corpus.
  const auto tok = tokenizer::load(a.output);
  size_t tokens = 0;
  for (const auto& path : a.corpus) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    tokens += tok->encode(ss.str()).size();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s: %d tokens (%zu merges, %zu special), %.2f bytes per token on %.1f MB of text, %.1f s\n",
               a.output.c_str(), tok->vocab_size(), r.merges.size(), r.special_ids.size(),
               tokens ? double(bytes) / double(tokens) : 0.0, double(bytes) / 1e6, secs);
}

}  // namespace

void add_tokenizer(CLI::App& app) {
  CLI::App* group = app.add_subcommand("tokenizer", "Tokenizer tools");
  group->require_subcommand(1);
  auto a = std::make_shared<TrainTokenizerArgs>();
  CLI::App* c = group->add_subcommand("train", "Train a byte-level BPE tokenizer on text files");
  c->add_option("--corpus", a->corpus, "Text files to learn from")->required()->check(CLI::ExistingFile);
  c->add_option("-o,--output", a->output, "Folder to write tokenizer.json and tokenizer_config.json into")->required();
  c->add_option("--vocab-size", a->vocab_size, "Tokens in all: 256 bytes + merges + special tokens")
      ->capture_default_str();
  c->add_option("--pre", a->pre, "Pre-tokenizer family (gpt-2, llama-bpe, qwen2, ...)")->capture_default_str();
  c->add_option("--special", a->special, "Special tokens (the first is end of text)")->capture_default_str();
  c->add_option("--min-frequency", a->min_frequency, "Never merge pairs seen fewer times")->capture_default_str();
  c->callback([a] { train_tokenizer(*a); });
}

}  // namespace loom::cli
