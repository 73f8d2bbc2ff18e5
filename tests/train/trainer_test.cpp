// The training loop in one process: a tiny Llama memorises a kilobyte of
// text; gradient accumulation equals a larger batch; a checkpoint runs in
// engine::Session (what `loom run` uses) with the logits of the training
// graph's forward pass.
#include "loom/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "loom/engine/session.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/train/checkpoint.h"
#include "loom/train/data.h"
#include "train/tiny_run.h"

namespace loom::train {
namespace {

namespace fs = std::filesystem;

struct Corpus {
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::vector<std::string> shards;
  std::string dir;
};

void setup(const std::string& name, Corpus* s, test::TinyRun* f) {
  ASSERT_NO_FATAL_FAILURE(test::tiny_run(name, f));
  if (::testing::Test::IsSkipped()) return;
  s->tok = tokenizer::load(f->tokenizer);
  s->dir = test::scratch_dir("train/" + name) + "/run";
  fs::remove_all(s->dir);
  const std::vector<std::string> texts = {f->text};
  s->shards = tokenize_corpus_to_shards(*s->tok, texts, s->dir + "/data");
}

TrainOptions tiny_options(int32_t vocab) {
  TrainOptions o;
  o.model = {.vocab_size = vocab, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ff_dim = 128,
             .max_seq_len = 64};
  o.seq_len = 64;
  o.batch = 4;
  o.lr = 3e-3f;
  o.min_lr = 3e-4f;
  o.warmup = 10;
  o.weight_decay = 0;
  o.clip = 1.0f;
  o.seed = 7;
  o.threads = 2;
  o.progress = nullptr;
  return o;
}

// About 400 tokens in 6 windows of 64; 300 steps of 4 windows each visit
// every window 200 times. Memorising means a mean loss below 0.05 nats per
// token (the untrained model starts at about ln 512 = 6.2).
TEST(Trainer, MemorisesAKilobyteOfText) {
  Corpus s;
  test::TinyRun f;
  ASSERT_NO_FATAL_FAILURE(setup("memorise", &s, &f));
  if (IsSkipped()) return;
  TrainOptions o = tiny_options(s.tok->vocab_size());
  o.steps = 300;
  std::vector<float> losses;
  o.log_path = s.dir + "/log.jsonl";
  const TrainResult r = run_training(o, s.shards, *dist::local());
  std::ifstream log(o.log_path);
  std::string line;
  int64_t first_below = -1;
  while (std::getline(log, line)) {
    const auto j = nlohmann::json::parse(line);
    losses.push_back(j["loss"].get<float>());
    if (first_below < 0 && losses.back() < 0.05f) first_below = j["step"].get<int64_t>();
  }
  ASSERT_EQ(losses.size(), 300u);
  EXPECT_NEAR(losses.front(), std::log(512.0f), 0.3f);
  EXPECT_LT(r.last_loss, 0.05f);
  EXPECT_GT(first_below, 0) << "never below 0.05; last " << r.last_loss;
  std::printf("loss %.3f -> %.4f; first below 0.05 at step %lld\n", losses.front(), r.last_loss,
              (long long)first_below);
}

// Two micro-batches of 2 rows are the same 4 windows as one batch of 4
// (DataLoader's stream order), so the curves agree to float rounding.
TEST(Trainer, GradientAccumulationEqualsTheLargerBatch) {
  Corpus s;
  test::TinyRun f;
  ASSERT_NO_FATAL_FAILURE(setup("accum", &s, &f));
  if (IsSkipped()) return;
  TrainOptions o = tiny_options(s.tok->vocab_size());
  o.steps = 10;
  const TrainResult big = run_training(o, s.shards, *dist::local());
  o.batch = 2;
  o.accum = 2;
  const TrainResult acc = run_training(o, s.shards, *dist::local());
  EXPECT_NEAR(acc.last_loss, big.last_loss, 1e-4f * big.last_loss);
  ASSERT_EQ(acc.params.size(), big.params.size());
  for (size_t i = 0; i < big.params.size(); ++i)
    for (size_t j = 0; j < big.params[i].size(); ++j)
      ASSERT_NEAR(acc.params[i][j], big.params[i][j], 1e-4f) << i << " " << j;
}

// A checkpoint is a Hugging Face Llama folder: engine::Session loads it (with
// its own tokenizer files) and, fed the tokens one by one through the paged
// KV cache, gives the logits the training graph gives for the whole
// sequence at once. Tied and untied output, grouped-query attention.
TEST(Trainer, CheckpointRunsInSessionWithTheTrainingForwardLogits) {
  Corpus s;
  test::TinyRun f;
  ASSERT_NO_FATAL_FAILURE(setup("session", &s, &f));
  if (IsSkipped()) return;
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    TrainOptions o = tiny_options(s.tok->vocab_size());
    o.model.tied_output = tied;
    o.steps = 8;
    o.lr = 1e-2f;
    o.out_dir = s.dir + (tied ? "/tied" : "/untied");
    o.copy_files = {f.tokenizer + "/tokenizer.model", f.tokenizer + "/tokenizer_config.json"};
    run_training(o, s.shards, *dist::local());
    const auto ck = load_latest_checkpoint(o.out_dir);
    ASSERT_TRUE(ck.has_value());
    EXPECT_EQ(ck->step(), 8);

    std::vector<std::vector<float>> params;
    for (const ParamSpec& p : llama_param_specs(o.model)) params.push_back(ck->tensor(p.name));
    const std::vector<int32_t> tokens = s.tok->encode(test::read_all(f.text).substr(0, 120));
    const int64_t T = std::min<int64_t>(int64_t(tokens.size()), 40);
    ASSERT_GE(T, 20);
    const std::vector<int32_t> ids(tokens.begin(), tokens.begin() + T), targets(size_t(T), -1);
    auto be = backend::create("cpu", {.threads = 2});
    LlamaTrainStep fwd(o.model, *be, 1, T, {.grads = false, .logits = true});
    fwd.run(params, ids, targets);
    const std::vector<float> want = fwd.logits();  // [T, V]

    engine::SessionOptions so;
    so.model_path = ck->path();
    so.threads = 2;
    engine::Session session(so);
    ASSERT_EQ(session.tokenizer().vocab_size(), s.tok->vocab_size());
    const int64_t V = o.model.vocab_size;
    float worst = 0, scale = 0;
    for (int64_t t = 0; t < T; ++t) {
      const std::span<const float> got = session.feed(std::span(&ids[size_t(t)], 1));
      ASSERT_EQ(int64_t(got.size()), V);
      for (int64_t v = 0; v < V; ++v) {
        worst = std::max(worst, std::fabs(got[size_t(v)] - want[size_t(t * V + v)]));
        scale = std::max(scale, std::fabs(want[size_t(t * V + v)]));
      }
    }
    EXPECT_LT(worst, 1e-4f) << "largest logit " << scale;
    std::printf("%s: largest logit %.3f, largest difference %.3g\n", tied ? "tied" : "untied", scale, worst);
    EXPECT_GT(scale, 1.0f);  // trained: the logits are not all near zero
  }
}

}  // namespace
}  // namespace loom::train
