// The llama2.c tokenizer (tok512.bin, the 512-token vocabulary of the
// stories260K model). Expected ids were worked out by hand from the vocabulary
// file, following run.c's encode(): a " " token first, one token per UTF-8
// character (byte tokens at byte + 3 when the character is not a piece), then
// repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring piece (leftmost on ties). Pieces used below, with scores:
//   259 " t" 0    260 "he" -1   261 " a" -2   263 " w" -4   264 "nd" -5
//   274 " T" -15  280 " c" -21  288 "im" -29  289 "on" -30  291 " The" -32
//   302 "en" -43  304 "or" -45  306 "ll" -47  318 " u" -59  319 " O" -60
//   320 " H" -61  321 " On" -62 331 "ce" -72  341 "ld" -82  344 " e" -85
//   346 " He" -87 350 " up" -91 367 "end" -108 369 "ime" -110 378 " time" -119
//   403 " Once" -144  407 " upon" -148  410 " " -151  412 "a"  414 "o"
//   426 "."  431 "f"  485 "é"
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/llama2c.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"

namespace loom::tokenizer {
namespace {

using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> tok512(const std::string& path) {
  return from_llama2c(format::read_llama2c_vocab(path, 512));
}

TEST(Llama2c, HandCheckedEncodings) {
  LOOM_DATA(path, "models/tok512.bin");
  auto tok = tok512(path);
  ASSERT_EQ(tok->vocab_size(), 512);

  // " "+"t" (0) would win first, but there is no t: " w" (-4) first, then
  // "or" (-45), "ll" (-47), " H" (-61), "ld" (-82), " He" (-87).
  EXPECT_EQ(tok->encode("Hello world"), (Ids{346, 306, 414, 263, 304, 341}));
  // " t" (0), " a" (-2), "im" (-29), "on" (-30), " u" (-59), " O" (-60),
  // " On" (-62), "ce" (-72), " up" (-91), "ime" (-110), " time" (-119),
  // " Once" (-144), " upon" (-148).
  EXPECT_EQ(tok->encode("Once upon a time"), (Ids{403, 407, 261, 378}));
  // "he" (-1), "nd" (-5), " T" (-15), " The" (-32), then " e" (-85) beats
  // "end" (-108), and " end" is no piece: " e" + "nd".
  EXPECT_EQ(tok->encode("The end."), (Ids{291, 344, 264, 426}));
  // é (C3 A9) is piece 485; " c" (-21) is the only merge.
  EXPECT_EQ(tok->encode("caf\xC3\xA9"), (Ids{280, 412, 431, 485}));
  // 日 = E6 97 A5 and 本 = E6 9C AC are no pieces: byte tokens, byte + 3.
  EXPECT_EQ(tok->encode("\xE6\x97\xA5\xE6\x9C\xAC"), (Ids{410, 0xE6 + 3, 0x97 + 3, 0xA5 + 3, 0xE6 + 3, 0x9C + 3, 0xAC + 3}));
  // The dummy prefix only for non-empty text; " " + " " have no merge.
  EXPECT_EQ(tok->encode(""), Ids{});
  EXPECT_EQ(tok->encode(" "), (Ids{410, 410}));
  EXPECT_EQ(tok->encode("a"), Ids{261});
  // BOS = 1, EOS = 2 on request.
  EXPECT_EQ(tok->encode("a", {.add_bos = true, .add_eos = true}), (Ids{1, 261, 2}));
}

TEST(Llama2c, SpecialTokens) {
  LOOM_DATA(path, "models/tok512.bin");
  auto tok = tok512(path);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->default_add_bos());
  EXPECT_TRUE(tok->adds_space_prefix());
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_TRUE(tok->is_eog(1));  // run.c ends a story at BOS
  EXPECT_FALSE(tok->is_eog(261));
  EXPECT_EQ(tok->type(0), TokenType::Unknown);
  EXPECT_EQ(tok->type(1), TokenType::Control);
  EXPECT_EQ(tok->type(3), TokenType::Byte);
  EXPECT_EQ(tok->type(259), TokenType::Normal);
  EXPECT_EQ(tok->piece(1), "\n<s>\n");  // as stored by llama2.c's exporter
  EXPECT_EQ(tok->token_bytes(1), "");
  EXPECT_EQ(tok->token_bytes(1, true), "<s>");
  EXPECT_EQ(tok->encode("<s>a", {.parse_special = true}), (Ids{1, 261}));
}

TEST(Llama2c, DecodeLikeRunC) {
  LOOM_DATA(path, "models/tok512.bin");
  auto tok = tok512(path);
  // run.c strips the space of the first piece after BOS; bytes are bytes.
  EXPECT_EQ(tok->decode(Ids{1, 403, 407, 261, 378, 426}), "Once upon a time.");
  EXPECT_EQ(tok->decode(Ids{403, 407}), "Once upon");
  EXPECT_EQ(tok->decode(Ids{410, 0xE6 + 3, 0x97 + 3, 0xA5 + 3}), "\xE6\x97\xA5");
  EXPECT_EQ(tok->token_bytes(3 + '\n'), "\n");
  EXPECT_EQ(tok->token_bytes(259), " t");
  EXPECT_THROW(tok->token_bytes(512), Error);
}

TEST(Llama2c, DecodeInvertsEncode) {
  LOOM_DATA(path, "models/tok512.bin");
  auto tok = tok512(path);
  const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "Lily's mom said, \"Lily, let's go to the park.\"",
      "  spaces  \n\n tabs\t\t",
      "日本語 中文 한국어",
      "emoji 🦙🚀 ✅ 👨‍👩‍👧",
      "\xC3\xA9\xC3\xB1\xE2\x80\x9C quotes \xE2\x80\x9D",
      "invalid \xFF\xFE bytes \xE6\x97 cut \x80",
      std::string(3000, 'x'),
  };
  for (const auto& t : texts) {
    EXPECT_EQ(tok->decode(tok->encode(t)), t) << t;
    EXPECT_EQ(tok->decode(tok->encode(t, {.add_bos = true})), t) << t;
  }
}

// Without any file: a vocabulary built in memory, as from_llama2c receives it.
TEST(Llama2c, InMemoryVocabulary) {
  format::Llama2cVocab v;
  v.max_token_length = 6;
  v.pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.pieces.push_back(buf);
  }
  v.scores.assign(v.pieces.size(), 0.0f);
  auto add = [&](const std::string& piece, float score) {
    v.pieces.push_back(piece);
    v.scores.push_back(score);
    return static_cast<int32_t>(v.pieces.size() - 1);
  };
  const int32_t sp = add(" ", -10), a = add("a", -10), b = add("b", -10), ab = add("ab", -1), ba = add("ba", -1);
  const int32_t sp_a = add(" a", -5);
  auto tok = from_llama2c(v);
  // " abab": " a" (-5) loses to "ab" (-1) and "ba" (-1); ties go to the
  // leftmost pair: ab at 1, then ab at 3 (ba at 2 is gone).
  EXPECT_EQ(tok->encode("abab"), (Ids{sp, ab, ab}));
  // " bab": "ba" (left 1) before "ab" (left 2).
  EXPECT_EQ(tok->encode("bab"), (Ids{sp, ba, b}));
  EXPECT_EQ(tok->encode("a"), Ids{sp_a});
  // "c" is no piece: byte token 'c' + 3, and it never merges.
  EXPECT_EQ(tok->encode("ca"), (Ids{sp, 'c' + 3, a}));
  EXPECT_EQ(tok->decode(tok->encode("ca b")), "ca b");
}

TEST(Llama2c, RejectsTooSmallVocabulary) {
  format::Llama2cVocab v;
  v.pieces = {"<unk>", "<s>"};
  v.scores = {0, 0};
  EXPECT_THROW(from_llama2c(v), Error);
  v.pieces.push_back("</s>");
  EXPECT_THROW(from_llama2c(v), Error);  // scores do not match
}

}  // namespace
}  // namespace loom::tokenizer
