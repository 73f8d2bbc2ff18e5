// The `loom` command as users and other tools call it: exact output on
// stdout, errors naming the file with exit code 1, --help everywhere.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

using Result = test::LoomRun;
using test::slurp;

// Runs build/bin/loom with `args` (stdin from /dev/null).
Result loom(const std::vector<std::string>& args) { return test::run_loom(args); }

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
