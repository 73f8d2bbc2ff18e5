// Hand-assembled GGUF bytes for tests, written field by field from the GGUF
// specification and independent of loom's GgufWriter, so reader tests do not
// only check that loom agrees with itself.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/mapped_file.h"

namespace loom::test {

struct GgufBytes {
  std::vector<uint8_t> b;

  template <typename T>
  GgufBytes& put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));  // the test hosts are little-endian, like GGUF
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  GgufBytes& u8(uint8_t v) { return put(v); }
  GgufBytes& u32(uint32_t v) { return put(v); }
  GgufBytes& u64(uint64_t v) { return put(v); }
  GgufBytes& str(std::string_view s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  // A string KV: key, type 8, value.
  GgufBytes& kv_string(std::string_view key, std::string_view value) { return str(key).u32(8).str(value); }
  GgufBytes& kv_u32(std::string_view key, uint32_t value) { return str(key).u32(4).u32(value); }
  // One tensor info; `ne` innermost first, as in the file.
  GgufBytes& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(offset);
  }
  GgufBytes& pad_to(size_t alignment) {
    while (b.size() % alignment != 0) b.push_back(0);
    return *this;
  }
  GgufBytes& fill(size_t n, uint8_t start = 0) {
    for (size_t i = 0; i < n; ++i) b.push_back(uint8_t(start + i));
    return *this;
  }
};

inline std::unique_ptr<format::GgufFile> parse_bytes(const std::vector<uint8_t>& b, const std::string& name) {
  return format::GgufFile::parse(format::MappedFile::from_memory(b.data(), b.size(), name));
}

// Parsing must fail with a loom::Error naming the file and containing `needle`.
inline void expect_gguf_error(const std::vector<uint8_t>& b, std::string_view needle,
                              const std::string& name = "bad.gguf") {
  try {
    parse_bytes(b, name);
    ADD_FAILURE() << "parsed without error; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
    EXPECT_EQ(msg.rfind("[format] ", 0), 0u) << msg;
  }
}

}  // namespace loom::test
