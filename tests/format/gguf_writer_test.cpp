// GgufWriter -> GgufFile round trips, the writer's own checks, the value
// accessors and the ggml type table.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "support/test_data.h"

namespace {

using namespace loom::format;
using loom::DType;
using loom::Shape;

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <typename T>
T load(const std::vector<uint8_t>& b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof(T));
  return v;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 7);
  return v;
}

TEST(GgufWriter, EveryMetadataTypeRoundTrips) {
  const std::string path = loom::test::scratch_dir("gguf_writer") + "/meta.gguf";
  const std::string odd_bytes("a\0b\xff\xfe\x80z", 7);  // NUL and invalid UTF-8 are allowed
  GgufWriter w;
  w.set("u8", GgufValue::make_uint(GgufType::UINT8, 255));
  w.set("i8", GgufValue::make_int(GgufType::INT8, -128));
  w.set("u16", GgufValue::make_uint(GgufType::UINT16, 65535));
  w.set("i16", GgufValue::make_int(GgufType::INT16, -32768));
  w.set("u32", GgufValue::make_uint32(4000000000u));
  w.set("i32", GgufValue::make_int32(-2000000000));
  w.set("f32", GgufValue::make_float32(1e-5f));
  w.set("bool", GgufValue::make_bool(true));
  w.set("str", GgufValue::make_string(odd_bytes));
  w.set("empty_str", GgufValue::make_string(""));
  w.set("u64", GgufValue::make_uint(GgufType::UINT64, std::numeric_limits<uint64_t>::max()));
  w.set("i64", GgufValue::make_int(GgufType::INT64, std::numeric_limits<int64_t>::min()));
  w.set("f64", GgufValue::make_float(GgufType::FLOAT64, 0.1));
  w.set("strs", GgufValue::make_string_array({"<unk>", "", odd_bytes}));
  w.set("f32s", GgufValue::make_float32_array({0.5f, -1.25f, 3e38f}));
  w.set("i32s", GgufValue::make_int32_array({1, -2, 2147483647}));
  w.set("u8s", GgufValue::make_array(GgufType::UINT8, {GgufValue::make_uint(GgufType::UINT8, 0),
                                                        GgufValue::make_uint(GgufType::UINT8, 200)}));
  w.set("bools", GgufValue::make_array(GgufType::BOOL, {GgufValue::make_bool(false), GgufValue::make_bool(true)}));
  w.set("f64s", GgufValue::make_array(GgufType::FLOAT64, {GgufValue::make_float(GgufType::FLOAT64, 0.1)}));
  w.set("u64s", GgufValue::make_array(GgufType::UINT64,
                                      {GgufValue::make_uint(GgufType::UINT64, (uint64_t(1) << 63) + 5)}));
  w.set("empty", GgufValue::make_array(GgufType::INT16, {}));
  w.set("nested",
        GgufValue::make_array(
            GgufType::ARRAY,
            {GgufValue::make_int32_array({1, 2, 3}), GgufValue::make_string_array({"x", "yz"}),
             GgufValue::make_array(GgufType::ARRAY, {GgufValue::make_float32_array({0.25f}),
                                                     GgufValue::make_array(GgufType::UINT8, {})})}));
  w.set("str", GgufValue::make_string(odd_bytes));  // replacing keeps one entry, in place
  w.write(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  // The header, read by hand: magic, v3, no tensors, 22 keys.
  const auto raw = read_all(path);
  ASSERT_GE(raw.size(), 24u);
  EXPECT_EQ(std::memcmp(raw.data(), "GGUF", 4), 0);
  EXPECT_EQ(load<uint32_t>(raw, 4), 3u);
  EXPECT_EQ(load<uint64_t>(raw, 8), 0u);
  EXPECT_EQ(load<uint64_t>(raw, 16), 22u);

  auto f = GgufFile::open(path);
  EXPECT_EQ(f->version(), 3u);
  ASSERT_EQ(f->metadata().entries().size(), 22u);
  EXPECT_EQ(f->metadata().entries()[8].first, "str");
  EXPECT_EQ(f->metadata().at("u8").type(), GgufType::UINT8);
  EXPECT_EQ(f->metadata().get_int("u8"), 255);
  EXPECT_EQ(f->metadata().get_int("i8"), -128);
  EXPECT_EQ(f->metadata().get_int("u16"), 65535);
  EXPECT_EQ(f->metadata().get_int("i16"), -32768);
  EXPECT_EQ(f->metadata().get_int("u32"), 4000000000);
  EXPECT_EQ(f->metadata().at("u32").type(), GgufType::UINT32);
  EXPECT_EQ(f->metadata().get_int("i32"), -2000000000);
  EXPECT_EQ(f->metadata().get_float("f32"), double(1e-5f));
  EXPECT_EQ(f->metadata().at("f32").type(), GgufType::FLOAT32);
  EXPECT_TRUE(f->metadata().get_bool("bool"));
  EXPECT_EQ(f->metadata().get_string("str"), odd_bytes);
  EXPECT_EQ(f->metadata().get_string("empty_str"), "");
  EXPECT_THROW(f->metadata().get_int("u64"), loom::Error);  // above INT64_MAX
  EXPECT_EQ(f->metadata().get_float("u64"), 18446744073709551615.0);
  EXPECT_EQ(f->metadata().get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->metadata().get_float("f64"), 0.1);
  EXPECT_EQ(f->metadata().at("f64").type(), GgufType::FLOAT64);

  EXPECT_EQ(f->metadata().at("strs").strings(), (std::vector<std::string>{"<unk>", "", odd_bytes}));
  EXPECT_EQ(f->metadata().at("f32s").floats(), (std::vector<float>{0.5f, -1.25f, 3e38f}));
  EXPECT_EQ(f->metadata().at("f32s").element_type(), GgufType::FLOAT32);
  EXPECT_EQ(f->metadata().at("i32s").ints(), (std::vector<int64_t>{1, -2, 2147483647}));
  EXPECT_EQ(f->metadata().at("u8s").ints(), (std::vector<int64_t>{0, 200}));
  EXPECT_EQ(f->metadata().at("u8s").element_type(), GgufType::UINT8);
  EXPECT_EQ(f->metadata().at("bools").ints(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(f->metadata().at("f64s").size(), 1u);
  EXPECT_EQ(f->metadata().at("f64s").to_display(), "[0.1]");
  EXPECT_THROW(f->metadata().at("u64s").ints(), loom::Error);
  EXPECT_EQ(f->metadata().at("u64s").floats(), (std::vector<float>{float(9223372036854775813.0)}));
  EXPECT_EQ(f->metadata().at("empty").size(), 0u);
  EXPECT_EQ(f->metadata().at("empty").element_type(), GgufType::INT16);

  const GgufValue& nested = f->metadata().at("nested");
  ASSERT_EQ(nested.element_type(), GgufType::ARRAY);
  ASSERT_EQ(nested.values().size(), 3u);
  EXPECT_EQ(nested.values()[0].ints(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(nested.values()[1].strings(), (std::vector<std::string>{"x", "yz"}));
  const GgufValue& inner = nested.values()[2];
  ASSERT_EQ(inner.values().size(), 2u);
  EXPECT_EQ(inner.values()[0].floats(), (std::vector<float>{0.25f}));
  EXPECT_EQ(inner.values()[1].element_type(), GgufType::UINT8);
  EXPECT_EQ(inner.values()[1].size(), 0u);
  EXPECT_EQ(nested.to_display(), "[[1, 2, 3], [\"x\", \"yz\"], [[0.25], []]]");
}

TEST(GgufWriter, TensorsKeepTheirBytesShapesAndAlignment) {
  const std::string path = loom::test::scratch_dir("gguf_writer") + "/tensors.gguf";
  // Sizes by hand: F32 [3,5] = 60 bytes; F16 [2,4] = 16; Q8_0 [2,64] = 2 rows * 2 blocks * 34 = 136;
  // Q4_0 [3,32] = 3 * 18 = 54.
  const auto f32 = pattern(60, 1), f16 = pattern(16, 2), q8 = pattern(136, 3), q4 = pattern(54, 4);
  GgufWriter w;
  w.set("general.architecture", GgufValue::make_string("test"));
  w.add_tensor("a.f32", DType::F32, {3, 5}, f32.data());
  w.add_tensor("b.f16", DType::F16, {2, 4}, f16.data());
  w.add_tensor("c.q8", DType::Q8_0, {2, 64}, q8.data());
  w.add_tensor("d.q4", DType::Q4_0, {3, 32}, q4.data());
  w.write(path);

  auto f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 32u);
  ASSERT_EQ(f->tensors().size(), 4u);
  struct Want {
    const char* name;
    DType dtype;
    uint32_t ggml;
    Shape shape;
    const std::vector<uint8_t>* bytes;
  };
  const Want want[] = {{"a.f32", DType::F32, 0, {3, 5}, &f32},
                       {"b.f16", DType::F16, 1, {2, 4}, &f16},
                       {"c.q8", DType::Q8_0, 8, {2, 64}, &q8},
                       {"d.q4", DType::Q4_0, 2, {3, 32}, &q4}};
  const std::byte* base = f->mapping()->data();
  for (size_t i = 0; i < 4; ++i) {
    const GgufTensor& t = f->tensors()[i];  // insertion order
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(t.name, want[i].name);
    EXPECT_EQ(t.ggml_type, want[i].ggml);
    ASSERT_TRUE(t.dtype.has_value());
    EXPECT_EQ(*t.dtype, want[i].dtype);
    EXPECT_EQ(t.shape, want[i].shape);
    ASSERT_EQ(t.nbytes, want[i].bytes->size());
    EXPECT_EQ(std::memcmp(t.data, want[i].bytes->data(), t.nbytes), 0);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(size_t(t.data - base) % 32, 0u);
    EXPECT_EQ(f->find_tensor(want[i].name), &t);
  }
  EXPECT_EQ(f->find_tensor("missing"), nullptr);
  // Offsets by hand: 0, 64 (60 padded), 96 (16 padded), 256 (136 padded).
  EXPECT_EQ(f->tensors()[1].offset, 64u);
  EXPECT_EQ(f->tensors()[2].offset, 96u);
  EXPECT_EQ(f->tensors()[3].offset, 256u);

  // The file itself: GGUF's ne is innermost first, so a.f32 [3, 5] is stored as ne = {5, 3}.
  const auto raw = read_all(path);
  size_t at = 24;
  at += 8 + std::strlen("general.architecture") + 4 + 8 + 4;  // the one KV
  at += 8 + 5;                                                // "a.f32"
  EXPECT_EQ(load<uint32_t>(raw, at), 2u);
  EXPECT_EQ(load<uint64_t>(raw, at + 4), 5u);
  EXPECT_EQ(load<uint64_t>(raw, at + 12), 3u);
  EXPECT_EQ(raw.size() % 32, 0u);
}

TEST(GgufWriter, AlignmentComesFromTheMetadataKey) {
  const std::string path = loom::test::scratch_dir("gguf_writer") + "/align64.gguf";
  const auto a = pattern(4, 9), b = pattern(8, 10);
  GgufWriter w;
  w.set("general.alignment", GgufValue::make_uint32(64));
  w.add_tensor("a", DType::I8, {4}, a.data());
  w.add_tensor("b", DType::I32, {2}, b.data());
  w.write(path);
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->tensors()[1].offset, 64u);
  for (const auto& t : f->tensors()) EXPECT_EQ(size_t(t.data - f->mapping()->data()) % 64, 0u);
  EXPECT_EQ(std::memcmp(f->tensors()[1].data, b.data(), 8), 0);
  // Padding is zeros.
  const auto raw = read_all(path);
  const size_t a_at = size_t(f->tensors()[0].data - f->mapping()->data());
  for (size_t i = a_at + 4; i < a_at + 64; ++i) EXPECT_EQ(raw[i], 0) << i;
}

TEST(GgufWriter, RawTensorsOfTypesLoomCannotCompute) {
  const std::string path = loom::test::scratch_dir("gguf_writer") + "/q5k.gguf";
  const auto q5k = pattern(2 * 176, 5);  // two Q5_K blocks of 256 elements, 176 bytes each
  GgufWriter w;
  w.add_tensor_raw("k", 13, {1, 512}, q5k.data(), q5k.size());
  w.write(path);
  auto f = GgufFile::open(path);
  const GgufTensor& t = f->tensors().at(0);
  EXPECT_EQ(t.ggml_type, 13u);
  EXPECT_FALSE(t.dtype.has_value());
  EXPECT_EQ(t.nbytes, 352u);
  EXPECT_EQ(std::memcmp(t.data, q5k.data(), 352), 0);
}

TEST(GgufWriter, RejectsBadTensors) {
  const std::vector<uint8_t> buf(1024);
  GgufWriter w;
  w.add_tensor("x", DType::F32, {4}, buf.data());
  EXPECT_THROW(w.add_tensor("x", DType::F32, {4}, buf.data()), loom::Error);               // duplicate
  EXPECT_THROW(w.add_tensor("q", DType::Q8_0, {2, 16}, buf.data()), loom::Error);          // row of 16 < block 32
  EXPECT_THROW(w.add_tensor_raw("r", 0, {4}, buf.data(), 12), loom::Error);                 // 16 bytes needed
  EXPECT_THROW(w.add_tensor_raw("u", 4, {4}, buf.data(), 16), loom::Error);                 // type 4 was removed
  EXPECT_THROW(w.add_tensor("n", DType::F32, {4}, nullptr), loom::Error);                   // no data
  EXPECT_THROW(w.set("general.alignment", GgufValue::make_uint32(48)), loom::Error);        // not a power of two
  EXPECT_THROW(w.set("general.alignment", GgufValue::make_string("32")), loom::Error);
  try {
    w.add_tensor_raw("r", 0, {4}, buf.data(), 12);
  } catch (const loom::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'r'"), std::string::npos) << e.what();
  }
}

TEST(GgufWriter, WriteIsAtomicAndReplacesTheOldFile) {
  const std::string dir = loom::test::scratch_dir("gguf_writer");
  const std::string path = dir + "/replace.gguf";
  std::ofstream(path) << "old contents";
  GgufWriter w;
  w.set("k", GgufValue::make_int32(1));
  w.write(path);
  EXPECT_TRUE(GgufFile::open(path)->metadata().find("k"));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const std::string bad = dir + "/no-such-dir/x.gguf";
  try {
    w.write(bad);
    ADD_FAILURE() << "wrote into a missing directory";
  } catch (const loom::Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
}

TEST(GgufValue, AccessorsCheckTypes) {
  const auto s = GgufValue::make_string("llama");
  EXPECT_THROW(s.as_int(), loom::Error);
  EXPECT_THROW(s.size(), loom::Error);
  EXPECT_THROW(s.strings(), loom::Error);
  const auto i = GgufValue::make_int32(-3);
  EXPECT_TRUE(i.is_integer());
  EXPECT_FALSE(i.is_float());
  EXPECT_EQ(i.as_float(), -3.0);
  EXPECT_TRUE(i.as_bool());
  EXPECT_THROW(i.as_string(), loom::Error);
  const auto b = GgufValue::make_bool(true);
  EXPECT_FALSE(b.is_integer());
  EXPECT_EQ(b.as_int(), 1);
  EXPECT_THROW(b.as_float(), loom::Error);
  const auto f = GgufValue::make_float32(0.5f);
  EXPECT_THROW(f.as_int(), loom::Error);
  EXPECT_THROW(f.as_bool(), loom::Error);
  const auto fs = GgufValue::make_float32_array({1.5f});
  EXPECT_THROW(fs.ints(), loom::Error);
  EXPECT_THROW(fs.values(), loom::Error);
  EXPECT_EQ(GgufValue::make_int32_array({7}).floats(), std::vector<float>{7.0f});

  EXPECT_THROW(GgufValue::make_uint(GgufType::UINT8, 256), loom::Error);
  EXPECT_THROW(GgufValue::make_int(GgufType::INT16, 40000), loom::Error);
  EXPECT_THROW(GgufValue::make_uint(GgufType::INT32, 1), loom::Error);
  EXPECT_THROW(GgufValue::make_float(GgufType::UINT32, 1), loom::Error);
  EXPECT_THROW(GgufValue::make_array(GgufType::INT32, {GgufValue::make_uint32(1)}), loom::Error);
}

TEST(GgufValue, DisplayIsShortAndReadable) {
  std::vector<int32_t> ten(10);
  for (int k = 0; k < 10; ++k) ten[size_t(k)] = k;
  EXPECT_EQ(GgufValue::make_int32_array(ten).to_display(), "[0, 1, 2, 3, 4, 5, 6, 7, ... 10 items]");
  EXPECT_EQ(GgufValue::make_int32_array(ten).to_display(2), "[0, 1, ... 10 items]");
  EXPECT_EQ(GgufValue::make_int32_array({}).to_display(), "[]");
  EXPECT_EQ(GgufValue::make_string("llama").to_display(), "\"llama\"");
  EXPECT_EQ(GgufValue::make_string("a\"b\n").to_display(), "\"a\\\"b\\n\"");
  EXPECT_EQ(GgufValue::make_bool(false).to_display(), "false");
  EXPECT_EQ(GgufValue::make_float32(1e-5f).to_display(), "1e-05");
  EXPECT_EQ(GgufValue::make_uint(GgufType::UINT64, 18446744073709551615u).to_display(), "18446744073709551615");
  EXPECT_EQ(GgufValue::make_int(GgufType::INT8, -5).to_display(), "-5");
  const std::string long_text(1000, 'x');
  EXPECT_LT(GgufValue::make_string(long_text).to_display().size(), 120u);
  EXPECT_NE(GgufValue::make_string(long_text).to_display().find("1000 bytes"), std::string::npos);
}

TEST(GgmlTypes, TableMatchesGgmlBlockLayouts) {
  // Block sizes and bytes per block from ggml-common.h's block structs
  // (QK_K = 256, ggml_half = 2 bytes), worked out by hand.
  struct Row {
    uint32_t id;
    const char* name;
    int block, bytes;
  };
  const Row rows[] = {
      {0, "F32", 1, 4},        {1, "F16", 1, 2},
      {2, "Q4_0", 32, 2 + 16}, {3, "Q4_1", 32, 4 + 16},
      {6, "Q5_0", 32, 2 + 4 + 16},  {7, "Q5_1", 32, 4 + 4 + 16},
      {8, "Q8_0", 32, 2 + 32}, {9, "Q8_1", 32, 4 + 32},
      {10, "Q2_K", 256, 16 + 64 + 4},  {11, "Q3_K", 256, 32 + 64 + 12 + 2},
      {12, "Q4_K", 256, 4 + 12 + 128}, {13, "Q5_K", 256, 4 + 12 + 32 + 128},
      {14, "Q6_K", 256, 128 + 64 + 16 + 2}, {15, "Q8_K", 256, 4 + 256 + 32},
      {16, "IQ2_XXS", 256, 2 + 64},    {17, "IQ2_XS", 256, 2 + 64 + 8},
      {18, "IQ3_XXS", 256, 2 + 96},    {19, "IQ1_S", 256, 2 + 32 + 16},
      {20, "IQ4_NL", 32, 2 + 16},      {21, "IQ3_S", 256, 2 + 64 + 8 + 32 + 4},
      {22, "IQ2_S", 256, 2 + 64 + 8 + 8}, {23, "IQ4_XS", 256, 2 + 2 + 4 + 128},
      {24, "I8", 1, 1},  {25, "I16", 1, 2}, {26, "I32", 1, 4}, {27, "I64", 1, 8}, {28, "F64", 1, 8},
      {29, "IQ1_M", 256, 32 + 16 + 8}, {30, "BF16", 1, 2},
      {34, "TQ1_0", 256, 48 + 4 + 2},  {35, "TQ2_0", 256, 64 + 2},
      {39, "MXFP4", 32, 1 + 16},
  };
  for (const auto& r : rows) {
    const GgmlTypeInfo* t = ggml_type_info(r.id);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(t->id, r.id);
    EXPECT_EQ(t->name, r.name);
    EXPECT_EQ(t->block_size, r.block) << r.name;
    EXPECT_EQ(t->type_size, r.bytes) << r.name;
  }
  for (uint32_t gone : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u, 0xffffffffu})
    EXPECT_EQ(ggml_type_info(gone), nullptr) << gone;

  const std::pair<DType, uint32_t> loom_types[] = {{DType::F32, 0},  {DType::F16, 1},  {DType::BF16, 30},
                                                   {DType::Q8_0, 8}, {DType::Q4_0, 2}, {DType::I32, 26},
                                                   {DType::I8, 24},  {DType::Q4_K, 12}, {DType::Q6_K, 14}};
  for (auto [dtype, id] : loom_types) {
    EXPECT_EQ(ggml_type_of(dtype), id);
    ASSERT_TRUE(ggml_type_info(id)->dtype.has_value());
    EXPECT_EQ(*ggml_type_info(id)->dtype, dtype);
    // loom's own block layout agrees with ggml's.
    EXPECT_EQ(loom::traits(dtype).block_size, ggml_type_info(id)->block_size);
    EXPECT_EQ(loom::traits(dtype).block_bytes, ggml_type_info(id)->type_size);
  }
  EXPECT_FALSE(ggml_type_info(13)->dtype.has_value());  // Q5_K: no loom kernels
}

}  // namespace
