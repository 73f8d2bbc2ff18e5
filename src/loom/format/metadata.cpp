#include "loom/format/metadata.h"

#include "loom/core/error.h"

namespace loom::format {

void Metadata::set(std::string key, GgufValue value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(value));
}

const GgufValue* Metadata::find(std::string_view key) const {
  for (const auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}

const GgufValue& Metadata::at(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("[format] {}: missing metadata key '{}'", source_, key);
  return *v;
}

template <typename F>
auto Metadata::typed(std::string_view key, const GgufValue& v, F&& f) const -> decltype(f(v)) {
  try {
    return f(v);
  } catch (const Error& e) {
    fail("[format] {}: metadata key '{}': {}", source_, key, e.what());
  }
}

std::string Metadata::get_string(std::string_view key) const {
  return typed(key, at(key), [](const GgufValue& v) { return v.as_string(); });
}
int64_t Metadata::get_int(std::string_view key) const {
  return typed(key, at(key), [](const GgufValue& v) { return v.as_int(); });
}
double Metadata::get_float(std::string_view key) const {
  return typed(key, at(key), [](const GgufValue& v) { return v.as_float(); });
}
bool Metadata::get_bool(std::string_view key) const {
  return typed(key, at(key), [](const GgufValue& v) { return v.as_bool(); });
}
std::string Metadata::get_string(std::string_view key, std::string_view fallback) const {
  return find(key) ? get_string(key) : std::string(fallback);
}
int64_t Metadata::get_int(std::string_view key, int64_t fallback) const {
  return find(key) ? get_int(key) : fallback;
}
double Metadata::get_float(std::string_view key, double fallback) const {
  return find(key) ? get_float(key) : fallback;
}
bool Metadata::get_bool(std::string_view key, bool fallback) const {
  return find(key) ? get_bool(key) : fallback;
}

}  // namespace loom::format
