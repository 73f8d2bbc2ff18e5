// The `loom` command as users and other tools call it: exact output on
// stdout, errors naming the file with exit code 1, --help everywhere.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/test_data.h"

extern char** environ;

namespace loom {
namespace {

struct Result {
  int exit_code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs build/bin/loom with `args`, capturing stdout and stderr in files.
Result loom(const std::vector<std::string>& args) {
  // ctest runs tests in parallel: each test writes its own files.
  const std::string dir = test::scratch_dir(std::string("cli/") +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv_s = {test::loom_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid;
  Result r;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) return r;
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Cli, RunWritesOnlyTheGeneratedTextToStdout) {
  LOOM_DATA(model, "models/stories260K.bin");
  LOOM_DATA(expected, "models/expected_stories260K_t0_n200.txt");
  const Result r = loom({"run", "-m", model, "--temp", "0", "-n", "200", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, slurp(expected) + "\n");
  EXPECT_TRUE(contains(r.err, "tok/s")) << r.err;
}

TEST(Cli, ConvertThenRunFromGguf) {
  LOOM_DATA(model, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  LOOM_DATA(expected, "models/expected_stories260K_t0_n200.txt");
  const std::string gguf = test::scratch_dir("cli/convert") + "/stories.gguf";
  const Result c = loom({"convert", model, "--tokenizer", tok, "-o", gguf});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const Result r = loom({"run", "-m", gguf, "--temp", "0", "-n", "200"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, slurp(expected) + "\n");
}

TEST(Cli, HelpForEveryCommand) {
  const Result top = loom({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const char* cmd : {"run", "info", "convert"}) {
    EXPECT_TRUE(contains(top.out, cmd)) << top.out;
    const Result r = loom({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_TRUE(contains(r.out, "Usage")) << cmd << ": " << r.out;
  }
}

TEST(Cli, InfoListsTheMetadataOfEveryVocabGguf) {
  for (const char* name : {"llama-spm", "phi-3", "gpt-2", "deepseek-llm", "baichuan"}) {
    LOOM_DATA(path, std::string("vocab/ggml-vocab-") + name + ".gguf");
    const Result r = loom({"info", path});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_TRUE(contains(r.out, "GGUF v3")) << name;
    EXPECT_TRUE(contains(r.out, "tokenizer.ggml.model")) << name;
    EXPECT_TRUE(contains(r.out, "tokenizer.ggml.tokens")) << name;
  }
}

TEST(Cli, InfoShowsArchitectureAndTensors) {
  LOOM_DATA(path, "models/arch/llama-random.gguf");
  const Result r = loom({"info", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "architecture: llama"));
  EXPECT_TRUE(contains(r.out, "embedding_length = 128"));  // hidden 128 (shared/data README)
  EXPECT_TRUE(contains(r.out, "block_count = 4"));
  EXPECT_TRUE(contains(r.out, "blk.3.ffn_down.weight"));
}

TEST(Cli, ErrorsNameTheFileAndExitWithOne) {
  const Result missing = loom({"run", "-m", "/nonexistent/model.gguf"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.err, "/nonexistent/model.gguf")) << missing.err;

  LOOM_DATA(vocab, "vocab/ggml-vocab-llama-spm.gguf");
  const std::string cut = test::scratch_dir("cli/errors") + "/truncated.gguf";
  {
    const std::string bytes = slurp(vocab);
    std::ofstream(cut, std::ios::binary).write(bytes.data(), 1000);
  }
  const Result trunc = loom({"info", cut});
  EXPECT_EQ(trunc.exit_code, 1);
  EXPECT_TRUE(contains(trunc.err, "truncated.gguf")) << trunc.err;

  const Result bad_flag = loom({"run", "--temp", "banana"});
  EXPECT_EQ(bad_flag.exit_code, 1);
}

TEST(Cli, AVocabOnlyFileIsNotAModel) {
  LOOM_DATA(vocab, "vocab/ggml-vocab-llama-spm.gguf");
  const Result r = loom({"run", "-m", vocab, "-n", "4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "ggml-vocab-llama-spm.gguf")) << r.err;
}

}  // namespace
}  // namespace loom
