// libFuzzer target for loom's model-file readers: the bytes are parsed as a
// GGUF file, a safetensors file, a llama2.c checkpoint and a llama2.c tokenizer. A malformed file
// must end in loom::Error; anything else (a crash, a sanitizer report, another
// exception type, a timeout) is a bug. Everything a successful parse exposes is
// read, so a pointer past the input shows up under ASan.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "loom/core/dtype.h"
#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"
#include "loom/format/mapped_file.h"
#include "loom/format/safetensors.h"

namespace {

using namespace loom::format;

volatile size_t g_sink = 0;  // keeps the reads below from being optimised away

void walk_value(const GgufValue& v) {
  g_sink = g_sink + v.to_display().size();
  if (!v.is_array()) return;
  g_sink = g_sink + v.size();
  try {
    switch (v.element_type()) {
      case GgufType::STRING:
        for (const auto& s : v.strings()) g_sink = g_sink + s.size();
        break;
      case GgufType::ARRAY:
        for (const auto& item : v.values()) walk_value(item);
        break;
      default:
        g_sink = g_sink + v.floats().size();
        g_sink = g_sink + v.ints().size();  // may throw for a UINT64 above INT64_MAX, or floats
        break;
    }
  } catch (const loom::Error&) {
  }
}

void walk_gguf(const GgufFile& f) {
  for (const auto& [key, value] : f.metadata().entries()) {
    g_sink = g_sink + key.size();
    walk_value(value);
    try {
      g_sink = g_sink + size_t(f.metadata().get_int(key));
    } catch (const loom::Error&) {
    }
  }
  std::vector<float> row;
  for (const auto& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) __builtin_trap();  // names are unique
    size_t sum = 0;
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += size_t(t.data[i]);
    g_sink = g_sink + sum;
    // Rows of loom's own types decode within nbytes.
    if (t.dtype && t.shape.numel() > 0) {
      const int64_t n = t.shape[-1];
      const size_t rb = loom::row_bytes(*t.dtype, n);
      if (rb == 0 || t.nbytes % rb != 0) __builtin_trap();
      row.resize(size_t(n));
      for (uint64_t off = 0; off < t.nbytes; off += rb) loom::dequantize_row(*t.dtype, t.data + off, row.data(), n);
    }
  }
}

void walk_safetensors(const SafetensorsFile& f) {
  for (const auto& [k, v] : f.metadata()) g_sink = g_sink + k.size() + v.size();
  std::vector<float> row;
  for (const auto& t : f.tensors()) {
    if (f.find_tensor(t.name) == nullptr) __builtin_trap();
    size_t sum = 0;
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += size_t(t.data[i]);
    g_sink = g_sink + sum;
    try {
      const loom::Shape s = t.shape(f.path());
      // Loom's own types convert within nbytes (the data may be unaligned: copy first).
      if (t.dtype && s.rank > 0 && s.numel() > 0) {
        const int64_t n = s[-1];
        const size_t rb = loom::row_bytes(*t.dtype, n);
        if (rb == 0 || t.nbytes % rb != 0) __builtin_trap();
        std::vector<std::byte> tmp(rb);
        row.resize(size_t(n));
        for (uint64_t off = 0; off < t.nbytes; off += rb) {
          std::memcpy(tmp.data(), t.data + off, rb);
          loom::dequantize_row(*t.dtype, tmp.data(), row.data(), n);
        }
      }
      g_sink = g_sink + size_t(f.loom_dtype(t));
    } catch (const loom::Error&) {
    }
  }
}

void touch(const Llama2cArray& a) {
  const int64_t n = a.shape.numel();
  if (n > 0) g_sink = g_sink + size_t(a.data[0] != 0) + size_t(a.data[n - 1] != 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = MappedFile::from_memory(data, size, "fuzz-input");
  try {
    walk_gguf(*GgufFile::parse(file));
  } catch (const loom::Error&) {
  }
  try {
    walk_safetensors(*SafetensorsFile::parse(file));
  } catch (const loom::Error&) {
  }
  try {
    const bool exact = looks_like_llama2c(*file);
    const auto ck = parse_llama2c_checkpoint(file);
    if (exact && !ck.config.shared_classifier && ck.wcls.data == ck.token_embedding.data) __builtin_trap();
    for (const auto* a : {&ck.token_embedding, &ck.rms_att, &ck.wq, &ck.wk, &ck.wv, &ck.wo, &ck.rms_ffn, &ck.w1,
                          &ck.w2, &ck.w3, &ck.rms_final, &ck.wcls})
      touch(*a);
  } catch (const loom::Error&) {
  }
  for (int32_t vocab_size : {1, 4, 16}) {
    try {
      const auto v = parse_llama2c_vocab(*file, vocab_size);
      if (v.pieces.size() != size_t(vocab_size)) __builtin_trap();
      for (const auto& p : v.pieces) g_sink = g_sink + p.size();
    } catch (const loom::Error&) {
    }
  }
  return 0;
}
