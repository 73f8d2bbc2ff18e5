// `loom tokenize` as users call it: the exact output format (ids on one line
// separated by single spaces; id<TAB>piece lines with --pieces), --bos,
// --special, --file, and errors. Expected ids come from llama.cpp's test
// vectors in shared/data/vocab ("Hello world": Llama 3 9906 1917, GPT-2
// 15496 995, Qwen2 9707 1879) and Meta's special-token list (128000
// <|begin_of_text|>, 128009 <|eot_id|>).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

using Result = test::LoomRun;

// `loom tokenize ARGS...`
Result run_loom(std::vector<std::string> args) {
  args.insert(args.begin(), "tokenize");
  return test::run_loom(args);
}

TEST(TokenizeCli, IdsOnOneLine) {
  LOOM_DATA(llama3, "tokenizers/llama3/tokenizer.model");
  const std::string folder = std::filesystem::path(llama3).parent_path().string();
  Result r = run_loom({"-m", folder, "Hello world"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "9906 1917\n");
  r = run_loom({"-m", llama3, "--bos", "Hello world"});
  EXPECT_EQ(r.out, "128000 9906 1917\n");
  r = run_loom({"-m", folder, "--special", "<|eot_id|>"});
  EXPECT_EQ(r.out, "128009\n");
  r = run_loom({"-m", folder, "<|eot_id|>"});
  EXPECT_NE(r.out, "128009\n");  // plain text without --special
  r = run_loom({"-m", folder, ""});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "\n");
}

TEST(TokenizeCli, ModelsAndOtherSources) {
  LOOM_DATA(gpt2, "vocab/ggml-vocab-gpt-2.gguf");
  LOOM_DATA(qwen2, "tokenizers/qwen2/vocab.json");
  EXPECT_EQ(run_loom({"-m", gpt2, "Hello world"}).out, "15496 995\n");
  EXPECT_EQ(run_loom({"-m", std::filesystem::path(qwen2).parent_path().string(), "Hello world"}).out, "9707 1879\n");
}

TEST(TokenizeCli, PiecesAndFile) {
  LOOM_DATA(llama3, "tokenizers/llama3/tokenizer.model");
  const std::string input = test::scratch_dir("tokenize_cli") + "/input.txt";
  std::ofstream(input, std::ios::binary) << "Hello world";
  Result r = run_loom({"-m", llama3, "--pieces", "--bos", "--file", input});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "128000\t<|begin_of_text|>\n9906\tHello\n1917\t world\n");
  // A newline token is shown escaped so that each pair stays on one line
  // (198 is "\n" in the llama-bpe vectors).
  r = run_loom({"-m", llama3, "--pieces", "\n"});
  EXPECT_EQ(r.out, "198\t\\n\n");
}

TEST(TokenizeCli, Errors) {
  LOOM_DATA(llama3, "tokenizers/llama3/tokenizer.model");
  Result r = run_loom({"-m", "/no/such/tokenizer", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/no/such/tokenizer"), std::string::npos) << r.err;
  r = run_loom({"-m", llama3, "--file", "/no/such/input.txt"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/no/such/input.txt"), std::string::npos) << r.err;
  r = run_loom({"-m", llama3, "--file", llama3, "TEXT"});
  EXPECT_EQ(r.exit_code, 1);  // --file and TEXT exclude each other
  r = run_loom({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--pieces"), std::string::npos);
}

}  // namespace
}  // namespace loom
