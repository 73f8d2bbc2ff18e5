// Training a byte-level BPE tokenizer: the merges of a hand-worked example,
// and a tokenizer trained on real text that loom loads back and that
// round-trips any text exactly.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "loom/core/error.h"
#include "support/test_data.h"
#include "loom/tokenizer/bpe_trainer.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::tokenizer {
namespace {

std::string read(const std::string& path, size_t limit) {
  std::ifstream f(path, std::ios::binary);
  std::string s(limit, '\0');
  f.read(s.data(), std::streamsize(limit));
  s.resize(size_t(f.gcount()));
  return s;
}

// "aaabdaaabac" (one word): pair counts aa 4, ab 2, others 1 -> merge a+a
// (id 256). Then "aa a b d aa a b a c": (aa,a) 2 and (a,b) 2 tie; the smaller
// left id wins, a = 97 < 256 -> a+b (257). Then "aa ab d aa ab a c": (aa,ab) 2
// -> 258. Special token last: 259.
TEST(BpeTrainer, LearnsTheMergesOfAHandWorkedExample) {
  BpeTrainer t({.vocab_size = 260, .pre = "gpt-2", .special_tokens = {"<|endoftext|>"}, .min_frequency = 1});
  t.add_text("aaabdaaabac");
  const BpeTrainResult r = t.train();
  ASSERT_EQ(r.merges.size(), 3u);
  EXPECT_EQ(r.merges[0], (std::pair<std::string, std::string>{"a", "a"}));
  EXPECT_EQ(r.merges[1], (std::pair<std::string, std::string>{"a", "b"}));
  EXPECT_EQ(r.merges[2], (std::pair<std::string, std::string>{"aa", "ab"}));
  EXPECT_EQ(r.tokens[258], "aaab");
  EXPECT_EQ(r.special_ids, std::vector<int32_t>{259});

  const auto dir = test::scratch_dir("bpe_trainer_hand");
  write_hf_tokenizer(r, dir);
  const auto tok = load(dir);
  EXPECT_EQ(tok->vocab_size(), 260);
  EXPECT_EQ(tok->encode("aaabdaaabac"), (std::vector<int32_t>{258, 100, 258, 97, 99}));
  EXPECT_EQ(tok->encode("<|endoftext|>", {.parse_special = true}), std::vector<int32_t>{259});
  EXPECT_TRUE(tok->is_eog(259));
}

TEST(BpeTrainer, MinimumFrequencyStopsEarly) {
  BpeTrainer t({.vocab_size = 300, .special_tokens = {}, .min_frequency = 3});
  t.add_text("aaabdaaabac");  // only a+a is seen 3 or more times
  EXPECT_EQ(t.train().merges.size(), 1u);
}

TEST(BpeTrainer, RejectsAVocabularySmallerThanTheBytes) {
  EXPECT_THROW(BpeTrainer({.vocab_size = 100}), Error);
  EXPECT_THROW(BpeTrainer({.pre = "no-such-family"}), Error);
}

TEST(BpeTrainer, TrainedOnShakespeareItCompressesAndRoundTrips) {
  LOOM_DATA(en, "corpora/en/tinyshakespeare_input.txt");
  LOOM_DATA(zh, "corpora/zh/tang_song_poetry.txt");
  const std::string text = read(en, 300000);
  BpeTrainer t({.vocab_size = 1024});
  t.add_text(text);
  const BpeTrainResult r = t.train();
  EXPECT_EQ(r.tokens.size(), 1024u);
  // Deterministic: the same corpus gives the same merges.
  BpeTrainer again({.vocab_size = 1024});
  again.add_text(text);
  EXPECT_EQ(again.train().merges, r.merges);

  const auto dir = test::scratch_dir("bpe_trainer_shakespeare");
  write_hf_tokenizer(r, dir);
  const auto tok = load(dir);
  const auto ids = tok->encode(text);
  // 1 k byte-level tokens learnt on this text: well over 2 bytes per token.
  EXPECT_GT(double(text.size()) / double(ids.size()), 2.5);
  EXPECT_EQ(tok->decode(ids), text);
  // Text it never saw (Chinese, bytes that are not UTF-8) round-trips through the byte tokens.
  const std::string other = read(zh, 20000) + std::string("\xff\xfe broken \xc3", 11);
  EXPECT_EQ(tok->decode(tok->encode(other)), other);
}

}  // namespace
}  // namespace loom::tokenizer
