// llama2.c checkpoints and tokenizers: the real stories260K model and its
// tok512 tokenizer (shared/data README), synthetic untied checkpoints, and
// malformed files.
#include "loom/format/llama2c.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "support/test_data.h"

namespace {

using namespace loom::format;
using loom::Shape;

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Bytes in float-aligned storage, as a mapping would be.
struct AlignedBytes {
  std::vector<float> storage;
  size_t size = 0;
  explicit AlignedBytes(const std::vector<uint8_t>& b, size_t n) : storage((n + 3) / 4 + 1), size(n) {
    std::memcpy(storage.data(), b.data(), n);
  }
  std::shared_ptr<const MappedFile> file(const std::string& name) const {
    return MappedFile::from_memory(storage.data(), size, name);
  }
};

void expect_error(const std::function<void()>& f, const std::string& name, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const loom::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

// Float counts of the README's layout, by hand for stories260K:
// D=64 H=172 L=5 heads=8 kv=4 V=512 seq=512, head_size 8, KVD 32.
constexpr size_t kEmb = 512 * 64, kRmsAtt = 5 * 64, kWq = 5 * 64 * 64, kWk = 5 * 32 * 64;
constexpr size_t kW1 = 5 * 172 * 64, kFreq = 512 * 4;
constexpr size_t kStoriesFloats = kEmb + kRmsAtt + kWq + 2 * kWk + kWq + kRmsAtt + 3 * kW1 + 64 + 2 * kFreq;

TEST(Llama2c, Stories260KHeaderAndArrays) {
  LOOM_DATA(path, "models/stories260K.bin");
  ASSERT_EQ(std::filesystem::file_size(path), 28 + 4 * kStoriesFloats);  // 1056540 bytes
  const auto ck = read_llama2c_checkpoint(path);
  const auto& c = ck.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_TRUE(looks_like_llama2c(*ck.file));

  EXPECT_EQ(ck.token_embedding.shape, (Shape{512, 64}));
  EXPECT_EQ(ck.wq.shape, (Shape{5, 64, 64}));
  EXPECT_EQ(ck.wk.shape, (Shape{5, 32, 64}));
  EXPECT_EQ(ck.wv.shape, (Shape{5, 32, 64}));
  EXPECT_EQ(ck.wo.shape, (Shape{5, 64, 64}));
  EXPECT_EQ(ck.w1.shape, (Shape{5, 172, 64}));
  EXPECT_EQ(ck.w2.shape, (Shape{5, 64, 172}));
  EXPECT_EQ(ck.w3.shape, (Shape{5, 172, 64}));
  EXPECT_EQ(ck.rms_final.shape, Shape{64});
  EXPECT_EQ(ck.wcls.data, ck.token_embedding.data);

  // Positions by hand from the README's order.
  const auto* base = reinterpret_cast<const float*>(ck.file->data() + 28);
  EXPECT_EQ(ck.token_embedding.data, base);
  EXPECT_EQ(ck.rms_att.data, base + kEmb);
  EXPECT_EQ(ck.wq.data, base + kEmb + kRmsAtt);
  EXPECT_EQ(ck.wk.data, base + kEmb + kRmsAtt + kWq);
  EXPECT_EQ(ck.wv.data, base + kEmb + kRmsAtt + kWq + kWk);
  EXPECT_EQ(ck.wo.data, base + kEmb + kRmsAtt + kWq + 2 * kWk);
  EXPECT_EQ(ck.rms_ffn.data, base + kEmb + kRmsAtt + 2 * kWq + 2 * kWk);
  EXPECT_EQ(ck.w1.data, base + kEmb + 2 * kRmsAtt + 2 * kWq + 2 * kWk);
  EXPECT_EQ(ck.rms_final.data, base + kEmb + 2 * kRmsAtt + 2 * kWq + 2 * kWk + 3 * kW1);

  // The first embedding value, read straight from the file bytes.
  const auto raw = read_all(path);
  float first = 0;
  std::memcpy(&first, raw.data() + 28, 4);
  EXPECT_EQ(ck.token_embedding.data[0], first);
}

TEST(Llama2c, Tok512Vocab) {
  LOOM_DATA(path, "models/tok512.bin");
  const auto v = read_llama2c_vocab(path, 512);
  EXPECT_EQ(v.max_token_length, 7);
  ASSERT_EQ(v.pieces.size(), 512u);
  ASSERT_EQ(v.scores.size(), 512u);
  EXPECT_EQ(v.pieces[0], "<unk>");
  EXPECT_EQ(v.pieces[1], "\n<s>\n");  // llama2.c's export wraps BOS/EOS in newlines
  EXPECT_EQ(v.pieces[2], "\n</s>\n");
  EXPECT_EQ(v.pieces[3], "<0x00>");
  EXPECT_EQ(v.pieces[258], "<0xFF>");
  EXPECT_EQ(v.pieces[259], " t");
  EXPECT_EQ(v.pieces[260], "he");
  EXPECT_EQ(v.scores[260], -1.0f);
  EXPECT_EQ(v.pieces[511], "\xe2\x80\x8a");  // U+200A HAIR SPACE
  EXPECT_EQ(v.scores[511], -252.0f);

  // Fewer entries than the file holds is fine; more is an error naming the token.
  EXPECT_EQ(read_llama2c_vocab(path, 10).pieces.size(), 10u);
  expect_error([&] { read_llama2c_vocab(path, 513); }, path, "token 512");
  expect_error([&] { read_llama2c_vocab(path, 100000); }, path, "100000 tokens");
}

TEST(Llama2c, TruncatedCheckpointIsAnError) {
  LOOM_DATA(path, "models/stories260K.bin");
  const auto raw = read_all(path);
  for (size_t cut : {size_t(0), size_t(4), size_t(27), size_t(28), size_t(1000), raw.size() / 2, raw.size() - 1}) {
    SCOPED_TRACE(cut);
    AlignedBytes b(raw, cut);
    auto f = b.file("cut.bin");
    EXPECT_FALSE(looks_like_llama2c(*f));
    expect_error([&] { parse_llama2c_checkpoint(f); }, "cut.bin", cut < 28 ? "too small" : "truncated");
  }
  // A longer file still reads, but is not an exact match.
  auto longer = raw;
  longer.resize(raw.size() + 4);
  AlignedBytes b(longer, longer.size());
  EXPECT_FALSE(looks_like_llama2c(*b.file("long.bin")));
  EXPECT_EQ(parse_llama2c_checkpoint(b.file("long.bin")).config.dim, 64);
}

std::vector<uint8_t> header(std::vector<int32_t> h, size_t total_bytes) {
  std::vector<uint8_t> b(std::max<size_t>(total_bytes, 28));
  std::memcpy(b.data(), h.data(), 28);
  return b;
}

TEST(Llama2c, AbsurdHeadersAreErrors) {
  const size_t big = 1 << 16;
  const std::pair<std::vector<int32_t>, const char*> cases[] = {
      {{0, 172, 5, 8, 4, 512, 512}, "dim is 0"},
      {{-64, 172, 5, 8, 4, 512, 512}, "dim is -64"},
      {{1 << 30, 172, 5, 8, 4, 512, 512}, "dim is 1073741824"},
      {{64, 0, 5, 8, 4, 512, 512}, "hidden_dim is 0"},
      {{64, 172, 100000, 8, 4, 512, 512}, "n_layers is 100000"},
      {{64, 172, 5, 7, 1, 512, 512}, "not a multiple of n_heads"},
      {{64, 172, 5, 8, 3, 512, 512}, "not a multiple of n_kv_heads"},
      {{64, 172, 5, 8, 16, 512, 512}, "n_kv_heads is 16"},
      {{64, 172, 5, 64, 4, 512, 512}, "odd"},  // head size 1
      {{64, 172, 5, 8, 4, 0, 512}, "vocab_size is 0"},
      {{64, 172, 5, 8, 4, INT32_MIN, 512}, "vocab_size is 2147483648"},
      {{64, 172, 5, 8, 4, 512, -1}, "seq_len is -1"},
      {{64, 172, 5, 8, 4, 512, 512}, "truncated"},  // valid header, 64 KiB of data is too little
  };
  for (const auto& [h, needle] : cases) {
    SCOPED_TRACE(needle);
    AlignedBytes b(header(h, big), big);
    auto f = b.file("absurd.bin");
    EXPECT_FALSE(looks_like_llama2c(*f));
    expect_error([&] { parse_llama2c_checkpoint(f); }, "absurd.bin", needle);
  }
}

TEST(Llama2c, UntiedClassifierFollowsTheRopeTables) {
  // dim 8, hidden 16, 1 layer, 2 heads, 1 kv head (head 4, KVD 4), vocab 10 untied, seq 3.
  // Floats: emb 80 + rms_att 8 + wq 64 + wk 32 + wv 32 + wo 64 + rms_ffn 8 + w1/w2/w3 3*128
  //         + rms_final 8 + freq 2*3*2 + wcls 80 = 772.
  const size_t floats = 80 + 8 + 64 + 32 + 32 + 64 + 8 + 384 + 8 + 12 + 80;
  ASSERT_EQ(floats, 772u);
  auto bytes = header({8, 16, 1, 2, 1, -10, 3}, 28 + 4 * floats);
  for (size_t i = 0; i < floats; ++i) {
    const float x = float(i);
    std::memcpy(bytes.data() + 28 + 4 * i, &x, 4);
  }
  AlignedBytes b(bytes, bytes.size());
  auto f = b.file("untied.bin");
  EXPECT_TRUE(looks_like_llama2c(*f));
  const auto ck = parse_llama2c_checkpoint(f);
  EXPECT_FALSE(ck.config.shared_classifier);
  EXPECT_EQ(ck.config.vocab_size, 10);
  EXPECT_EQ(ck.wk.shape, (Shape{1, 4, 8}));
  EXPECT_EQ(ck.wcls.shape, (Shape{10, 8}));
  EXPECT_EQ(ck.wcls.data[0], float(floats - 80));
  EXPECT_EQ(ck.rms_final.data[0], float(80 + 8 + 64 + 32 + 32 + 64 + 8 + 384));

  // Without the classifier the same file is 80 floats short.
  AlignedBytes shorter(bytes, bytes.size() - 4 * 80);
  EXPECT_FALSE(looks_like_llama2c(*shorter.file("short.bin")));
  expect_error([&] { parse_llama2c_checkpoint(shorter.file("short.bin")); }, "short.bin", "truncated");
}

TEST(Llama2c, UnalignedBufferIsRejected) {
  LOOM_DATA(path, "models/stories260K.bin");
  const auto raw = read_all(path);
  std::vector<uint8_t> shifted(raw.size() + 1);
  std::memcpy(shifted.data() + 1, raw.data(), raw.size());
  auto f = MappedFile::from_memory(shifted.data() + 1, raw.size(), "shifted.bin");
  if (reinterpret_cast<uintptr_t>(f->data()) % 4 != 0)
    expect_error([&] { parse_llama2c_checkpoint(f); }, "shifted.bin", "aligned");
}

TEST(Llama2c, BadVocabFiles) {
  LOOM_DATA(path, "models/tok512.bin");
  const auto raw = read_all(path);
  // Every cut before the last entry's end fails for 512 tokens, naming the file.
  for (size_t cut = 0; cut < raw.size(); cut += 37) {
    SCOPED_TRACE(cut);
    auto f = MappedFile::from_memory(raw.data(), cut, "tok-cut.bin");
    expect_error([&] { parse_llama2c_vocab(*f, 512); }, "tok-cut.bin", "tokenizer");
  }
  auto last = MappedFile::from_memory(raw.data(), raw.size() - 1, "tok-last.bin");
  expect_error([&] { parse_llama2c_vocab(*last, 512); }, "tok-last.bin", "token 511");

  // A negative length in token 0 (its length field is at byte 8).
  auto neg = raw;
  const int32_t minus = -5;
  std::memcpy(neg.data() + 8, &minus, 4);
  auto fn = MappedFile::from_memory(neg.data(), neg.size(), "tok-neg.bin");
  expect_error([&] { parse_llama2c_vocab(*fn, 512); }, "tok-neg.bin", "token 0: length -5");

  auto f = MappedFile::from_memory(raw.data(), raw.size(), "tok.bin");
  expect_error([&] { parse_llama2c_vocab(*f, 0); }, "tok.bin", "vocab size 0");
  expect_error([&] { parse_llama2c_vocab(*f, -3); }, "tok.bin", "vocab size -3");
}

}  // namespace
