// Hand-assembled safetensors bytes for tests: the 8-byte little-endian header
// length, the JSON header as written here (not by loom's writer), the data.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/mapped_file.h"
#include "loom/format/safetensors.h"

namespace loom::test {

inline std::vector<uint8_t> safetensors_bytes(std::string_view header, const std::vector<uint8_t>& data,
                                              uint64_t claimed_len = UINT64_MAX) {
  std::vector<uint8_t> b(8);
  const uint64_t len = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::memcpy(b.data(), &len, 8);  // the test hosts are little-endian, like the format
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

inline std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

inline std::unique_ptr<format::SafetensorsFile> parse_safetensors(const std::vector<uint8_t>& b,
                                                                   const std::string& name) {
  return format::SafetensorsFile::parse(format::MappedFile::from_memory(b.data(), b.size(), name));
}

// Expects parsing to fail with a message containing every one of `parts`.
inline void expect_safetensors_error(const std::vector<uint8_t>& b, const std::string& name,
                                     const std::vector<std::string>& parts) {
  try {
    parse_safetensors(b, name);
    ADD_FAILURE() << name << ": parsed, expected an error";
  } catch (const loom::Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

}  // namespace loom::test
