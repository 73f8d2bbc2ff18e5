// safetensors as the format defines it: a hand-assembled file reads back the
// values written into it, and loom's writer produces files that follow the
// layout rules (8-byte length, space-padded header to a multiple of 8, data
// covered without holes, every tensor aligned to its element size).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "loom/core/half.h"
#include "safetensors_bytes.h"
#include "support/test_data.h"

namespace loom {
namespace {

using format::SafetensorsFile;
using format::SafetensorsWriter;

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(Safetensors, ReadsAHandBuiltFile) {
  // Two F32 values, then a BF16 [2, 1] holding 1.0 (0x3F80) and -2.0 (0xC000).
  std::vector<uint8_t> data = test::f32_bytes({1.5f, -2.0f});
  for (uint8_t b : {0x80, 0x3F, 0x00, 0xC0}) data.push_back(b);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,1],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const auto bytes = test::safetensors_bytes(header, data);
  auto f = test::parse_safetensors(bytes, "hand.safetensors");
  ASSERT_EQ(f->metadata().size(), 1u);
  EXPECT_EQ(f->metadata()[0], (std::pair<std::string, std::string>("format", "pt")));
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "a");  // data order, not header order
  const auto* a = f->find_tensor("a");
  const auto* b = f->find_tensor("b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(f->loom_dtype(*a), DType::F32);
  EXPECT_EQ(a->shape("x"), (Shape{2}));
  float av[2];
  std::memcpy(av, a->data, 8);
  EXPECT_EQ(av[0], 1.5f);
  EXPECT_EQ(av[1], -2.0f);
  EXPECT_EQ(f->loom_dtype(*b), DType::BF16);
  EXPECT_EQ(b->dims, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(b->data, reinterpret_cast<const std::byte*>(bytes.data()) + 8 + header.size() + 8);
  float bv[2];
  dequantize_row(DType::BF16, b->data, bv, 2);
  EXPECT_EQ(bv[0], 1.0f);
  EXPECT_EQ(bv[1], -2.0f);
  EXPECT_EQ(f->find_tensor("c"), nullptr);
}

TEST(Safetensors, ScalarsAndEmptyTensorsAreAllowed) {
  const std::string header = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                             R"("e":{"dtype":"F16","shape":[0,7],"data_offsets":[4,4]}})";
  auto f = test::parse_safetensors(test::safetensors_bytes(header, test::f32_bytes({3.0f})), "scalar.safetensors");
  EXPECT_EQ(f->find_tensor("s")->nbytes, 4u);
  EXPECT_EQ(f->find_tensor("s")->shape("x").numel(), 1);
  EXPECT_EQ(f->find_tensor("e")->nbytes, 0u);
}

TEST(Safetensors, WriterRoundTripFollowsTheLayoutRules) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> h = {f32_to_f16(0.5f), f32_to_f16(-1.0f), f32_to_f16(2.0f)};
  const std::vector<uint16_t> bf = {0x3F80, 0x4000};
  const std::vector<int64_t> ids = {7, -9};
  const std::vector<uint8_t> mask = {1, 0, 1};
  SafetensorsWriter wr;
  // Added smallest first, so the writer must reorder to keep alignment.
  wr.add_tensor_raw("mask", "BOOL", {3}, mask.data(), 3);
  wr.add_tensor("h", DType::F16, {3}, h.data());
  wr.add_tensor("w", DType::F32, {2, 3}, w.data());
  wr.add_tensor("bf", DType::BF16, {1, 2}, bf.data());
  wr.add_tensor_raw("ids", "I64", {2}, ids.data(), 16);
  wr.set_metadata("format", "pt");
  wr.set_metadata("format", "np");  // replaces
  const std::string path = test::scratch_dir("safetensors") + "/roundtrip.safetensors";
  wr.write(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  // The raw bytes, read independently of the reader.
  const auto bytes = slurp(path);
  uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  EXPECT_EQ((8 + len) % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + len + 3 + 6 + 24 + 4 + 16);
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + long(len));
  EXPECT_EQ(header["__metadata__"]["format"], "np");
  EXPECT_EQ(header["w"]["dtype"], "F32");
  EXPECT_EQ(header["w"]["shape"], nlohmann::json::array({2, 3}));
  EXPECT_EQ(header["ids"]["dtype"], "I64");

  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f->tensors().size(), 5u);
  const std::byte* data_start = f->mapping()->data() + 8 + len;
  for (const auto& t : f->tensors()) {
    EXPECT_EQ(size_t(t.data - data_start) % size_t(t.element_size), 0u) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % uintptr_t(t.element_size), 0u) << t.name;
  }
  EXPECT_EQ(std::memcmp(f->find_tensor("w")->data, w.data(), 24), 0);
  EXPECT_EQ(std::memcmp(f->find_tensor("h")->data, h.data(), 6), 0);
  EXPECT_EQ(std::memcmp(f->find_tensor("bf")->data, bf.data(), 4), 0);
  EXPECT_EQ(std::memcmp(f->find_tensor("ids")->data, ids.data(), 16), 0);
  EXPECT_EQ(std::memcmp(f->find_tensor("mask")->data, mask.data(), 3), 0);
  EXPECT_EQ(f->find_tensor("w")->dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f->loom_dtype(*f->find_tensor("h")), DType::F16);
}

TEST(Safetensors, UnsupportedDtypesReadButFailWhenUsed) {
  const std::vector<int64_t> ids = {1, 2};
  SafetensorsWriter wr;
  wr.add_tensor_raw("position_ids", "I64", {2}, ids.data(), 16);
  const std::string path = test::scratch_dir("safetensors") + "/i64.safetensors";
  wr.write(path);
  auto f = SafetensorsFile::open(path);
  const auto* t = f->find_tensor("position_ids");
  ASSERT_NE(t, nullptr);
  EXPECT_FALSE(t->dtype.has_value());
  try {
    f->loom_dtype(*t);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("i64.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("position_ids"), std::string::npos) << m;
    EXPECT_NE(m.find("I64"), std::string::npos) << m;
    EXPECT_NE(m.find("unsupported by loom"), std::string::npos) << m;
  }
}

TEST(Safetensors, WriterRejectsWhatTheFormatCannotHold) {
  const float x[32] = {};
  SafetensorsWriter wr;
  EXPECT_THROW(wr.add_tensor("q", DType::Q8_0, {32}, x), Error);
  wr.add_tensor("a", DType::F32, {2}, x);
  EXPECT_THROW(wr.add_tensor("a", DType::F32, {2}, x), Error);                 // duplicate
  EXPECT_THROW(wr.add_tensor_raw("b", "F32", {3}, x, 8), Error);               // 3 floats are 12 bytes
  EXPECT_THROW(wr.add_tensor_raw("c", "Q4", {3}, x, 3), Error);                // unknown dtype
  EXPECT_THROW(wr.add_tensor("__metadata__", DType::F32, {1}, x), Error);      // reserved
  EXPECT_THROW(wr.add_tensor("d", DType::F32, {-1}, x), Error);                // negative
}

TEST(Safetensors, AFailedWriteLeavesNothingBehind) {
  const float x[2] = {1, 2};
  SafetensorsWriter wr;
  wr.add_tensor("a", DType::F32, {2}, x);
  const std::string path = test::scratch_dir("safetensors") + "/no/such/dir/out.safetensors";
  try {
    wr.write(path);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace loom
