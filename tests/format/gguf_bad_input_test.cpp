// A GGUF file is untrusted input: every malformed file must give a
// loom::Error naming the file (never a crash, a huge allocation or UB — this
// suite runs under ASan/UBSan).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gguf_bytes.h"
#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "support/test_data.h"

namespace {

using namespace loom::format;
using loom::test::expect_gguf_error;
using loom::test::GgufBytes;
using loom::test::parse_bytes;

constexpr uint32_t kF32 = 0, kQ8_0 = 8;

// A valid file: 3 KVs (string, u32 array, nested array), an F32 [4] tensor at
// offset 0 and a Q8_0 [32] tensor at offset 32, no padding after the data.
std::vector<uint8_t> valid_file() {
  GgufBytes g;
  g.header(2, 3);
  g.kv_string("general.architecture", "llama");
  g.str("ids").u32(9).u32(4).u64(3).u32(1).u32(2).u32(3);
  g.str("nest").u32(9).u32(9).u64(2);
  g.u32(8).u64(1).str("ab");  // ["ab"]
  g.u32(7).u64(2).u8(1).u8(0);  // [true, false]
  g.tensor("w", {4}, kF32, 0);
  g.tensor("q", {32}, kQ8_0, 32);
  g.pad_to(32);
  g.fill(16, 1).pad_to(32);  // w: 4 floats, then padding to 32
  g.fill(34, 100);           // q: one Q8_0 block
  return g.b;
}

// Touches everything a successful parse exposes, so ASan sees any bad pointer.
size_t walk(const GgufFile& f) {
  size_t sum = 0;
  for (const auto& [key, value] : f.metadata().entries()) sum += key.size() + value.to_display().size();
  for (const auto& t : f.tensors()) {
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += size_t(t.data[i]);
    sum += size_t(t.shape.numel());
  }
  return sum;
}

TEST(GgufBadInput, TheValidBaseFileParses) {
  const auto b = valid_file();
  auto f = parse_bytes(b, "good.gguf");
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->metadata().at("ids").ints(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(f->metadata().at("nest").values()[1].ints(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(f->tensors()[1].nbytes, 34u);
  EXPECT_EQ(uint8_t(f->tensors()[1].data[0]), 100);
  EXPECT_EQ(f->tensors()[1].data + 34, f->mapping()->data() + b.size());
}

TEST(GgufBadInput, EveryTruncationIsAnError) {
  const auto b = valid_file();
  for (size_t cut = 0; cut < b.size(); ++cut) {
    SCOPED_TRACE(cut);
    const std::vector<uint8_t> part(b.begin(), b.begin() + std::ptrdiff_t(cut));
    expect_gguf_error(part, "", "cut.gguf");
  }
}

TEST(GgufBadInput, TruncatedRealVocabFile) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> b{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ASSERT_EQ(b.size(), 723869u);
  // About 100 cut points spread over the file, plus the last bytes.
  std::vector<size_t> cuts;
  for (size_t cut = 0; cut < b.size(); cut += 7237) cuts.push_back(cut);
  for (size_t k = 1; k <= 9; ++k) cuts.push_back(b.size() - k);
  for (size_t cut : cuts) {
    SCOPED_TRACE(cut);
    const std::vector<uint8_t> part(b.begin(), b.begin() + std::ptrdiff_t(cut));
    expect_gguf_error(part, "", "spm-cut.gguf");
  }
}

TEST(GgufBadInput, FlippedBytesNeverCrash) {
  const auto base = valid_file();
  size_t parsed = 0, rejected = 0;
  for (size_t pos = 0; pos < base.size(); ++pos) {
    for (uint8_t mask : {0x01, 0x02, 0x10, 0x80, 0xff}) {
      auto b = base;
      b[pos] ^= mask;
      try {
        auto f = parse_bytes(b, "flip.gguf");
        walk(*f);
        ++parsed;
      } catch (const loom::Error& e) {
        EXPECT_NE(std::string(e.what()).find("flip.gguf"), std::string::npos) << e.what();
        ++rejected;
      }
    }
  }
  // Flips in tensor data or in string bytes still parse; flips in counts do not.
  EXPECT_GT(parsed, 0u);
  EXPECT_GT(rejected, 0u);
}

TEST(GgufBadInput, HugeCountsFailFastWithoutAllocating) {
  const auto start = std::chrono::steady_clock::now();
  {
    GgufBytes g;
    g.header(uint64_t(1) << 40, 0);
    expect_gguf_error(g.b, "tensor count 1099511627776");
  }
  {
    GgufBytes g;
    g.header(0, uint64_t(1) << 62);
    expect_gguf_error(g.b, "metadata count");
  }
  {
    GgufBytes g;
    g.header(0, 1).str("a").u32(9).u32(4).u64(uint64_t(1) << 60);  // u32 array of 2^60
    expect_gguf_error(g.b, "array of 1152921504606846976 UINT32");
  }
  {
    GgufBytes g;
    g.header(0, 1).str("a").u32(9).u32(8).u64(uint64_t(1) << 60);  // string array of 2^60
    expect_gguf_error(g.b, "array of");
  }
  {
    GgufBytes g;
    g.header(0, 1).str("a").u32(9).u32(9).u64(uint64_t(1) << 60);  // nested array of 2^60
    expect_gguf_error(g.b, "array of");
  }
  {
    GgufBytes g;  // a string value claiming 2^63 bytes
    g.header(0, 1).str("a").u32(8).u64(uint64_t(1) << 63).fill(16);
    expect_gguf_error(g.b, "truncated");
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  EXPECT_LT(ms.count(), 1000);
}

TEST(GgufBadInput, StringPastTheEnd) {
  GgufBytes g;
  g.header(0, 1).u64(1000).fill(10);  // key length 1000, 10 bytes present
  expect_gguf_error(g.b, "truncated");
  GgufBytes v;
  v.header(0, 1).str("general.name").u32(8).u64(50).fill(49);
  expect_gguf_error(v.b, "metadata key 'general.name'");
}

TEST(GgufBadInput, OverlongKeyAndTensorName) {
  const std::string long_name(70000, 'k');
  GgufBytes g;
  g.header(0, 1).kv_u32(long_name, 1);
  expect_gguf_error(g.b, "limit");
  GgufBytes t;
  t.header(1, 0).tensor(long_name, {4}, kF32, 0).pad_to(32).fill(16);
  expect_gguf_error(t.b, "limit");
}

TEST(GgufBadInput, HeaderProblems) {
  expect_gguf_error({}, "not a GGUF file");
  expect_gguf_error({'G', 'G'}, "not a GGUF file");
  expect_gguf_error({'G', 'G', 'M', 'L', 3, 0, 0, 0}, "magic");
  GgufBytes v1;
  v1.header(0, 0, 1);
  expect_gguf_error(v1.b, "v1 is not supported");
  GgufBytes v9;
  v9.header(0, 0, 9);
  expect_gguf_error(v9.b, "unsupported GGUF version 9");
  GgufBytes be;
  be.header(0, 0, 0x03000000);
  expect_gguf_error(be.b, "big-endian");
  GgufBytes v2;  // v2 has the same layout as v3
  v2.header(0, 1, 2).kv_u32("x", 5);
  EXPECT_EQ(parse_bytes(v2.b, "v2.gguf")->metadata().get_int("x"), 5);
}

TEST(GgufBadInput, MetadataProblems) {
  GgufBytes dup;
  dup.header(0, 2).kv_u32("a", 1).kv_u32("a", 2);
  expect_gguf_error(dup.b, "duplicate key");
  GgufBytes type;
  type.header(0, 1).str("a").u32(13).u32(0);
  expect_gguf_error(type.b, "value type 13 is not a GGUF metadata type");
  GgufBytes elem;
  elem.header(0, 1).str("a").u32(9).u32(99).u64(0);
  expect_gguf_error(elem.b, "array element type 99 is not a GGUF metadata type");
  GgufBytes boolean;
  boolean.header(0, 1).str("a").u32(7).u8(2);
  expect_gguf_error(boolean.b, "bool");
  GgufBytes deep;  // arrays nested 9 deep
  deep.header(0, 1).str("a").u32(9);
  for (int i = 0; i < 9; ++i) deep.u32(9).u64(1);
  deep.u32(4).u64(0);
  expect_gguf_error(deep.b, "nested deeper");
}

TEST(GgufBadInput, AlignmentProblems) {
  for (uint32_t a : {0u, 3u, 48u}) {
    GgufBytes g;
    g.header(0, 1).kv_u32("general.alignment", a);
    expect_gguf_error(g.b, "general.alignment");
  }
  GgufBytes s;
  s.header(0, 1).kv_string("general.alignment", "32");
  expect_gguf_error(s.b, "general.alignment");
  // A valid alignment of 8 moves the data section.
  GgufBytes ok;
  ok.header(1, 1).kv_u32("general.alignment", 8).tensor("w", {2}, kF32, 8).pad_to(8).fill(16);
  auto f = parse_bytes(ok.b, "align8.gguf");
  EXPECT_EQ(f->alignment(), 8u);
  EXPECT_EQ(uint8_t(f->tensors()[0].data[0]), 8);
  // Alignment 1 lets a file put f16 data at an odd byte, where kernels could
  // not load it: an error (found by the fuzzer).
  GgufBytes odd;
  odd.header(1, 1).kv_u32("general.alignment", 1).tensor("h", {2}, /*F16*/ 1, 1).pad_to(64).fill(8);
  expect_gguf_error(odd.b, "not aligned");
}

TEST(GgufBadInput, TensorInfoProblems) {
  auto one_tensor = [](std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes) {
    GgufBytes g;
    g.header(1, 0).tensor("blk.0.w", ne, type, offset).pad_to(32).fill(data_bytes);
    return g.b;
  };
  expect_gguf_error(one_tensor({4}, kF32, 4, 64), "not a multiple of the alignment 32");
  expect_gguf_error(one_tensor({1000}, kF32, 0, 16), "outside the file");
  expect_gguf_error(one_tensor({4}, kF32, uint64_t(1) << 63, 16), "outside the file");
  expect_gguf_error(one_tensor({4}, kF32, 0xffffffffffffffe0u, 16), "outside the file");
  expect_gguf_error(one_tensor({1, 1, 1, 1, 1}, kF32, 0, 16), "n_dims is 5");
  expect_gguf_error(one_tensor({}, kF32, 0, 16), "n_dims is 0");
  expect_gguf_error(one_tensor({4}, 4, 0, 16), "unknown ggml type id 4");
  expect_gguf_error(one_tensor({4}, 1000, 0, 16), "unknown ggml type id 1000");
  expect_gguf_error(one_tensor({16}, kQ8_0, 0, 64), "not a multiple of the Q8_0 block size 32");
  expect_gguf_error(one_tensor({uint64_t(1) << 32, uint64_t(1) << 32, 4}, kF32, 0, 16), "overflow");
  expect_gguf_error(one_tensor({uint64_t(1) << 63}, kF32, 0, 16), "too large");
  // Each message names the tensor.
  expect_gguf_error(one_tensor({4}, 1000, 0, 16), "tensor 'blk.0.w'");

  GgufBytes dup;
  dup.header(2, 0).tensor("w", {4}, kF32, 0).tensor("w", {4}, kF32, 32).pad_to(32).fill(64);
  expect_gguf_error(dup.b, "duplicate tensor name");

  GgufBytes overlap;
  overlap.header(2, 0).tensor("a", {16}, kF32, 0).tensor("b", {16}, kF32, 32).pad_to(32).fill(96);
  expect_gguf_error(overlap.b, "overlap");

  GgufBytes zero;  // a zero-sized tensor is legal and takes no bytes
  zero.header(2, 0).tensor("e", {0, 3}, kF32, 0).tensor("w", {4}, kF32, 0).pad_to(32).fill(16);
  auto f = parse_bytes(zero.b, "zero.gguf");
  EXPECT_EQ(f->tensors()[0].nbytes, 0u);
  EXPECT_EQ(f->tensors()[0].shape, (loom::Shape{3, 0}));
}

}  // namespace
