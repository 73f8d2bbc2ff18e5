// StreamDecoder: token-by-token printing that never emits half a UTF-8
// character, strips the dummy-prefix space at the start like decode(), and
// turns ill-formed bytes into U+FFFD.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "loom/format/llama2c.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"

namespace loom::tokenizer {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

// A llama2.c-style vocabulary: <unk> <s> </s>, byte tokens at byte + 3, then
// " " (259), "a" (260), " a" (261).
std::unique_ptr<Tokenizer> small() {
  format::Llama2cVocab v;
  v.pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.pieces.push_back(buf);
  }
  v.pieces.insert(v.pieces.end(), {" ", "a", " a"});
  v.scores.assign(v.pieces.size(), 0.0f);
  return from_llama2c(v);
}
constexpr int32_t kSpace = 259, kA = 260, kSpaceA = 261;
int32_t byte(unsigned char b) { return 3 + b; }

TEST(StreamDecoder, HoldsASplitCharacterUntilItsLastByte) {
  auto tok = small();
  StreamDecoder out(*tok);
  EXPECT_EQ(out.push(kA), "a");
  // 日 = E6 97 A5
  EXPECT_EQ(out.push(byte(0xE6)), "");
  EXPECT_EQ(out.push(byte(0x97)), "");
  EXPECT_EQ(out.push(byte(0xA5)), "\xE6\x97\xA5");
  // 🦙 = F0 9F A6 99, followed by a space
  EXPECT_EQ(out.push(byte(0xF0)), "");
  EXPECT_EQ(out.push(byte(0x9F)), "");
  EXPECT_EQ(out.push(byte(0xA6)), "");
  EXPECT_EQ(out.push(byte(0x99)), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(out.push(kSpaceA), " a");
  EXPECT_EQ(out.flush(), "");
}

TEST(StreamDecoder, StripsTheDummyPrefixAtTheStart) {
  auto tok = small();
  StreamDecoder out(*tok);
  EXPECT_EQ(out.push(kSpaceA), "a");
  EXPECT_EQ(out.push(kSpaceA), " a");
  out.reset();
  EXPECT_EQ(out.push(1), "");  // BOS: not text, and the prefix comes after it
  EXPECT_EQ(out.push(kSpaceA), "a");
  EXPECT_EQ(out.push(kSpace), " ");

  StreamDecoder special(*tok, /*special=*/true);
  EXPECT_EQ(special.push(1), "<s>");
  EXPECT_EQ(special.push(kSpaceA), "a");
  EXPECT_EQ(special.push(2), "</s>");
}

TEST(StreamDecoder, ReplacesIllFormedBytes) {
  auto tok = small();
  StreamDecoder out(*tok);
  EXPECT_EQ(out.push(byte(0xFF)), kFFFD);  // can never start a character
  EXPECT_EQ(out.push(byte(0x80)), kFFFD);  // a continuation byte on its own
  // E6 97 then "a": the cut-off character is one U+FFFD (its maximal subpart).
  EXPECT_EQ(out.push(byte(0xE6)), "");
  EXPECT_EQ(out.push(byte(0x97)), "");
  EXPECT_EQ(out.push(kA), kFFFD + "a");
  // ED A0 is a surrogate's start: ill-formed at once (ED allows 80..9F only).
  EXPECT_EQ(out.push(byte(0xED)), "");
  EXPECT_EQ(out.push(byte(0xA0)), kFFFD + kFFFD);
}

// The example of Unicode 15 §3.9, Table 3-8 ("U+FFFD for maximal subparts"):
// 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 -> a FFFD FFFD FFFD b FFFD c FFFD FFFD d.
TEST(StreamDecoder, MaximalSubpartsAsInTheUnicodeStandard) {
  auto tok = small();
  StreamDecoder out(*tok);
  std::string text;
  for (unsigned char b : {0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64}) {
    text += out.push(byte(b));
  }
  text += out.flush();
  EXPECT_EQ(text, "a" + kFFFD + kFFFD + kFFFD + "b" + kFFFD + "c" + kFFFD + kFFFD + "d");
}

TEST(StreamDecoder, FlushEmitsWhatIsLeft) {
  auto tok = small();
  StreamDecoder out(*tok);
  EXPECT_EQ(out.push(kA), "a");
  EXPECT_EQ(out.push(byte(0xF0)), "");
  EXPECT_EQ(out.push(byte(0x9F)), "");
  EXPECT_EQ(out.flush(), kFFFD);
  EXPECT_EQ(out.flush(), "");
  // The stream goes on after a flush (no second dummy prefix to strip).
  EXPECT_EQ(out.push(kSpaceA), " a");
}

TEST(StreamDecoder, ConcatenationEqualsDecode) {
  LOOM_DATA(path, "models/tok512.bin");
  auto tok = from_llama2c(format::read_llama2c_vocab(path, 512));
  const std::string text = "Once upon a time 日本 🦙 caf\xC3\xA9 “quoted” — done.";
  const auto ids = tok->encode(text, {.add_bos = true});
  StreamDecoder out(*tok);
  std::string streamed;
  size_t max_pending_pushes = 0, pending = 0;
  for (int32_t id : ids) {
    const std::string piece = out.push(id);
    streamed += piece;
    pending = piece.empty() ? pending + 1 : 0;
    max_pending_pushes = std::max(max_pending_pushes, pending);
  }
  streamed += out.flush();
  EXPECT_EQ(streamed, tok->decode(ids));
  EXPECT_EQ(streamed, text);
  EXPECT_GE(max_pending_pushes, 3u);  // 🦙 came as four byte tokens
}

}  // namespace
}  // namespace loom::tokenizer
