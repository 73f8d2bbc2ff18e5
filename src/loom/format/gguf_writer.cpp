// GgufWriter: GGUF v3 out. Metadata and tensor infos are assembled in memory
// (they are small); tensor data is streamed from the caller's pointers. The
// file appears under its name only when complete (PATH.tmp, fsync, rename).
#include <bit>
#include <cstring>
#include <unordered_set>

#include "loom/core/error.h"
#include "loom/format/atomic_file.h"
#include "loom/format/gguf.h"
#include "loom/format/gguf_internal.h"

namespace loom::format {

namespace {

constexpr uint32_t kGgufVersion = 3;

// Serialises little-endian GGUF fields into a byte string.
class Encoder {
 public:
  std::string bytes;

  template <typename T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes.append(b, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes += s;
  }
  void put_number(GgufType t, uint64_t bits) {
    switch (t) {
      case GgufType::UINT8:
      case GgufType::INT8:
      case GgufType::BOOL: put(uint8_t(bits)); return;
      case GgufType::UINT16:
      case GgufType::INT16: put(uint16_t(bits)); return;
      case GgufType::UINT32:
      case GgufType::INT32: put(uint32_t(bits)); return;
      case GgufType::UINT64:
      case GgufType::INT64: put(bits); return;
      case GgufType::FLOAT32: put(float(std::bit_cast<double>(bits))); return;
      case GgufType::FLOAT64: put(std::bit_cast<double>(bits)); return;
      default: fail("[format] GgufWriter: {} is not a number type", gguf_type_name(t));
    }
  }
  // The value without its type tag.
  void put_value(const GgufValue& v) {
    if (v.is_string()) return put_string(v.as_string());
    if (v.is_array()) return put_array(v);
    const uint64_t bits =
        v.is_float() ? std::bit_cast<uint64_t>(v.as_float()) : GgufValueAccess::scalar_bits(v);
    put_number(v.type(), bits);
  }
  void put_array(const GgufValue& v) {
    put<uint32_t>(uint32_t(v.element_type()));
    put<uint64_t>(v.size());
    if (v.element_type() == GgufType::STRING) {
      for (const auto& s : v.strings()) put_string(s);
    } else if (v.element_type() == GgufType::ARRAY) {
      for (const auto& item : v.values()) put_array(item);
    } else {
      for (uint64_t bits : GgufValueAccess::raw_numbers(v)) put_number(v.element_type(), bits);
    }
  }
};

}  // namespace

void GgufWriter::set(std::string key, GgufValue value) {
  LOOM_CHECK(key.size() <= kMaxNameBytes, "[format] GgufWriter: key of {} bytes is longer than the limit {}",
             key.size(), kMaxNameBytes);
  if (key == kAlignmentKey) alignment_from(value, "GgufWriter");
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::add_tensor(std::string name, DType dtype, Shape shape, const void* data) {
  const uint32_t type = ggml_type_of(dtype);
  const uint64_t nbytes = tensor_nbytes(*ggml_type_info(type), shape, fmt::format("GgufWriter: tensor '{}'", name));
  LOOM_CHECK(nbytes <= SIZE_MAX, "[format] GgufWriter: tensor '{}' is too large", name);
  add_tensor_raw(std::move(name), type, shape, data, size_t(nbytes));
}

void GgufWriter::add_tensor_raw(std::string name, uint32_t ggml_type, Shape shape, const void* data,
                                size_t nbytes) {
  LOOM_CHECK(name.size() <= kMaxNameBytes, "[format] GgufWriter: tensor name of {} bytes is longer than the limit {}",
             name.size(), kMaxNameBytes);
  for (const auto& t : tensors_)
    LOOM_CHECK(t.name != name, "[format] GgufWriter: duplicate tensor name '{}'", name);
  const GgmlTypeInfo* info = ggml_type_info(ggml_type);
  LOOM_CHECK(info != nullptr, "[format] GgufWriter: tensor '{}': unknown ggml type id {}", name, ggml_type);
  const uint64_t expected = tensor_nbytes(*info, shape, fmt::format("GgufWriter: tensor '{}'", name));
  LOOM_CHECK(expected == nbytes, "[format] GgufWriter: tensor '{}': {} {} needs {} bytes, but {} were given", name,
             info->name, shape.str(), expected, nbytes);
  LOOM_CHECK(data != nullptr || nbytes == 0, "[format] GgufWriter: tensor '{}': no data", name);
  tensors_.push_back(Pending{std::move(name), ggml_type, shape, data, nbytes, {}});
}

void GgufWriter::add_tensor_generated(std::string name, DType dtype, Shape shape,
                                      std::function<void(std::byte*)> fill) {
  LOOM_CHECK(fill != nullptr, "[format] GgufWriter: tensor '{}': no generator", name);
  const uint32_t type = ggml_type_of(dtype);
  const uint64_t nbytes = tensor_nbytes(*ggml_type_info(type), shape, fmt::format("GgufWriter: tensor '{}'", name));
  LOOM_CHECK(nbytes <= SIZE_MAX, "[format] GgufWriter: tensor '{}' is too large", name);
  static const std::byte kPlaceholder{};  // checked as "has data"; the generator supplies the bytes
  add_tensor_raw(std::move(name), type, shape, &kPlaceholder, size_t(nbytes));
  tensors_.back().fill = std::move(fill);
}

void GgufWriter::write(const std::string& path) const {
  uint64_t alignment = kDefaultAlignment;
  for (const auto& [k, v] : kv_)
    if (k == kAlignmentKey) alignment = alignment_from(v, path);

  Encoder e;
  e.bytes.append("GGUF", 4);
  e.put<uint32_t>(kGgufVersion);
  e.put<uint64_t>(tensors_.size());
  e.put<uint64_t>(kv_.size());
  for (const auto& [k, v] : kv_) {
    e.put_string(k);
    e.put<uint32_t>(uint32_t(v.type()));
    e.put_value(v);
  }
  uint64_t offset = 0;  // within the data section; each tensor starts aligned
  for (const auto& t : tensors_) {
    e.put_string(t.name);
    e.put<uint32_t>(uint32_t(t.shape.rank));
    for (int d = t.shape.rank - 1; d >= 0; --d) e.put<uint64_t>(uint64_t(t.shape.dims[size_t(d)]));
    e.put<uint32_t>(t.ggml_type);
    e.put<uint64_t>(offset);
    offset = checked_add(offset, t.nbytes, path);
    offset = checked_add(offset, (alignment - offset % alignment) % alignment, path);
  }

  AtomicFile out(path);
  out.write(e.bytes.data(), e.bytes.size());
  if (!tensors_.empty()) out.pad_to(alignment);  // a metadata-only file ends after its infos
  std::vector<std::byte> generated;
  for (const auto& t : tensors_) {
    if (t.fill) {
      generated.resize(t.nbytes);
      t.fill(generated.data());
      out.write(generated.data(), t.nbytes);
    } else {
      out.write(t.data, t.nbytes);
    }
    out.pad_to(alignment);  // as llama.cpp does, also after the last tensor
  }
  out.commit();
}

}  // namespace loom::format
