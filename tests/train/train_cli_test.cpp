// `loom train` as a process: a run killed with SIGKILL and resumed writes
// the same loss curve as an uninterrupted one, bit for bit; two MPI ranks
// with batch B train like one process with batch 2B; the checkpoint runs in
// `loom run`, and resuming it with other model options is refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "train/tiny_run.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using test::run;
using test::start;
using test::wait_exit;

size_t count_lines(const std::string& path) {
  std::ifstream f(path);
  size_t n = 0;
  std::string line;
  while (std::getline(f, line)) ++n;
  return n;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

struct Cli {
  test::TinyRun f;
  std::string dir;
  std::vector<std::string> train_args(const std::string& out, const std::string& log) const {
    return {test::loom_binary(), "train", "--data", f.text, "--tokenizer", f.tokenizer, "--dim", "48", "--layers", "2",
            "--heads", "4", "--kv-heads", "2", "--ff", "96", "--seq-len", "32", "--lr", "3e-3", "--warmup", "5",
            "--seed", "11", "--out", out, "--log", log};
  }
};

void cli_setup(const std::string& name, Cli* c) {
#ifndef LOOM_HAVE_CLI
  GTEST_SKIP() << "the loom command is not built here (LOOM_BUILD_TOOLS=OFF)";
#endif
  ASSERT_NO_FATAL_FAILURE(test::tiny_run(name, &c->f));
  if (::testing::Test::IsSkipped()) return;
  c->dir = test::scratch_dir("train/" + name) + "/cli";
  fs::remove_all(c->dir);
  fs::create_directories(c->dir);
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Bit-exact: the same computation on the same thread count, and the
// checkpoint restores parameters, AdamW moments, step count and the data
// loader's position exactly; the JSONL files are compared byte for byte.
TEST(TrainCli, KilledAndResumedRunWritesTheUninterruptedCurve) {
  Cli c;
  cli_setup("resume", &c);
  if (HasFatalFailure() || IsSkipped()) return;
  const std::vector<std::string> common = {"--batch", "2", "--steps", "150", "--save-every", "10", "--eval-every",
                                           "25", "--eval-windows", "2", "-t", "2"};
  const std::string a = c.dir + "/a", b = c.dir + "/b";
  ASSERT_EQ(run(c.train_args(a, a + ".jsonl") + common, c.dir, "a"), 0) << test::read_all(c.dir + "/a.err");
  ASSERT_EQ(count_lines(a + ".jsonl"), 150u);

  const pid_t pid = start(c.train_args(b, b + ".jsonl") + common, c.dir, "b1");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (count_lines(b + ".jsonl") < 37 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL) << "the run ended before the kill";
  const size_t at_kill = count_lines(b + ".jsonl");
  ASSERT_LT(at_kill, 150u);
  ASSERT_EQ(run(c.train_args(b, b + ".jsonl") + common + std::vector<std::string>{"--resume"}, c.dir, "b2"), 0)
      << test::read_all(c.dir + "/b2.err");
  EXPECT_NE(test::read_all(c.dir + "/b2.err").find("resuming from"), std::string::npos);
  EXPECT_EQ(test::read_all(b + ".jsonl"), test::read_all(a + ".jsonl")) << "killed after " << at_kill << " steps";
  const auto curve = read_jsonl(a + ".jsonl");
  EXPECT_LT(curve.back()["loss"].get<double>(), curve.front()["loss"].get<double>());
  EXPECT_TRUE(curve[24].contains("eval_loss"));
}

// DataLoader gives rank r rows [rB, (r+1)B) of every global batch, and the
// gradients (means over each rank's tokens) are averaged: equal to one
// process's mean over 2B rows up to float rounding in the sums.
TEST(TrainCli, TwoMpiRanksWithBatchBEqualOneProcessWithBatch2B) {
#ifndef LOOM_MPIEXEC
  GTEST_SKIP() << "built without MPI";
#else
  Cli c;
  cli_setup("mpi", &c);
  if (HasFatalFailure() || IsSkipped()) return;
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
  const std::vector<std::string> common = {"--steps", "20", "-t", "1", "--eval-every", "10", "--eval-windows", "3"};
  const std::string one = c.dir + "/one", two = c.dir + "/two";
  ASSERT_EQ(run(c.train_args(one, one + ".jsonl") + common + std::vector<std::string>{"--batch", "4"}, c.dir, "one"),
            0)
      << test::read_all(c.dir + "/one.err");
  ASSERT_EQ(run(std::vector<std::string>{LOOM_MPIEXEC, "-np", "2", "--oversubscribe"} +
                    c.train_args(two, two + ".jsonl") + common + std::vector<std::string>{"--batch", "2"},
                c.dir, "two"),
            0)
      << test::read_all(c.dir + "/two.err");
  EXPECT_NE(test::read_all(c.dir + "/two.err").find("2 rank(s), mpi"), std::string::npos);
  const auto a = read_jsonl(one + ".jsonl"), b = read_jsonl(two + ".jsonl");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["tokens"], b[i]["tokens"]);
    for (const char* k : {"loss", "grad_norm"}) {
      const double x = a[i][k].get<double>(), y = b[i][k].get<double>();
      worst = std::max(worst, std::fabs(x - y) / std::fabs(x));
      EXPECT_NEAR(x, y, 1e-4 * std::fabs(x)) << k << " at step " << i + 1;
    }
    ASSERT_EQ(a[i].contains("eval_loss"), b[i].contains("eval_loss"));
    if (a[i].contains("eval_loss")) {
      EXPECT_NEAR(a[i]["eval_loss"].get<double>(), b[i]["eval_loss"].get<double>(),
                  1e-4 * a[i]["eval_loss"].get<double>());
    }
  }
  std::printf("largest relative difference of loss/grad norm over 20 steps: %.3g\n", worst);
  // Both wrote the same checkpoint layout; rank 0 only.
  EXPECT_TRUE(fs::exists(two + "/step-000020/model.safetensors"));
#endif
}

// The checkpoint folder is a model `loom run` takes as it is.
TEST(TrainCli, CheckpointRunsInLoomRun) {
  Cli c;
  cli_setup("run", &c);
  if (HasFatalFailure() || IsSkipped()) return;
  const std::string out = c.dir + "/out";
  ASSERT_EQ(run(c.train_args(out, out + ".jsonl") + std::vector<std::string>{"--steps", "5", "--batch", "2", "-t", "2"},
                c.dir, "train"),
            0)
      << test::read_all(c.dir + "/train.err");
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(out + "/step-000005/" + file)) << file;
  ASSERT_EQ(run({test::loom_binary(), "run", "-m", out + "/step-000005", "-p", "First Citizen", "-n", "8", "-t", "2"},
                c.dir, "run"),
            0)
      << test::read_all(c.dir + "/run.err");
  EXPECT_FALSE(test::read_all(c.dir + "/run.out").empty());

  // Resuming with other model sizes is refused, naming the difference.
  std::vector<std::string> other = c.train_args(out, out + ".jsonl");
  *std::find(other.begin(), other.end(), "48") = "64";
  ASSERT_EQ(run(other + std::vector<std::string>{"--steps", "6", "--resume"}, c.dir, "mismatch"), 1);
  EXPECT_NE(test::read_all(c.dir + "/mismatch.err").find("the checkpoint's hidden_size is 48, the options give 64"),
            std::string::npos)
      << test::read_all(c.dir + "/mismatch.err");
}

}  // namespace
}  // namespace loom
