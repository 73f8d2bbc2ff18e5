// safetensors reader and writer. The JSON header is parsed by nlohmann-json;
// everything it says about the data (offsets, sizes, dtypes) is checked
// against the file before a pointer into the mapping is handed out.
#include "loom/format/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_set>

#include "loom/core/error.h"
#include "loom/format/atomic_file.h"

namespace loom::format {

static_assert(std::endian::native == std::endian::little,
              "safetensors is little-endian and loom reads it in place: big-endian hosts are not supported");

namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kMetadataKey = "__metadata__";
// A safetensors header nests three levels (root, tensor entry, shape array);
// the limit keeps a hostile "[[[[..." from costing more than it must.
constexpr int kMaxJsonDepth = 8;

struct DtypeInfo {
  std::string_view name;
  int size;
  std::optional<DType> dtype;
};
// The safetensors dtypes of whole bytes; loom computes with F32, F16 and BF16.
constexpr DtypeInfo kDtypes[] = {
    {"F32", 4, DType::F32}, {"F16", 2, DType::F16}, {"BF16", 2, DType::BF16}, {"F64", 8, std::nullopt},
    {"I64", 8, std::nullopt}, {"U64", 8, std::nullopt}, {"I32", 4, std::nullopt}, {"U32", 4, std::nullopt},
    {"I16", 2, std::nullopt}, {"U16", 2, std::nullopt}, {"I8", 1, std::nullopt}, {"U8", 1, std::nullopt},
    {"BOOL", 1, std::nullopt}, {"F8_E5M2", 1, std::nullopt}, {"F8_E4M3", 1, std::nullopt},
    {"F8_E8M0", 1, std::nullopt}, {"C64", 8, std::nullopt},
};

const DtypeInfo* dtype_info(std::string_view name) {
  for (const auto& d : kDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

uint64_t mul_or_fail(uint64_t a, uint64_t b, const std::string& where) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) fail("[format] {}: size overflows ({} * {})", where, a, b);
  return r;
}

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  std::memcpy(&v, p, 8);
  return v;
}

// A non-negative JSON integer, or an error naming `where` and `what`.
uint64_t json_uint(const Json& v, const std::string& where, std::string_view what) {
  if (!v.is_number_unsigned())
    fail("[format] {}: {} must be a non-negative integer, got {}", where, what, v.dump(-1, ' ', true));
  return v.get<uint64_t>();
}

SafetensorsTensor parse_entry(const std::string& path, const std::string& name, const Json& e) {
  const std::string where = fmt::format("{}: tensor '{}'", path, name);
  if (!e.is_object()) fail("[format] {}: expected an object with dtype, shape and data_offsets", where);
  auto field = [&](const char* key) -> const Json& {
    auto it = e.find(key);
    if (it == e.end()) fail("[format] {}: missing \"{}\" in the header; the file is corrupt", where, key);
    return *it;
  };
  SafetensorsTensor t;
  t.name = name;
  const Json& dt = field("dtype");
  if (!dt.is_string()) fail("[format] {}: \"dtype\" must be a string", where);
  t.dtype_name = dt.get<std::string>();
  const DtypeInfo* info = dtype_info(t.dtype_name);
  if (!info) fail("[format] {}: unknown dtype '{}'", where, t.dtype_name);
  t.dtype = info->dtype;
  t.element_size = info->size;

  const Json& shape = field("shape");
  if (!shape.is_array()) fail("[format] {}: \"shape\" must be an array of integers", where);
  uint64_t numel = 1;
  for (const Json& d : shape) {
    const uint64_t n = json_uint(d, where, "every dimension of \"shape\"");
    if (n > uint64_t(INT64_MAX)) fail("[format] {}: dimension {} is too large", where, n);
    numel = mul_or_fail(numel, n, where);
    t.dims.push_back(int64_t(n));
  }
  if (numel > uint64_t(INT64_MAX)) fail("[format] {}: {} elements is too many", where, numel);

  const Json& off = field("data_offsets");
  if (!off.is_array() || off.size() != 2) fail("[format] {}: \"data_offsets\" must be [begin, end]", where);
  const uint64_t begin = json_uint(off[0], where, "data_offsets[0]");
  const uint64_t end = json_uint(off[1], where, "data_offsets[1]");
  if (end < begin) fail("[format] {}: data_offsets [{}, {}] end before they begin", where, begin, end);
  t.offset = begin;
  t.nbytes = end - begin;
  const uint64_t expected = mul_or_fail(numel, uint64_t(t.element_size), where);
  if (t.nbytes != expected) {
    std::string dims;
    for (int64_t d : t.dims) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    fail("[format] {}: {} [{}] needs {} bytes, but data_offsets [{}, {}] span {}; the header is corrupt", where,
         t.dtype_name, dims, expected, begin, end, t.nbytes);
  }
  return t;
}

}  // namespace

Shape SafetensorsTensor::shape(std::string_view file) const {
  LOOM_CHECK(dims.size() <= size_t(kMaxRank), "[format] {}: tensor '{}' has rank {}; loom handles at most {}", file,
             name, dims.size(), kMaxRank);
  Shape s;
  s.rank = int(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) s.dims[i] = dims[i];
  return s;
}

int safetensors_element_size(std::string_view dtype_name) {
  const DtypeInfo* d = dtype_info(dtype_name);
  return d ? d->size : 0;
}

std::string_view safetensors_dtype_name(DType t) {
  for (const auto& d : kDtypes)
    if (d.dtype == t) return d.name;
  fail("[format] safetensors cannot hold {} tensors; use f32, f16 or bf16", name(t));
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<const MappedFile> file) {
  const std::string& path = file->path();
  const size_t size = file->size();
  if (size < 8)
    fail("[format] {}: {} bytes is too small for a safetensors file (it starts with an 8-byte header length); the "
         "file is truncated",
         path, size);
  const uint64_t header_len = read_u64_le(file->data());
  if (header_len > kSafetensorsMaxHeader)
    fail("[format] {}: the header claims {} bytes, more than the {} MiB limit; this is not a safetensors file or it "
         "is corrupt",
         path, header_len, kSafetensorsMaxHeader >> 20);
  if (header_len > size - 8)
    fail("[format] {}: the header claims {} bytes but only {} follow the length field; the file is truncated", path,
         header_len, size - 8);
  const auto* text = reinterpret_cast<const char*>(file->data() + 8);

  // Duplicate top-level keys would silently replace each other in the parsed
  // object, so they are caught while parsing; so is excessive nesting.
  std::string duplicate;
  std::unordered_set<std::string> keys;
  Json::parser_callback_t check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > kMaxJsonDepth)
      fail("[format] {}: the header nests deeper than {} levels; it is not a safetensors header", path, kMaxJsonDepth);
    if (event == Json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !keys.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, text + header_len, check);
  } catch (const Json::exception& e) {
    fail("[format] {}: the JSON header is malformed ({}); the file is corrupt or not safetensors", path, e.what());
  }
  if (!duplicate.empty()) fail("[format] {}: tensor '{}' appears twice in the header", path, duplicate);
  if (!header.is_object()) fail("[format] {}: the JSON header must be an object", path);

  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->file_ = file;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) fail("[format] {}: \"__metadata__\" must be an object of strings", path);
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) fail("[format] {}: __metadata__ '{}' must be a string", path, k);
        f->metadata_.emplace_back(k, v.get<std::string>());
      }
      continue;
    }
    f->tensors_.push_back(parse_entry(path, key, value));
  }

  // The data section must be covered exactly: no overlaps (two tensors sharing
  // bytes), no holes, nothing past the end. The format requires all three.
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  std::stable_sort(f->tensors_.begin(), f->tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
  });
  uint64_t covered = 0;
  const SafetensorsTensor* prev = nullptr;
  for (auto& t : f->tensors_) {
    const uint64_t end = t.offset + t.nbytes;  // no overflow: both come from JSON uint64 with end >= begin
    if (end > data_size)
      fail("[format] {}: tensor '{}': data_offsets [{}, {}] lie outside the data section ({} bytes); the file is "
           "truncated",
           path, t.name, t.offset, end, data_size);
    if (t.offset < covered)
      fail("[format] {}: tensor '{}' (bytes {}..{}) overlaps tensor '{}' (which ends at {}); the header is corrupt",
           path, t.name, t.offset, end, prev ? prev->name : "", covered);
    if (t.offset > covered)
      fail("[format] {}: bytes {}..{} of the data section belong to no tensor (before '{}'); the header is corrupt",
           path, covered, t.offset, t.name);
    covered = end;
    prev = &t;
    t.data = file->data() + data_start + t.offset;
  }
  if (covered != data_size)
    fail("[format] {}: {} bytes after the last tensor belong to no tensor; the file is corrupt", path,
         data_size - covered);
  return f;
}

const SafetensorsTensor* SafetensorsFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

DType SafetensorsFile::loom_dtype(const SafetensorsTensor& t) const {
  if (!t.dtype)
    fail("[format] {}: tensor '{}' has dtype {}, which is unsupported by loom; loom reads F32, F16 and BF16 "
         "weights",
         path(), t.name, t.dtype_name);
  return *t.dtype;
}

// --- writer ---------------------------------------------------------------------

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void SafetensorsWriter::add_tensor(std::string name, DType dtype, std::vector<int64_t> dims, const void* data) {
  const std::string_view dt = safetensors_dtype_name(dtype);
  uint64_t numel = 1;
  for (int64_t d : dims) {
    LOOM_CHECK(d >= 0, "[format] SafetensorsWriter: tensor '{}' has a negative dimension {}", name, d);
    numel = mul_or_fail(numel, uint64_t(d), "SafetensorsWriter: tensor '" + name + "'");
  }
  const uint64_t nbytes = mul_or_fail(numel, uint64_t(traits(dtype).block_bytes), "SafetensorsWriter");
  add_tensor_raw(std::move(name), std::string(dt), std::move(dims), data, size_t(nbytes));
}

void SafetensorsWriter::add_tensor_raw(std::string name, std::string dtype_name, std::vector<int64_t> dims,
                                       const void* data, size_t nbytes) {
  LOOM_CHECK(name != kMetadataKey, "[format] SafetensorsWriter: '{}' is reserved and cannot name a tensor", name);
  for (const auto& t : tensors_)
    LOOM_CHECK(t.name != name, "[format] SafetensorsWriter: duplicate tensor name '{}'", name);
  const int es = safetensors_element_size(dtype_name);
  LOOM_CHECK(es > 0, "[format] SafetensorsWriter: tensor '{}': unknown dtype '{}'", name, dtype_name);
  uint64_t numel = 1;
  for (int64_t d : dims) {
    LOOM_CHECK(d >= 0, "[format] SafetensorsWriter: tensor '{}' has a negative dimension {}", name, d);
    numel = mul_or_fail(numel, uint64_t(d), "SafetensorsWriter: tensor '" + name + "'");
  }
  const uint64_t expected = mul_or_fail(numel, uint64_t(es), "SafetensorsWriter: tensor '" + name + "'");
  LOOM_CHECK(expected == nbytes, "[format] SafetensorsWriter: tensor '{}': {} needs {} bytes, but {} were given", name,
             dtype_name, expected, nbytes);
  LOOM_CHECK(data != nullptr || nbytes == 0, "[format] SafetensorsWriter: tensor '{}': no data", name);
  tensors_.push_back(Pending{std::move(name), std::move(dtype_name), es, std::move(dims), data, nbytes});
}

void SafetensorsWriter::write(const std::string& path) const {
  // Largest elements first: every size is a multiple of its element size, so
  // each tensor then starts aligned to its own element size without padding.
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors_[a].element_size > tensors_[b].element_size; });
  Json header = Json::object();
  if (!metadata_.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    header[std::string(kMetadataKey)] = std::move(m);
  }
  uint64_t offset = 0;
  for (size_t i : order) {
    const Pending& t = tensors_[i];
    header[t.name] = Json{{"dtype", t.dtype_name}, {"shape", t.dims}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    fail("[format] {}: cannot write the header ({}); tensor names and metadata must be UTF-8", path, e.what());
  }
  // The data section starts 8-byte aligned: pad the JSON with spaces, as the format allows.
  text.append((8 - text.size() % 8) % 8, ' ');
  LOOM_CHECK(text.size() <= kSafetensorsMaxHeader, "[format] {}: header of {} bytes exceeds the {} MiB limit", path,
             text.size(), kSafetensorsMaxHeader >> 20);
  const uint64_t len = text.size();
  AtomicFile out(path);
  out.write(&len, 8);
  out.write(text.data(), text.size());
  for (size_t i : order) out.write(tensors_[i].data, tensors_[i].nbytes);
  out.commit();
}

}  // namespace loom::format
