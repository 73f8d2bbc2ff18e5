// SentencePiece BPE on a small vocabulary built in memory, so each rule can
// be followed by hand: merge order by score, leftmost on ties, byte fallback,
// unknown fallback, special-token splitting, the dummy prefix.
#include "loom/tokenizer/spm.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/tokenizer/vocab.h"

namespace loom::tokenizer {
namespace {

using Ids = std::vector<int32_t>;
const std::string kMarker = "\xE2\x96\x81";  // ▁

struct Builder {
  VocabData data;
  Builder(bool byte_tokens = true) {
    add("<unk>", 0, TokenType::Unknown);
    add("<s>", 0, TokenType::Control);
    add("</s>", 0, TokenType::Control);
    if (!byte_tokens) return;
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      add(buf, 0, TokenType::Byte);
    }
  }
  int32_t add(const std::string& piece, float score, TokenType type = TokenType::Normal) {
    data.pieces.push_back(piece);
    data.scores.push_back(score);
    data.types.push_back(type);
    return static_cast<int32_t>(data.pieces.size() - 1);
  }
  std::unique_ptr<Tokenizer> build(bool add_space_prefix = true) {
    SpmOptions o;
    o.add_space_prefix = add_space_prefix;
    o.bos = 1;
    o.eos = 2;
    o.unk = 0;
    o.eog = {2};
    data.source = "test vocabulary";
    return std::make_unique<SpmTokenizer>(Vocab(data), o);
  }
};

// Byte token ids in the builder's layout: byte + 3.
int32_t byte(unsigned char b) { return 3 + b; }

struct Small : ::testing::Test {
  Builder v;
  int32_t sp = v.add(kMarker, -10), a = v.add("a", -10), b = v.add("b", -10), c = v.add("c", -10);
  int32_t ab = v.add("ab", -1), bc = v.add("bc", -1), sp_a = v.add(kMarker + "a", -2), abc = v.add("abc", -0.5f);
  int32_t tag = v.add("<tag>", 0, TokenType::UserDefined), ctl = v.add("<|ctl|>", 0, TokenType::Control);
  int32_t sp_b = v.add(kMarker + "b", -3);
};

TEST_F(Small, MergesHighestScoreFirst) {
  auto tok = v.build();
  // ▁ a b c: "ab" and "bc" (-1) beat "▁a" (-2); the tie goes left: "ab";
  // then "abc" (-0.5); "▁abc" is no piece.
  EXPECT_EQ(tok->encode("abc"), (Ids{sp, abc}));
  EXPECT_EQ(tok->decode(Ids{sp, abc}), "abc");
}

TEST_F(Small, TiesGoToTheLeftmostPair) {
  auto tok = v.build();
  // ▁ b c a b: "bc" (left 1) and "ab" (left 3) tie at -1 and both apply;
  // "▁b" (-3) is then stale.
  EXPECT_EQ(tok->encode("bcab"), (Ids{sp, bc, ab}));
  // ▁ a b c a: "ab" at 1 wins over "bc" at 2, then "abc"; "ca" is no piece.
  EXPECT_EQ(tok->encode("abca"), (Ids{sp, abc, a}));
}

TEST_F(Small, ByteFallbackForMissingCharacters) {
  auto tok = v.build();
  EXPECT_EQ(tok->encode("\xC3\xA9"), (Ids{sp, byte(0xC3), byte(0xA9)}));
  EXPECT_EQ(tok->encode("a\xC3\xA9"), (Ids{sp_a, byte(0xC3), byte(0xA9)}));
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA9 b")), "a\xC3\xA9 b");
}

TEST_F(Small, UnknownTokenWithoutByteTokens) {
  Builder nb(/*byte_tokens=*/false);
  const int32_t nsp = nb.add(kMarker, -1);
  const int32_t na = nb.add("a", -1);
  auto tok = nb.build();
  // One <unk> per character that is no piece.
  EXPECT_EQ(tok->encode("a\xC3\xA9\xC3\xA9"), (Ids{nsp, na, 0, 0}));
  EXPECT_EQ(tok->decode(Ids{nsp, na, 0}), "a");
  EXPECT_EQ(tok->decode(Ids{nsp, na, 0}, /*special=*/true), "a<unk>");
}

TEST_F(Small, UserDefinedTokensAreAlwaysSplitOut) {
  auto tok = v.build();
  // Each run of text after a special token gets its own dummy prefix.
  EXPECT_EQ(tok->encode("a<tag>b"), (Ids{sp_a, tag, sp_b}));
  EXPECT_EQ(tok->token_bytes(tag), "<tag>");
}

TEST_F(Small, ControlTokensOnlyWithParseSpecial) {
  auto tok = v.build();
  EXPECT_EQ(tok->encode("<|ctl|>a", {.parse_special = true}), (Ids{ctl, sp_a}));
  // As text: '<' '|' 'c' 't' 'l' '|' '>' 'a', only c and a are pieces.
  EXPECT_EQ(tok->encode("<|ctl|>a"),
            (Ids{sp, byte('<'), byte('|'), c, byte('t'), byte('l'), byte('|'), byte('>'), a}));
  EXPECT_EQ(tok->token_bytes(ctl), "");
  EXPECT_EQ(tok->token_bytes(ctl, true), "<|ctl|>");
  EXPECT_EQ(tok->decode(tok->encode("<|ctl|>a", {.parse_special = true}), true), "<|ctl|>a");
}

TEST_F(Small, NoDummyPrefixWhenTheVocabularySaysSo) {
  auto tok = v.build(/*add_space_prefix=*/false);
  EXPECT_FALSE(tok->adds_space_prefix());
  EXPECT_EQ(tok->encode("abc"), Ids{abc});
  EXPECT_EQ(tok->encode(" abc"), (Ids{sp, abc}));
  EXPECT_EQ(tok->decode(Ids{sp, abc}), " abc");  // nothing to strip
}

TEST_F(Small, DecodeStripsOnlyTheDummyPrefix) {
  auto tok = v.build();
  EXPECT_EQ(tok->decode(Ids{sp, sp, a}), " a");      // "  a" minus the dummy prefix
  EXPECT_EQ(tok->decode(Ids{1, sp_a, sp_b}), "a b");  // after BOS
  EXPECT_EQ(tok->decode(Ids{1, sp_a}, true), "<s>a");
  EXPECT_EQ(tok->decode(Ids{a, sp_b}), "a b");
  EXPECT_EQ(tok->decode(Ids{}), "");
  EXPECT_THROW(tok->decode(Ids{a, 999}), Error);
}

TEST(SpmVocab, RejectsInconsistentTables) {
  VocabData d;
  d.source = "bad";
  d.pieces = {"a", "b"};
  d.types = {TokenType::Normal};
  EXPECT_THROW(Vocab{d}, Error);
  d.types = {TokenType::Normal, TokenType::Byte};  // "b" is no <0xAB>
  EXPECT_THROW(SpmTokenizer(Vocab(d), SpmOptions{}), Error);
  d.types = {TokenType::Normal, TokenType::Normal};
  SpmOptions o;
  o.bos = 5;
  EXPECT_THROW(SpmTokenizer(Vocab(d), o), Error);
}

}  // namespace
}  // namespace loom::tokenizer
