// Byte-level BPE tokenizers written as GGUF tokenizer.ggml.* keys and read
// back: Qwen2's vocab.json + merges.txt must still give llama.cpp's Qwen2
// test vectors, and a tokenizer.json learnt by loom's BPE trainer must give
// the ids its tokenizer.json gives, on every line of the Shakespeare corpus.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/tokenizer/bpe_trainer.h"
#include "loom/tokenizer/export.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"
#include "vocab_cases.h"

namespace loom::tokenizer {
namespace {

namespace fs = std::filesystem;

// Writes the tokenizer's keys alone into a GGUF and loads a tokenizer from it.
std::unique_ptr<Tokenizer> through_gguf(const Tokenizer& tok, const std::string& path) {
  format::GgufWriter w;
  for (auto& [k, v] : bpe_gguf_metadata(tok)) w.set(k, v);
  w.write(path);
  return from_gguf(format::GgufFile::open(path)->metadata());
}

TEST(BpeGgufExport, Qwen2VocabAndMergesKeepTheReferenceIds) {
  LOOM_DATA(vocab, "tokenizers/qwen2/vocab.json");
  LOOM_DATA(base, "vocab/ggml-vocab-qwen2.gguf.inp");
  const auto hf = load(fs::path(vocab).parent_path().string());
  const auto gguf = through_gguf(*hf, test::scratch_dir("BpeGgufExport.Qwen2") + "/qwen2.gguf");
  EXPECT_EQ(format::GgufFile::open(test::scratch_dir("BpeGgufExport.Qwen2") + "/qwen2.gguf")
                ->metadata()
                .get_string("tokenizer.ggml.pre", ""),
            "qwen2");
  EXPECT_EQ(gguf->vocab_size(), hf->vocab_size());
  EXPECT_EQ(gguf->eos(), hf->eos());
  testing::expect_vectors(*gguf, base.substr(0, base.size() - 4), 46);
}

TEST(BpeGgufExport, TrainedTokenizerJsonGivesTheSameIdsOnTheCorpus) {
  LOOM_DATA(corpus, "corpora/en/tinyshakespeare_input.txt");
  std::ifstream f(corpus);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str().substr(0, 200000);
  BpeTrainer trainer({.vocab_size = 600});
  trainer.add_text(text);
  const std::string dir = test::scratch_dir("BpeGgufExport.Trained");
  write_hf_tokenizer(trainer.train(), dir + "/tok");
  const auto hf = load(dir + "/tok");
  const auto gguf = through_gguf(*hf, dir + "/tok.gguf");
  ASSERT_EQ(gguf->vocab_size(), 600);
  EXPECT_EQ(gguf->eos(), hf->eos());
  std::istringstream lines(ss.str());
  size_t n = 0, tokens = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    line += "\n";
    const auto a = hf->encode(line), b = gguf->encode(line);
    ASSERT_EQ(a, b) << "line " << n << ": " << line;
    tokens += a.size();
  }
  EXPECT_EQ(n, 40000u);  // `wc -l` of the corpus
  EXPECT_GT(tokens, 200000u);  // 1.1 MB of text in 600 tokens is far more than 5 bytes per token
}

TEST(BpeGgufExport, TiktokenRanksAreRefusedWithAReason) {
  LOOM_DATA(model, "tokenizers/llama3/tokenizer.model");
  const auto tok = load(model);
  try {
    bpe_gguf_metadata(*tok);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merge list"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom::tokenizer
