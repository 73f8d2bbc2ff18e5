// loom tokenizer train, end to end: the trained folder is a tokenizer that
// `loom tokenize` loads, with the merges of the hand-worked example in
// tests/tokenizer/bpe_trainer_test.cpp.
#include <gtest/gtest.h>

#include <fstream>

#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

TEST(TokenizerTrainCli, WritesAFolderThatLoomTokenizeLoads) {
  const std::string dir = test::scratch_dir("tokenizer_train_cli");
  const std::string corpus = dir + "/corpus.txt", out = dir + "/tok";
  std::ofstream(corpus) << "aaabdaaabac";
  const auto r = test::run_loom({"tokenizer", "train", "--corpus", corpus, "-o", out, "--vocab-size", "260",
                                 "--min-frequency", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("260 tokens (3 merges, 1 special)"), std::string::npos) << r.err;
  const auto t = test::run_loom({"tokenize", "-m", out, "aaabdaaabac"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(t.out, "258 100 258 97 99\n");
}

TEST(TokenizerTrainCli, MissingCorpusIsAClearError) {
  const auto r = test::run_loom({"tokenizer", "train", "--corpus", "/no/such/file.txt", "-o", "/tmp/x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/no/such/file.txt"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace loom
