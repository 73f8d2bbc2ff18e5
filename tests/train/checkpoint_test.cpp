// Checkpoints: the layout other tools read, bit-exact round trips of weights
// and optimizer state, `latest` and its fallbacks, pruning, and crash safety:
// a child process is SIGKILLed at every stage of a save and at timed points
// in the middle of writing large files, and the previous checkpoint must
// still load, bit for bit.
#include "loom/train/checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "loom/core/error.h"
#include "loom/format/safetensors.h"
#include "loom/train/optimizer.h"
#include "model/hf_folder.h"
#include "support/test_data.h"

namespace loom::train {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const std::string d = test::scratch_dir("train_checkpoint/" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A toy "model": two weights in the Hugging Face Llama names, with values
// that depend on the step (so a loaded checkpoint tells which step it is)
// plus values whose bits a lossy path would change.
struct Toy {
  std::vector<float> embd, norm;
  std::vector<ParamInfo> info;
  int64_t rows;

  Toy(int64_t step, int64_t rows = 16, int64_t cols = 8) : rows(rows) {
    embd.resize(size_t(rows * cols));
    norm.resize(size_t(cols));
    uint32_t x = 0x12345u + uint32_t(step) * 7919u;
    for (float& v : embd) {
      x = x * 1664525u + 1013904223u;
      v = float(int32_t(x >> 8) - (1 << 23)) / float(1 << 20);
    }
    for (size_t i = 0; i < norm.size(); ++i) norm[i] = 1.0f + float(step) + float(i) / 3.0f;
    embd[0] = -0.0f;
    embd[1] = std::numeric_limits<float>::denorm_min();
    embd[2] = std::numeric_limits<float>::quiet_NaN();
    embd[3] = std::numeric_limits<float>::infinity();
    info = {{"model.embed_tokens.weight", int64_t(embd.size()), true},
            {"model.norm.weight", int64_t(norm.size()), false}};
  }
  std::vector<NamedTensor> named() const {
    return {{"model.embed_tokens.weight", {rows, int64_t(embd.size()) / rows}, embd},
            {"model.norm.weight", {int64_t(norm.size())}, norm}};
  }
  // An optimizer that has taken `steps` steps with deterministic gradients.
  AdamW optimizer(int steps) {
    AdamW opt({}, info);
    std::vector<float> ge(embd.size()), gn(norm.size());
    for (int s = 0; s < steps; ++s) {
      for (size_t i = 0; i < ge.size(); ++i) ge[i] = std::sin(float(i + 3 * s));
      for (size_t i = 0; i < gn.size(); ++i) gn[i] = std::cos(float(i * s));
      std::vector<float> e = embd, n = norm;  // the toy's own values stay as they are
      std::vector<std::span<float>> p = {e, n};
      std::vector<std::span<const float>> g = {ge, gn};
      opt.step(p, g, 1e-3f);
    }
    return opt;
  }
};

const nlohmann::json kConfig = {
    {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 8}, {"vocab_size", 16}};

std::string save_toy(const std::string& dir, int64_t step, const CheckpointOptions& o = {}) {
  Toy t(step);
  const AdamW opt = t.optimizer(int(step % 5) + 1);
  return save_checkpoint(dir, step, t.named(), kConfig, opt, {{"position", step * 10}}, {{"rng", step}}, o);
}

// The checkpoint holds exactly toy `step`'s values, bit for bit.
void expect_toy(const Checkpoint& c, int64_t step) {
  EXPECT_EQ(c.step(), step);
  Toy t(step);
  EXPECT_TRUE(same_bits(c.tensor("model.embed_tokens.weight"), t.embd));
  EXPECT_TRUE(same_bits(c.tensor("model.norm.weight"), t.norm));
  EXPECT_EQ(c.loader_state(), (nlohmann::json{{"position", step * 10}}));
  EXPECT_EQ(c.extra(), (nlohmann::json{{"rng", step}}));
}

TEST(Checkpoint, WritesTheHuggingFaceLayoutAndLatest) {
  const std::string d = fresh_dir("layout");
  const std::string tok = d + "/tokenizer.json";
  std::ofstream(tok) << R"({"model": {}})";
  const std::string path = save_toy(d + "/ckpt", 7, {.copy_files = {tok}});
  EXPECT_EQ(path, d + "/ckpt/step-000007");
  for (const char* f :
       {"model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json", "tokenizer.json"})
    EXPECT_TRUE(fs::is_regular_file(path + "/" + f)) << f;
  EXPECT_EQ(slurp(d + "/ckpt/latest"), "step-000007\n");
  EXPECT_EQ(nlohmann::json::parse(slurp(path + "/config.json")), kConfig);
  EXPECT_EQ(slurp(path + "/tokenizer.json"), R"({"model": {}})");

  // model.safetensors as any safetensors reader sees it.
  const auto st = format::SafetensorsFile::open(path + "/model.safetensors");
  ASSERT_EQ(st->tensors().size(), 2u);
  const auto* e = st->find_tensor("model.embed_tokens.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype_name, "F32");
  EXPECT_EQ(e->dims, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(st->metadata(), (std::vector<std::pair<std::string, std::string>>{{"format", "pt"}}));
  const auto opt = format::SafetensorsFile::open(path + "/optimizer.safetensors");
  EXPECT_NE(opt->find_tensor("m.model.norm.weight"), nullptr);
  EXPECT_NE(opt->find_tensor("v.model.embed_tokens.weight"), nullptr);

  const auto state = nlohmann::json::parse(slurp(path + "/trainer_state.json"));
  EXPECT_EQ(state["step"], 7);
  EXPECT_EQ(state["format"], "loom-checkpoint");
}

TEST(Checkpoint, RoundTripIsBitExactAndTheResumedOptimizerContinuesIdentically) {
  const std::string d = fresh_dir("roundtrip");
  Toy t(3);
  AdamW opt = t.optimizer(4);
  save_checkpoint(d, 3, t.named(), kConfig, opt, {{"position", 30}}, {{"rng", 3}});
  const auto c = load_latest_checkpoint(d);
  ASSERT_TRUE(c.has_value());
  expect_toy(*c, 3);
  EXPECT_EQ(c->config(), kConfig);

  AdamW resumed({}, t.info);
  c->restore_optimizer(resumed);
  EXPECT_EQ(resumed.steps(), 4);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(same_bits(resumed.m(i), opt.m(i)));
    EXPECT_TRUE(same_bits(resumed.v(i), opt.v(i)));
  }
  // One more step from the same weights and gradient: identical bits.
  std::vector<float> w1 = t.norm, w2 = t.norm, e1 = t.embd, e2 = t.embd;
  std::vector<float> ge(t.embd.size(), 0.25f), gn(t.norm.size(), -0.5f);
  std::vector<std::span<const float>> g = {ge, gn};
  std::vector<std::span<float>> p1 = {e1, w1}, p2 = {e2, w2};
  opt.step(p1, g, 1e-3f);
  resumed.step(p2, g, 1e-3f);
  EXPECT_TRUE(same_bits(w1, w2));
  EXPECT_TRUE(same_bits(e1, e2));

  AdamW other({}, {{"model.norm.weight", 8, false}});
  EXPECT_THROW(c->restore_optimizer(other), Error);
}

TEST(Checkpoint, NoCheckpointGivesNullopt) {
  const std::string d = fresh_dir("none");
  EXPECT_FALSE(load_latest_checkpoint(d).has_value());
  EXPECT_FALSE(load_latest_checkpoint(d + "/missing").has_value());
}

TEST(Checkpoint, KeepsTheLastK) {
  const std::string d = fresh_dir("prune");
  for (int64_t s = 1; s <= 5; ++s) save_toy(d, s * 10, {.keep_last = 2});
  const auto all = list_checkpoints(d);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 40);
  EXPECT_EQ(all[1].first, 50);
  expect_toy(*load_latest_checkpoint(d), 50);
  for (const auto& e : fs::directory_iterator(d))  // nothing hidden left behind
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
}

TEST(Checkpoint, FallsBackWhenLatestIsMissingOrBroken) {
  const std::string d = fresh_dir("fallback");
  save_toy(d, 1, {.keep_last = 0});
  save_toy(d, 2, {.keep_last = 0});
  fs::remove(d + "/latest");
  expect_toy(*load_latest_checkpoint(d), 2);
  std::ofstream(d + "/latest") << "garbage\n";
  expect_toy(*load_latest_checkpoint(d), 2);
  std::ofstream(d + "/latest") << "step-000099\n";  // names a directory that is not there
  expect_toy(*load_latest_checkpoint(d), 2);

  // `latest` names step 2, whose weights were damaged afterwards: step 1.
  std::ofstream(d + "/latest") << "step-000002\n";
  fs::resize_file(d + "/step-000002/model.safetensors", 100);
  expect_toy(*load_latest_checkpoint(d), 1);

  // Every checkpoint damaged: an error, not a silent fresh start.
  fs::remove(d + "/step-000001/trainer_state.json");
  EXPECT_THROW(load_latest_checkpoint(d), Error);
}

TEST(Checkpoint, LatestWinsOverHigherStepsOfARolledBackRun) {
  const std::string d = fresh_dir("rollback");
  save_toy(d, 5);
  save_toy(d, 9);
  // The run was resumed from step 5 (e.g. after divergence) and saves step 6.
  save_toy(d, 6, {.keep_last = 2});
  expect_toy(*load_latest_checkpoint(d), 6);
  EXPECT_TRUE(fs::exists(d + "/step-000009"));  // not this run's to delete
  EXPECT_TRUE(fs::exists(d + "/step-000005"));
}

TEST(Checkpoint, SavingAStepAgainReplacesIt) {
  const std::string d = fresh_dir("again");
  save_toy(d, 4);
  Toy t(8);
  const AdamW opt = t.optimizer(1);
  save_checkpoint(d, 4, t.named(), kConfig, opt, {{"position", 80}}, {{"rng", 8}});
  const auto c = load_latest_checkpoint(d);
  EXPECT_EQ(c->step(), 4);
  EXPECT_TRUE(same_bits(c->tensor("model.norm.weight"), t.norm));
}

TEST(Checkpoint, RejectsAWeightWhoseShapeDoesNotMatchItsData) {
  const std::string d = fresh_dir("shape");
  Toy t(1);
  auto named = t.named();
  named[1].shape = {9};
  EXPECT_THROW(save_checkpoint(d, 1, named, kConfig, t.optimizer(1), {}, {}), Error);
  EXPECT_FALSE(load_latest_checkpoint(d).has_value());
}

TEST(Checkpoint, IsAHuggingFaceFolderThatLoomRunsToTheGoldenText) {
  // stories260K as a Hugging Face folder (F32, proven by the golden text in
  // the model tests); its weights saved as a training checkpoint must
  // generate the same text from the checkpoint directory.
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  LOOM_DATA(expected, "models/expected_stories260K_t0_n200.txt");
  const std::string hf = test::stories_hf(bin, tok, "train-checkpoint");
  const auto st = format::SafetensorsFile::open(hf + "/model.safetensors");
  std::vector<std::vector<float>> values;
  std::vector<NamedTensor> named;
  std::vector<ParamInfo> info;
  values.reserve(st->tensors().size());
  for (const auto& t : st->tensors()) {
    ASSERT_EQ(t.dtype_name, "F32") << t.name;
    values.emplace_back(t.nbytes / 4);
    std::memcpy(values.back().data(), t.data, t.nbytes);
    named.push_back({t.name, t.dims, values.back()});
    info.push_back({t.name, int64_t(values.back().size()), true});
  }
  std::vector<std::string> tokenizer_files;
  for (const auto& e : fs::directory_iterator(hf))
    if (e.path().extension() != ".safetensors" && e.path().filename() != "config.json")
      tokenizer_files.push_back(e.path().string());
  const AdamW opt({}, info);
  const std::string d = fresh_dir("stories");
  const std::string path = save_checkpoint(d, 100, named, nlohmann::json::parse(test::read_all(hf + "/config.json")),
                                           opt, {}, {}, {.copy_files = tokenizer_files});
  EXPECT_EQ(test::greedy(path).text, test::read_all(expected));
}

// ---- crash safety -----------------------------------------------------------

// Runs fn in a child process and returns its wait status.
template <typename Fn>
int in_child(Fn&& fn, std::chrono::microseconds kill_after = std::chrono::microseconds(-1)) {
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      fn();
    } catch (...) {
      _exit(2);
    }
    _exit(0);
  }
  if (kill_after.count() >= 0) {
    std::this_thread::sleep_for(kill_after);
    kill(pid, SIGKILL);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(CheckpointCrash, KilledAtEveryStageLeavesALoadableLatest) {
  const std::vector<std::string> stages = {"model.safetensors",
                                           "optimizer.safetensors",
                                           "config.json",
                                           "trainer_state.json",
                                           "synced",
                                           "renamed",
                                           "latest",
                                           "pruned"};
  for (size_t k = 0; k < stages.size(); ++k) {
    SCOPED_TRACE(stages[k]);
    const std::string d = fresh_dir("stages");
    save_toy(d, 1);
    const int status = in_child([&] {
      save_toy(d, 2, {.keep_last = 1, .on_stage = [&](std::string_view s) {
                        if (s == stages[k]) raise(SIGKILL);
                      }});
    });
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    const auto c = load_latest_checkpoint(d);
    ASSERT_TRUE(c.has_value());
    // Until `latest` is replaced, the previous checkpoint is the latest.
    const bool after_latest = stages[k] == "latest" || stages[k] == "pruned";
    expect_toy(*c, after_latest ? 2 : 1);
    // The next save cleans up and everything stays loadable.
    save_toy(d, 3, {.keep_last = 1});
    expect_toy(*load_latest_checkpoint(d), 3);
    for (const auto& e : fs::directory_iterator(d))
      EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
    EXPECT_FALSE(fs::exists(d + "/latest.tmp"));
  }
}

TEST(CheckpointCrash, KilledMidWriteOfLargeFilesLeavesThePreviousCheckpointBitExact) {
  const std::string d = fresh_dir("timed");
  auto save_small = [&](int64_t step) { save_toy(d, step); };
  // 2M weights: 8 MB of model and 16 MB of moments per checkpoint.
  const int64_t rows = 1 << 18;
  auto save_large = [&](int64_t step) {
    Toy t(step, rows, 8);
    AdamW opt({}, t.info);
    save_checkpoint(d, step, t.named(), kConfig, opt, {{"position", step * 10}}, {{"rng", step}});
  };
  save_small(1);
  // How long an uninterrupted large save takes here (the faster of two), to
  // aim the kills inside it.
  auto took = std::chrono::microseconds::max();
  for (int i = 0; i < 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(in_child([&] { save_large(1000); }), 0);
    took = std::min(took, std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0));
  }
  save_small(2);  // the latest is now step 2 again (step 1000 stays on disk, unreferenced)
  fs::remove_all(d + "/step-001000");
  int killed = 0;
  for (int k = 1; k <= 7; ++k) {
    const auto at = took * k / 8;
    const int status = in_child([&] { save_large(3000 + k); }, at);
    killed += WIFSIGNALED(status) ? 1 : 0;
    const auto c = load_latest_checkpoint(d);
    ASSERT_TRUE(c.has_value());
    if (c->step() == 2) {
      expect_toy(*c, 2);
    } else {  // the kill came after `latest` was replaced: the new one, complete
      ASSERT_EQ(c->step(), 3000 + k);
      const Toy t(3000 + k, rows, 8);
      EXPECT_TRUE(same_bits(c->tensor("model.embed_tokens.weight"), t.embd));
      save_small(2);  // back to a small latest for the next round
    }
  }
  // Timing on a loaded machine varies; most kills land inside the save.
  EXPECT_GE(killed, 3) << "the kills should land inside the save (" << took.count() << " us)";
  save_small(4);
  expect_toy(*load_latest_checkpoint(d), 4);
  for (const auto& e : fs::directory_iterator(d))
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
}

}  // namespace
}  // namespace loom::train
