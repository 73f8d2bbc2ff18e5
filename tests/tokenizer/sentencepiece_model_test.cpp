// SentencePiece .model files (protobuf) for Llama 2, ChatGLM3 and TeleChat2:
// the parser, SentencePiece's own encoding rules, the families' special
// tokens, and clear errors for truncated or corrupt files.
//
// Expected ids of the hand-checked strings were worked out independently of
// loom with a 60-line Python script (Debian python3, no packages): it reads
// the protobuf with its own varint reader, writes the text with U+2581 for
// spaces and one leading U+2581 (add_dummy_prefix), splits it into
// characters (user-defined pieces, longest first, as frozen symbols), then
// repeatedly merges the adjacent pair whose concatenation is the highest-
// scoring normal piece (leftmost on ties), and maps leftovers to <0xXX>
// byte pieces ("\n你好" -> 30910 13 39701 with the prefix). ChatGLM3's
// "你好" -> 36474 54591 also matches the ids its model card examples show
// after [gMASK]=64790 sop=64792.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "loom/core/error.h"
#include "loom/tokenizer/sentencepiece_model.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"
#include "vocab_cases.h"

namespace loom::tokenizer {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;
using testing::read_all;

#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kLongText = 256 * 1024;  // sanitizer builds: same check, smaller size
#else
constexpr size_t kLongText = 1 << 20;
#endif

// The .inp test strings of every vocabulary in shared/data/vocab.
std::vector<std::string> all_test_strings() {
  std::vector<std::string> out;
  for (const char* name : {"llama-spm", "phi-3", "gpt-2", "deepseek-llm", "llama-bpe", "qwen2"}) {
    const auto lookup = loom::test::find_data(std::string("vocab/ggml-vocab-") + name + ".gguf.inp");
    EXPECT_TRUE(lookup.found) << lookup.message;
    if (!lookup.found) continue;
    const std::string path = lookup.path;
    for (auto& c : testing::read_vocab_cases(path.substr(0, path.size() - 4))) out.push_back(c.text);
  }
  return out;
}

// The first `limit` bytes of the Tang/Song poetry corpus, cut back to a
// character boundary.
std::string poetry(size_t limit) {
  const auto lookup = loom::test::find_data("corpora/zh/tang_song_poetry.txt");
  EXPECT_TRUE(lookup.found) << lookup.message;
  std::string text = read_all(lookup.path).substr(0, limit);
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
  if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
  return text;
}

void expect_round_trips(const Tokenizer& tok) {
  for (const std::string& s : all_test_strings()) EXPECT_EQ(tok.decode(tok.encode(s)), s) << s;
  const std::string text = poetry(kLongText);
  ASSERT_GT(text.size(), kLongText - 4);
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tok.encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 30.0);
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(SentencePieceModel, ChatGlm3) {
  LOOM_DATA(path, "tokenizers/chatglm3/tokenizer.model");
  auto tok = load(fs::path(path).parent_path().string());
  // 64789 pieces + the wrapper's 9 specials.
  EXPECT_EQ(tok->vocab_size(), 64798);
  EXPECT_EQ(tok->piece(64790), "[gMASK]");
  EXPECT_EQ(tok->piece(64792), "sop");
  EXPECT_EQ(tok->piece(64795), "<|user|>");
  EXPECT_EQ(tok->piece(64796), "<|assistant|>");
  EXPECT_EQ(tok->type(64795), TokenType::Control);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_TRUE(tok->is_eog(64795));
  EXPECT_FALSE(tok->is_eog(64796));
  EXPECT_FALSE(tok->default_add_bos());
  EXPECT_EQ(tok->bos_tokens(), (Ids{64790, 64792}));

  EXPECT_EQ(tok->encode("你好"), (Ids{36474, 54591}));
  EXPECT_EQ(tok->encode("你好", {.add_bos = true}), (Ids{64790, 64792, 36474, 54591}));
  EXPECT_EQ(tok->encode("Hello world"), (Ids{13755, 993}));
  EXPECT_EQ(tok->encode("床前明月光，疑是地上霜。"),
            (Ids{30910, 55629, 54624, 54672, 41623, 31123, 55507, 54532, 34245, 57244, 31155}));
  EXPECT_EQ(tok->encode(" 2024年"), (Ids{265, 30943, 30940, 30943, 30972, 54540}));
  EXPECT_EQ(tok->encode("a\tb\nc"), (Ids{260, 12, 30931, 13, 30922}));  // \t and \n by byte fallback (3 + byte)
  // After a control token the text gets its own dummy prefix (30910 "▁"),
  // and "你好" without one is the single piece 39701.
  EXPECT_EQ(tok->encode("<|user|>\n你好", {.parse_special = true}), (Ids{64795, 30910, 13, 39701}));
  EXPECT_NE(tok->encode("<|user|>").front(), 64795);  // as plain text unless asked
  expect_round_trips(*tok);
}

TEST(SentencePieceModel, TeleChat2) {
  LOOM_DATA(path, "tokenizers/telechat2/tokenizer.model");
  auto tok = load(fs::path(path).parent_path().string());
  EXPECT_EQ(tok->vocab_size(), 131072);
  EXPECT_EQ(tok->piece(1), "<_start>");
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_EQ(tok->piece(3), "<_pad>");
  EXPECT_FALSE(tok->default_add_bos());  // tokenizer_config.json: add_bos_token false
  EXPECT_TRUE(tok->is_eog(2));

  EXPECT_EQ(tok->encode("你好"), (Ids{96343}));
  EXPECT_EQ(tok->encode("Hello world"), (Ids{25718, 1320}));
  EXPECT_EQ(tok->encode("床前明月光，疑是地上霜。"),
            (Ids{126136, 117718, 126367, 28555, 126161, 127115, 126181, 8834, 128408, 126169}));
  // Digits and "\n" are user-defined pieces (18 + digit, 29): one token each,
  // and no dummy prefix after them.
  EXPECT_EQ(tok->encode(" 2024年"), (Ids{390, 20, 18, 20, 22, 126234}));
  EXPECT_EQ(tok->encode("a\tb\nc"), (Ids{393, 30, 126158, 29, 126148}));
  EXPECT_EQ(tok->encode("<_user>你好", {.parse_special = true}).front(), 4);
  expect_round_trips(*tok);
}

// Meta's Llama 2 tokenizer.model gives llama.cpp's llama-spm vectors.
TEST(SentencePieceModel, Llama2MatchesTheLlamaSpmVectors) {
  LOOM_DATA(path, "models/llama2_tokenizer.model");
  LOOM_DATA(base, "vocab/ggml-vocab-llama-spm.gguf.inp");
  auto tok = load(path);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_TRUE(tok->default_add_bos());
  testing::expect_vectors(*tok, base.substr(0, base.size() - 4), 46);
}

// SentencePiece's normalizer turns each byte of ill-formed UTF-8 into U+FFFD.
TEST(SentencePieceModel, IllFormedUtf8BecomesReplacementCharacters) {
  LOOM_DATA(path, "tokenizers/chatglm3/tokenizer.model");
  auto tok = load(path);
  EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(tok->decode(tok->encode("\xE4\xBD")), "\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated 你: two bytes, two U+FFFD
}

// Truncating a real model anywhere, or corrupting it, gives a clear error.
TEST(SentencePieceModel, TruncatedAndCorruptFilesGiveClearErrors) {
  LOOM_DATA(path, "tokenizers/chatglm3/tokenizer.model");
  const std::string bytes = read_all(path);
  for (size_t size : {size_t{0}, size_t{1}, size_t{2}, size_t{5}, size_t{100}, size_t{4097}, bytes.size() / 2,
                      bytes.size() - 1}) {
    try {
      const auto m = parse_sentencepiece_model(std::string_view(bytes).substr(0, size), "cut.model");
      ADD_FAILURE() << "a model cut at " << size << " bytes parsed (" << m.pieces.size() << " pieces)";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("[tokenizer] cut.model: ", 0), 0u) << msg;
    }
  }
  std::string bad = bytes;
  bad[0] = '\x0B';  // field 1 with wire type 3 (groups, not in a ModelProto)
  EXPECT_THROW(parse_sentencepiece_model(bad, "bad.model"), Error);
  bad = bytes;
  bad[1] = '\xFF';  // the first piece's length becomes a runaway varint / huge length
  EXPECT_THROW(parse_sentencepiece_model(bad, "bad.model"), Error);

  // Through load(): the file name is in the message.
  const std::string dir = loom::test::scratch_dir("spm_truncated");
  const std::string cut = dir + "/tokenizer.model";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  try {
    load(cut);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(cut), std::string::npos) << e.what();
  }
}

// A hand-made ModelProto: one piece "a" (score -1, NORMAL); a trainer spec
// with model_type 2 (BPE) and pad_id -1 (a negative int32 is a 10-byte
// varint on the wire); a normalizer spec with add_dummy_prefix false.
TEST(SentencePieceModel, ParsesFieldsByHand) {
  using namespace std::string_literals;
  // piece: 0A 01 'a' (text) | 15 00 00 80 BF (score, float -1.0) | 18 01 (type NORMAL)
  const std::string piece = "\x0A\x01" "a" "\x15\x00\x00\x80\xBF\x18\x01"s;
  ASSERT_EQ(piece.size(), 10u);
  // trainer: 18 02 (field 3 = 2) | D8 02 (field 43, varint) FF x9 01 (-1)
  const std::string trainer = "\x18\x02\xD8\x02\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01"s;
  ASSERT_EQ(trainer.size(), 14u);
  const std::string model = "\x0A\x0A"s + piece + "\x12\x0E"s + trainer + "\x1A\x02\x18\x00"s;
  const auto m = parse_sentencepiece_model(model, "hand.model");
  ASSERT_EQ(m.pieces.size(), 1u);
  EXPECT_EQ(m.pieces[0].piece, "a");
  EXPECT_EQ(m.pieces[0].score, -1.0f);
  EXPECT_EQ(m.pieces[0].type, 1);
  EXPECT_EQ(m.model_type, SentencePieceModel::kBpe);
  EXPECT_EQ(m.pad_id, -1);
  EXPECT_EQ(m.bos_id, 1);  // the proto's defaults where the file says nothing
  EXPECT_FALSE(m.add_dummy_prefix);
  EXPECT_TRUE(m.remove_extra_whitespaces);
  EXPECT_TRUE(looks_like_sentencepiece_model(model));
  // A piece of type 7 does not exist.
  std::string bad_type = model;
  bad_type[2 + 9] = '\x07';
  EXPECT_THROW(parse_sentencepiece_model(bad_type, "hand.model"), Error);
}

}  // namespace
}  // namespace loom::tokenizer
