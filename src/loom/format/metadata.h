// Metadata: an ordered key -> GgufValue map with typed getters whose errors
// name the source and the key. GGUF files carry it as they are; other model
// formats (llama2.c, Hugging Face config.json) are translated into the same
// keys (llama.cpp's names), so architectures read one vocabulary of keys.
//
//   Metadata m("stories260K.bin");
//   m.set("llama.block_count", GgufValue::make_uint32(5));
//   int64_t layers = m.get_int("llama.block_count");
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/format/gguf_value.h"

namespace loom::format {

class Metadata {
 public:
  explicit Metadata(std::string source = {}) : source_(std::move(source)) {}
  Metadata(std::string source, std::vector<std::pair<std::string, GgufValue>> entries)
      : source_(std::move(source)), kv_(std::move(entries)) {}

  const std::string& source() const { return source_; }
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return kv_; }
  void set(std::string key, GgufValue value);  // replaces in place, or appends

  const GgufValue* find(std::string_view key) const;
  const GgufValue& at(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::string get_string(std::string_view key, std::string_view fallback) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;

 private:
  template <typename F>
  auto typed(std::string_view key, const GgufValue& v, F&& f) const -> decltype(f(v));

  std::string source_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
};

}  // namespace loom::format
