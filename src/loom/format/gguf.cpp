// GGUF reader: the ggml type table and GgufFile::parse. Every count, length,
// offset and size in the file is checked against the bytes that remain before
// anything is allocated or read, so a hostile file gives an Error, never a
// crash or a huge allocation.
#include "loom/format/gguf.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <unordered_set>

#include "loom/core/error.h"
#include "loom/format/gguf_internal.h"

namespace loom::format {

// --- ggml types ---------------------------------------------------------------

namespace {

// Block sizes and bytes per block follow ggml's block structs (ggml-common.h)
// and type traits (ggml.c); ids 4, 5 and 31..33, 36..38 were removed from ggml.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", 1, 4, DType::F32},
    {1, "F16", 1, 2, DType::F16},
    {2, "Q4_0", 32, 18, DType::Q4_0},
    {3, "Q4_1", 32, 20, std::nullopt},
    {6, "Q5_0", 32, 22, std::nullopt},
    {7, "Q5_1", 32, 24, std::nullopt},
    {8, "Q8_0", 32, 34, DType::Q8_0},
    {9, "Q8_1", 32, 36, std::nullopt},
    {10, "Q2_K", 256, 84, std::nullopt},
    {11, "Q3_K", 256, 110, std::nullopt},
    {12, "Q4_K", 256, 144, DType::Q4_K},
    {13, "Q5_K", 256, 176, std::nullopt},
    {14, "Q6_K", 256, 210, DType::Q6_K},
    {15, "Q8_K", 256, 292, std::nullopt},
    {16, "IQ2_XXS", 256, 66, std::nullopt},
    {17, "IQ2_XS", 256, 74, std::nullopt},
    {18, "IQ3_XXS", 256, 98, std::nullopt},
    {19, "IQ1_S", 256, 50, std::nullopt},
    {20, "IQ4_NL", 32, 18, std::nullopt},
    {21, "IQ3_S", 256, 110, std::nullopt},
    {22, "IQ2_S", 256, 82, std::nullopt},
    {23, "IQ4_XS", 256, 136, std::nullopt},
    {24, "I8", 1, 1, DType::I8},
    {25, "I16", 1, 2, std::nullopt},
    {26, "I32", 1, 4, DType::I32},
    {27, "I64", 1, 8, std::nullopt},
    {28, "F64", 1, 8, std::nullopt},
    {29, "IQ1_M", 256, 56, std::nullopt},
    {30, "BF16", 1, 2, DType::BF16},
    {34, "TQ1_0", 256, 54, std::nullopt},
    {35, "TQ2_0", 256, 66, std::nullopt},
    {39, "MXFP4", 32, 17, std::nullopt},
    {40, "NVFP4", 64, 36, std::nullopt},
    {41, "Q1_0", 128, 18, std::nullopt},
};

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

uint32_t ggml_type_of(DType t) {
  for (const auto& g : kGgmlTypes)
    if (g.dtype == t) return g.id;
  fail("[format] dtype {} has no GGUF type", int(t));
}

// --- shared helpers ---------------------------------------------------------------

uint64_t checked_mul(uint64_t a, uint64_t b, std::string_view where) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) fail("[format] {}: size overflows ({} * {})", where, a, b);
  return r;
}

uint64_t checked_add(uint64_t a, uint64_t b, std::string_view where) {
  uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) fail("[format] {}: size overflows ({} + {})", where, a, b);
  return r;
}

uint64_t tensor_nbytes(const GgmlTypeInfo& info, const Shape& shape, std::string_view where) {
  LOOM_CHECK(shape.rank >= 1 && shape.rank <= kMaxDims, "[format] {}: rank {} is outside 1..{}", where, shape.rank,
             kMaxDims);
  for (int i = 0; i < shape.rank; ++i)
    LOOM_CHECK(shape.dims[size_t(i)] >= 0, "[format] {}: negative dimension {}", where, shape.dims[size_t(i)]);
  const auto row = uint64_t(shape[-1]);
  LOOM_CHECK(row % uint64_t(info.block_size) == 0,
             "[format] {}: row length {} is not a multiple of the {} block size {}", where, row, info.name,
             info.block_size);
  // numel must fit int64 (loom's Shape), and the byte count must fit uint64.
  uint64_t numel = row;
  uint64_t bytes = checked_mul(row / uint64_t(info.block_size), uint64_t(info.type_size), where);
  for (int i = 0; i + 1 < shape.rank; ++i) {
    numel = checked_mul(numel, uint64_t(shape.dims[size_t(i)]), where);
    bytes = checked_mul(bytes, uint64_t(shape.dims[size_t(i)]), where);
  }
  LOOM_CHECK(numel <= uint64_t(INT64_MAX), "[format] {}: {} elements is too many", where, numel);
  return bytes;
}

uint64_t alignment_from(const GgufValue& v, std::string_view where) {
  LOOM_CHECK(v.is_integer(), "[format] {}: {} is {}, expected UINT32", where, kAlignmentKey, describe(v));
  const uint64_t a = GgufValueAccess::scalar_bits(v);
  LOOM_CHECK(!is_signed_type(v.type()) || int64_t(a) > 0, "[format] {}: {} is {}, expected a positive power of two",
             where, kAlignmentKey, int64_t(a));
  LOOM_CHECK(a != 0 && std::has_single_bit(a) && a <= kMaxAlignment,
             "[format] {}: {} is {}, expected a power of two in 1..{}", where, kAlignmentKey, a, kMaxAlignment);
  return a;
}

// --- reader -----------------------------------------------------------------------

namespace {

// Smallest encodings, used to reject counts the remaining bytes cannot hold
// before anything is reserved: a KV is a key length (8), a type (4) and at
// least a 1-byte value; a tensor info is a name length (8), n_dims (4), one
// dimension (8), a type (4) and an offset (8).
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

uint64_t min_element_bytes(GgufType t) {
  if (t == GgufType::STRING) return 8;       // length
  if (t == GgufType::ARRAY) return 4 + 8;    // element type + count
  return scalar_bytes(t);
}

// A key or tensor name as it may appear in a message: escaped and short, since
// it comes from an untrusted file.
std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 96; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c >= 0x7f || c == '\'') ? fmt::format("\\x{:02x}", c) : std::string(1, char(c));
  }
  if (s.size() > 96) out += "...";
  return out;
}

class Parser {
 public:
  explicit Parser(const MappedFile& f) : base_(f.data()), size_(f.size()), path_(f.path()) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  void set_context(std::string ctx) { ctx_ = std::move(ctx); }

  template <typename... A>
  [[noreturn]] void bad(fmt::format_string<A...> f, A&&... args) const {
    fail("[format] {}: {}{}", path_, ctx_.empty() ? "" : ctx_ + ": ", fmt::format(f, std::forward<A>(args)...));
  }

  void need(uint64_t n, std::string_view what) const {
    if (n > remaining())
      bad("truncated file: {} needs {} bytes at offset {}, but only {} remain", what, n, pos_, remaining());
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(std::string_view what, uint64_t max_bytes) {
    const auto n = read<uint64_t>(what);
    if (n > max_bytes) bad("{} is {} bytes long (the limit is {})", what, n, max_bytes);
    need(n, what);
    if (n == 0) return {};
    std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }

  GgufType read_type(std::string_view what) {
    const auto t = read<uint32_t>(what);
    if (!is_valid_type(t)) bad("{} {} is not a GGUF metadata type (0..12)", what, t);
    return GgufType(t);
  }

  GgufValue read_value(GgufType t, int depth) {
    switch (t) {
      case GgufType::UINT8: return GgufValue::make_uint(t, read<uint8_t>("value"));
      case GgufType::INT8: return GgufValue::make_int(t, read<int8_t>("value"));
      case GgufType::UINT16: return GgufValue::make_uint(t, read<uint16_t>("value"));
      case GgufType::INT16: return GgufValue::make_int(t, read<int16_t>("value"));
      case GgufType::UINT32: return GgufValue::make_uint(t, read<uint32_t>("value"));
      case GgufType::INT32: return GgufValue::make_int(t, read<int32_t>("value"));
      case GgufType::UINT64: return GgufValue::make_uint(t, read<uint64_t>("value"));
      case GgufType::INT64: return GgufValue::make_int(t, read<int64_t>("value"));
      case GgufType::FLOAT32: return GgufValue::make_float(t, read<float>("value"));
      case GgufType::FLOAT64: return GgufValue::make_float(t, read<double>("value"));
      case GgufType::BOOL: return GgufValue::make_bool(read_bool());
      case GgufType::STRING: return GgufValue::make_string(read_string("string value", UINT64_MAX));
      case GgufType::ARRAY: return read_array(depth);
    }
    bad("unknown metadata value type {}", uint32_t(t));
  }

 private:
  bool read_bool() {
    const auto b = read<uint8_t>("bool value");
    if (b > 1) bad("bool value is {}, expected 0 or 1", b);
    return b == 1;
  }

  GgufValue read_array(int depth) {
    if (depth >= kMaxArrayDepth) bad("arrays nested deeper than {} levels", kMaxArrayDepth);
    const GgufType elem = read_type("array element type");
    const auto count = read<uint64_t>("array count");
    const uint64_t min_bytes = min_element_bytes(elem);
    if (count > remaining() / min_bytes)
      bad("array of {} {} elements needs at least {} bytes per element, but only {} bytes remain", count,
          gguf_type_name(elem), min_bytes, remaining());
    const auto n = size_t(count);
    if (elem == GgufType::STRING) {
      std::vector<std::string> strs;
      strs.reserve(n);
      for (size_t i = 0; i < n; ++i) strs.push_back(read_string("string array element", UINT64_MAX));
      return GgufValue::make_string_array(std::move(strs));
    }
    if (elem == GgufType::ARRAY) {
      std::vector<GgufValue> items;
      // An empty nested array is 12 bytes but a GgufValue is much larger, so
      // grow with what is actually read rather than trusting the count.
      items.reserve(std::min<size_t>(n, 4096));
      for (size_t i = 0; i < n; ++i) items.push_back(read_array(depth + 1));
      return GgufValue::make_array(GgufType::ARRAY, std::move(items));
    }
    std::vector<uint64_t> raw(n);
    const size_t width = scalar_bytes(elem);
    need(uint64_t(n) * width, "array elements");  // no overflow: n * width <= remaining()
    const std::byte* p = base_ + pos_;
    for (size_t i = 0; i < n; ++i, p += width) raw[i] = decode(elem, p);
    pos_ += n * width;
    return GgufValueAccess::number_array(elem, std::move(raw));
  }

  // One little-endian element as GgufValue's packed bits.
  uint64_t decode(GgufType t, const std::byte* p) const {
    auto load = [p]<typename T>(T) {
      T v;
      std::memcpy(&v, p, sizeof(T));
      return v;
    };
    switch (t) {
      case GgufType::UINT8: return load(uint8_t{});
      case GgufType::INT8: return uint64_t(int64_t(load(int8_t{})));
      case GgufType::UINT16: return load(uint16_t{});
      case GgufType::INT16: return uint64_t(int64_t(load(int16_t{})));
      case GgufType::UINT32: return load(uint32_t{});
      case GgufType::INT32: return uint64_t(int64_t(load(int32_t{})));
      case GgufType::UINT64: return load(uint64_t{});
      case GgufType::INT64: return uint64_t(load(int64_t{}));
      case GgufType::FLOAT32: return std::bit_cast<uint64_t>(double(load(float{})));
      case GgufType::FLOAT64: return std::bit_cast<uint64_t>(load(double{}));
      case GgufType::BOOL: {
        const auto b = load(uint8_t{});
        if (b > 1) bad("bool array element is {}, expected 0 or 1", b);
        return b;
      }
      default: bad("{} is not a fixed-size type", gguf_type_name(t));
    }
  }

  const std::byte* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
  std::string ctx_;
};

uint32_t byteswap32(uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

}  // namespace

bool GgufFile::has_magic(const MappedFile& file) {
  return file.size() >= 4 && std::memcmp(file.data(), "GGUF", 4) == 0;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) { return parse(MappedFile::open(path)); }

std::unique_ptr<GgufFile> GgufFile::parse(std::shared_ptr<const MappedFile> file) {
  LOOM_CHECK(file != nullptr, "[format] GgufFile::parse: no file given");
  // The constructor is private, so make_unique cannot reach it.
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->file_ = std::move(file);
  const MappedFile& f = *g->file_;
  const std::string& path = f.path();
  Parser p(f);

  // --- header
  if (!has_magic(f)) {
    if (f.size() < 4) fail("[format] {}: not a GGUF file: only {} bytes long", path, f.size());
    fail("[format] {}: not a GGUF file: it does not start with the magic 'GGUF'", path);
  }
  p.read<uint32_t>("magic");
  const auto version = p.read<uint32_t>("version");
  if (version == 1)
    fail("[format] {}: GGUF v1 is not supported (loom reads v2 and v3); convert the model again with a current "
         "llama.cpp",
         path);
  if (version != 2 && version != 3) {
    const uint32_t swapped = byteswap32(version);
    if (swapped >= 1 && swapped <= 3)
      fail("[format] {}: this is a big-endian GGUF file; loom reads little-endian GGUF only", path);
    fail("[format] {}: unsupported GGUF version {} (loom reads v2 and v3)", path, version);
  }
  g->version_ = version;
  const auto tensor_count = p.read<uint64_t>("tensor count");
  const auto kv_count = p.read<uint64_t>("metadata count");
  if (kv_count > p.remaining() / kMinKvBytes)
    fail("[format] {}: metadata count {} is impossible: only {} bytes remain after the header", path, kv_count,
         p.remaining());
  if (tensor_count > p.remaining() / kMinTensorInfoBytes ||
      kv_count * kMinKvBytes + tensor_count * kMinTensorInfoBytes > p.remaining())
    fail("[format] {}: tensor count {} is impossible: only {} bytes remain after the header", path, tensor_count,
         p.remaining());

  // --- metadata
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.reserve(size_t(kv_count));
  std::unordered_set<std::string> keys;
  for (uint64_t i = 0; i < kv_count; ++i) {
    p.set_context(fmt::format("metadata entry {}", i));
    std::string key = p.read_string("key", kMaxNameBytes);
    p.set_context(fmt::format("metadata key '{}'", printable(key)));
    if (!keys.insert(key).second) p.bad("duplicate key");
    const GgufType type = p.read_type("value type");
    GgufValue value = p.read_value(type, 0);
    kv.emplace_back(std::move(key), std::move(value));
  }
  p.set_context("");
  g->metadata_ = Metadata(path, std::move(kv));
  if (const GgufValue* a = g->metadata_.find(kAlignmentKey)) g->alignment_ = size_t(alignment_from(*a, path));
  const uint64_t alignment = g->alignment_;

  // --- tensor infos
  g->tensors_.reserve(size_t(tensor_count));
  std::unordered_set<std::string> names;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    p.set_context(fmt::format("tensor {}", i));
    GgufTensor t;
    t.name = p.read_string("tensor name", kMaxNameBytes);
    const std::string where = fmt::format("{}: tensor '{}'", path, printable(t.name));
    p.set_context(fmt::format("tensor '{}'", printable(t.name)));
    if (!names.insert(t.name).second) p.bad("duplicate tensor name");
    const auto n_dims = p.read<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > uint32_t(kMaxDims)) p.bad("n_dims is {}, expected 1..{}", n_dims, kMaxDims);
    t.shape.rank = int(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto ne = p.read<uint64_t>("dimension");
      if (ne > uint64_t(INT64_MAX)) p.bad("dimension {} is {}, too large", d, ne);
      t.shape.dims[size_t(n_dims - 1 - d)] = int64_t(ne);  // GGUF lists innermost first
    }
    t.ggml_type = p.read<uint32_t>("ggml type");
    t.offset = p.read<uint64_t>("data offset");
    const GgmlTypeInfo* info = ggml_type_info(t.ggml_type);
    if (info == nullptr) p.bad("unknown ggml type id {}", t.ggml_type);
    t.dtype = info->dtype;
    t.nbytes = tensor_nbytes(*info, t.shape, where);
    if (t.offset % alignment != 0) p.bad("data offset {} is not a multiple of the alignment {}", t.offset, alignment);
    g->tensors_.push_back(std::move(t));
  }
  p.set_context("");

  // --- tensor data: starts at the first multiple of the alignment after the infos
  const uint64_t data_start = (uint64_t(p.pos()) + alignment - 1) / alignment * alignment;
  for (auto& t : g->tensors_) {
    const bool inside = data_start <= f.size() && t.offset <= f.size() - data_start &&
                        t.nbytes <= f.size() - data_start - t.offset;
    if (!inside)
      fail("[format] {}: tensor '{}': its {} bytes at data offset {} (data section starts at byte {}) lie outside "
           "the file ({} bytes); the file is truncated or corrupt",
           path, printable(t.name), t.nbytes, t.offset, data_start, f.size());
    const uint64_t begin = data_start + t.offset;
    t.data = f.data() + begin;
    // Kernels load elements (and block scales) directly: they must be aligned.
    if (t.dtype && reinterpret_cast<uintptr_t>(t.data) % uintptr_t(traits(*t.dtype).alignment) != 0)
      fail("[format] {}: tensor '{}': its {} data at byte {} of the file is not aligned to {} bytes; rewrite the "
           "file with general.alignment 32 (the GGUF default)",
           path, printable(t.name), name(*t.dtype), begin, traits(*t.dtype).alignment);
  }
  // Two tensors sharing bytes means a corrupt index (ggml never writes that).
  std::vector<size_t> order(g->tensors_.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return g->tensors_[a].offset < g->tensors_[b].offset; });
  const GgufTensor* prev = nullptr;
  for (size_t i : order) {
    const GgufTensor& t = g->tensors_[i];
    if (t.nbytes == 0) continue;
    if (prev != nullptr && prev->offset + prev->nbytes > t.offset)
      fail("[format] {}: tensors '{}' and '{}' overlap in the data section", path, printable(prev->name),
           printable(t.name));
    prev = &t;
  }
  return g;
}

// --- lookups ----------------------------------------------------------------------

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace loom::format
