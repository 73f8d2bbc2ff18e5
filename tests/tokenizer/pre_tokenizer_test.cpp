// Pre-tokenization with the families' regexes through PCRE2: word
// boundaries worked out by hand from the patterns, Unicode classes beyond
// ASCII, ill-formed UTF-8 kept apart, and NFC.
#include <gtest/gtest.h>

#include "loom/core/error.h"
#include "loom/tokenizer/byte_level.h"
#include "loom/tokenizer/pre_tokenizer.h"

namespace loom::tokenizer {
namespace {

std::vector<std::string> words(const std::string& family, const std::string& text) {
  PreTokenizer pre(pre_tokenizer_spec(family).patterns, family);
  std::vector<Span> spans;
  pre.split(text, spans);
  std::vector<std::string> out;
  size_t covered = 0;
  for (const Span& s : spans) {
    EXPECT_EQ(s.begin, covered) << "words must cover the text in order";
    covered = s.end;
    out.push_back(text.substr(s.begin, s.end - s.begin));
  }
  EXPECT_EQ(covered, text.size());
  return out;
}

using W = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  // 's is a contraction; " ?\p{L}+" takes the space before a word; "\s+(?!\S)"
  // leaves the last space of a run to the next word.
  EXPECT_EQ(words("gpt-2", "He's  here 123!"), (W{"He", "'s", " ", " here", " 123", "!"}));
  // \p{L} covers every script, \p{N} every digit kind.
  EXPECT_EQ(words("gpt-2", "Ελλάδα ٣٤"), (W{"Ελλάδα", " ٣٤"}));
}

TEST(PreTokenizer, Llama3) {
  // Digits in groups of at most three; case-insensitive contractions; a
  // non-letter before letters joins them; newlines keep to themselves.
  EXPECT_EQ(words("llama3", "12345 I'LL go\n\nok"), (W{"123", "45", " I", "'LL", " go", "\n\n", "ok"}));
  EXPECT_EQ(words("llama3", "$hello"), (W{"$hello"}));
}

TEST(PreTokenizer, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(words("qwen2", "x 2024"), (W{"x", " ", "2", "0", "2", "4"}));
}

TEST(PreTokenizer, DeepseekLlmIsASequenceOfSplits) {
  // "[\r\n]" isolates the newline first; then letters with one leading
  // space; then CJK runs; then digit runs.
  EXPECT_EQ(words("deepseek-llm", "ab 中文\n12"), (W{"ab", " ", "中文", "\n", "12"}));
}

TEST(PreTokenizer, IllFormedUtf8IsKeptApart) {
  // 0xFF starts nothing; "\xE4\xBD" is a truncated character: both are words
  // of their own and the text around them is split as usual.
  EXPECT_EQ(words("gpt-2", "ab\xFF" "cd \xE4\xBD"), (W{"ab", "\xFF", "cd", " ", "\xE4\xBD"}));
}

TEST(PreTokenizer, UnknownFamilyAndBadPattern) {
  EXPECT_THROW(pre_tokenizer_spec("no-such-family"), Error);
  EXPECT_THROW(PreTokenizer({"(unclosed"}, "test"), Error);
}

TEST(PreTokenizer, Nfc) {
  // e + U+0301 COMBINING ACUTE ACCENT composes to U+00E9; Hangul jamo compose
  // to a syllable; ill-formed bytes stay.
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // U+1100 U+1161 -> U+AC00
  EXPECT_EQ(nfc("a\xFF" "b"), "a\xFF" "b");
}

TEST(ByteLevel, Gpt2Map) {
  // bytes_to_unicode: printable bytes map to themselves; space (0x20) is the
  // 33rd non-printable byte in order, so U+0100 + 32 = U+0120 'Ġ'; 0x0A is
  // the 11th, U+010A 'Ċ'.
  EXPECT_EQ(byte_level::from_bytes(" a\n"), "\xC4\xA0" "a" "\xC4\x8A");
  std::string raw;
  ASSERT_TRUE(byte_level::to_bytes("\xC4\xA0world", raw));
  EXPECT_EQ(raw, " world");
  EXPECT_FALSE(byte_level::to_bytes("<\xEF\xBD\x9C>", raw));  // U+FF5C is not in the map
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  ASSERT_TRUE(byte_level::to_bytes(byte_level::from_bytes(all), raw));
  EXPECT_EQ(raw, all);
}

}  // namespace
}  // namespace loom::tokenizer
