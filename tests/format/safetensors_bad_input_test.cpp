// A safetensors file is untrusted input: every malformed header must give a
// loom::Error naming the file, the tensor where there is one, and what was
// expected — never a crash or an out-of-bounds read (this suite runs under
// ASan/UBSan).
#include <gtest/gtest.h>

#include <cstring>

#include "safetensors_bytes.h"

namespace loom {
namespace {

using test::expect_safetensors_error;
using test::f32_bytes;
using test::safetensors_bytes;

const std::string kGood = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";

TEST(SafetensorsBadInput, TheBaseFileParses) {
  auto f = test::parse_safetensors(safetensors_bytes(kGood, f32_bytes({1, 2, 3, 4})), "good.safetensors");
  EXPECT_EQ(f->tensors().size(), 1u);
}

TEST(SafetensorsBadInput, TooShortForTheLengthField) {
  expect_safetensors_error({1, 2, 3}, "tiny.safetensors", {"tiny.safetensors", "too small", "truncated"});
}

TEST(SafetensorsBadInput, AHeaderThatClaimsOneTerabyte) {
  const auto b = safetensors_bytes(kGood, f32_bytes({1, 2, 3, 4}), uint64_t(1) << 40);
  expect_safetensors_error(b, "huge.safetensors", {"huge.safetensors", "1099511627776", "100 MiB limit"});
}

TEST(SafetensorsBadInput, AHeaderLongerThanTheFile) {
  const auto b = safetensors_bytes(kGood, {}, kGood.size() + 100);
  expect_safetensors_error(b, "short.safetensors", {"short.safetensors", "truncated"});
}

TEST(SafetensorsBadInput, TruncatedData) {
  auto b = safetensors_bytes(kGood, f32_bytes({1, 2, 3, 4}));
  b.resize(b.size() - 4);
  expect_safetensors_error(b, "cut.safetensors", {"cut.safetensors", "tensor 'w'", "[0, 16]", "truncated"});
}

TEST(SafetensorsBadInput, OffsetsPastTheEnd) {
  const std::string h = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[1000,1008]}})";
  expect_safetensors_error(safetensors_bytes(h, f32_bytes({1, 2})), "past.safetensors",
                           {"past.safetensors", "tensor 'w'", "outside the data section"});
}

TEST(SafetensorsBadInput, ByteLengthThatDoesNotMatchDtypeTimesShape) {
  const std::string h = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})";
  expect_safetensors_error(safetensors_bytes(h, f32_bytes({1, 2, 3})), "len.safetensors",
                           {"len.safetensors", "tensor 'w'", "F32 [2, 2] needs 16 bytes", "span 12"});
}

TEST(SafetensorsBadInput, OverlappingTensors) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_safetensors_error(safetensors_bytes(h, f32_bytes({1, 2, 3})), "overlap.safetensors",
                           {"overlap.safetensors", "'b'", "overlaps tensor 'a'"});
}

TEST(SafetensorsBadInput, HolesAndTrailingBytes) {
  const std::string hole = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_safetensors_error(safetensors_bytes(hole, f32_bytes({1, 2, 3})), "hole.safetensors",
                           {"hole.safetensors", "bytes 4..8", "belong to no tensor"});
  expect_safetensors_error(safetensors_bytes(kGood, f32_bytes({1, 2, 3, 4, 5})), "tail.safetensors",
                           {"tail.safetensors", "4 bytes after the last tensor"});
}

TEST(SafetensorsBadInput, MalformedJson) {
  for (const std::string& h : {std::string(R"({"w": )"), std::string("not json at all"), std::string("{\"a\":1,}"),
                              std::string("\xff\xfe{}")}) {
    expect_safetensors_error(safetensors_bytes(h, {}), "json.safetensors", {"json.safetensors", "malformed"});
  }
}

TEST(SafetensorsBadInput, WrongJsonShapes) {
  auto err = [](const std::string& h, std::vector<std::string> parts) {
    parts.insert(parts.begin(), "odd.safetensors");
    expect_safetensors_error(safetensors_bytes(h, f32_bytes({1, 2})), "odd.safetensors", parts);
  };
  err(R"([1, 2])", {"must be an object"});
  err(R"({"w": 3})", {"tensor 'w'", "expected an object"});
  err(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", {"tensor 'w'", "missing \"dtype\""});
  err(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", {"tensor 'w'", "missing \"shape\""});
  err(R"({"w":{"dtype":"F32","shape":[2]}})", {"tensor 'w'", "missing \"data_offsets\""});
  err(R"({"w":{"dtype":"Q4_0","shape":[2],"data_offsets":[0,8]}})", {"tensor 'w'", "unknown dtype 'Q4_0'"});
  err(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", {"tensor 'w'", "non-negative integer"});
  err(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", {"tensor 'w'", "non-negative integer"});
  err(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", {"tensor 'w'", "end before they begin"});
  err(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", {"tensor 'w'", "[begin, end]"});
  err(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})",
      {"tensor 'w'", "overflows"});
  err(R"({"__metadata__":{"n":1},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
      {"__metadata__ 'n' must be a string"});
  err(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
      {"tensor 'w' appears twice"});
  err(std::string(20, '[') + std::string(20, ']'), {"nests deeper"});
}

TEST(SafetensorsBadInput, RankAboveFourIsReadButCannotBecomeAShape) {
  const std::string h = R"({"w":{"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[0,8]}})";
  auto f = test::parse_safetensors(safetensors_bytes(h, f32_bytes({1, 2})), "rank5.safetensors");
  EXPECT_THROW(f->tensors()[0].shape("rank5.safetensors"), Error);
}

}  // namespace
}  // namespace loom
