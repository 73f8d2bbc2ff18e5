// Writes a small seed corpus for fuzz_model_readers into DIR: a few GGUF files
// made with loom's GgufWriter (every metadata type, nested arrays, loom's
// tensor types, a non-default alignment), a safetensors file, and tiny
// llama2.c checkpoints and tokenizers, one of them truncated. Generated at
// fuzz time so the repository holds no binary blobs.
//
//   fuzz_make_seeds build-fuzz/fuzz-corpus/model_readers
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/safetensors.h"

namespace {

using namespace loom::format;
using loom::DType;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + 13 * i);
  return v;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  if (!out) loom::fail("[fuzz] {}: cannot write", path);
}

void gguf_seeds(const std::string& dir) {
  const auto f32 = pattern(24, 1), q8 = pattern(34, 2), f16 = pattern(8, 3), q4 = pattern(36, 4),
             i8 = pattern(3, 5), i32 = pattern(8, 6), bf16 = pattern(4, 7), q4k = pattern(144, 8);
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::make_string("llama"));
    w.set("u8", GgufValue::make_uint(GgufType::UINT8, 7));
    w.set("i8", GgufValue::make_int(GgufType::INT8, -7));
    w.set("u16", GgufValue::make_uint(GgufType::UINT16, 700));
    w.set("i16", GgufValue::make_int(GgufType::INT16, -700));
    w.set("u32", GgufValue::make_uint32(70000));
    w.set("i32", GgufValue::make_int32(-70000));
    w.set("u64", GgufValue::make_uint(GgufType::UINT64, UINT64_MAX));
    w.set("i64", GgufValue::make_int(GgufType::INT64, INT64_MIN));
    w.set("f32", GgufValue::make_float32(1e-5f));
    w.set("f64", GgufValue::make_float(GgufType::FLOAT64, 0.1));
    w.set("bool", GgufValue::make_bool(true));
    w.set("nested", GgufValue::make_array(GgufType::ARRAY, {GgufValue::make_int32_array({1, 2}),
                                                            GgufValue::make_string_array({"a", "bc"})}));
    w.set("u64s", GgufValue::make_array(GgufType::UINT64, {GgufValue::make_uint(GgufType::UINT64, 1)}));
    w.add_tensor("a.f32", DType::F32, {2, 3}, f32.data());
    w.add_tensor("b.q8_0", DType::Q8_0, {1, 32}, q8.data());
    w.write(dir + "/meta.gguf");
  }
  {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 13; ++i) tokens.push_back(std::string(1, char('a' + i)));
    std::vector<float> scores(tokens.size(), -1.0f);
    std::vector<int32_t> types(tokens.size(), 1);
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::make_string("llama"));
    w.set("tokenizer.ggml.tokens", GgufValue::make_string_array(tokens));
    w.set("tokenizer.ggml.scores", GgufValue::make_float32_array(scores));
    w.set("tokenizer.ggml.token_type", GgufValue::make_int32_array(types));
    w.set("tokenizer.ggml.bos_token_id", GgufValue::make_uint32(1));
    w.write(dir + "/vocab.gguf");
  }
  {
    GgufWriter w;
    w.set("general.alignment", GgufValue::make_uint32(8));
    w.add_tensor("f16", DType::F16, {4}, f16.data());
    w.add_tensor("q4_0", DType::Q4_0, {2, 32}, q4.data());
    w.add_tensor("i8", DType::I8, {3}, i8.data());
    w.add_tensor("i32", DType::I32, {1, 2}, i32.data());
    w.add_tensor("bf16", DType::BF16, {2}, bf16.data());
    w.add_tensor_raw("q4_k", 12, {1, 256}, q4k.data(), q4k.size());  // data is read at write()
    w.write(dir + "/align8.gguf");
  }
  GgufWriter().write(dir + "/empty.gguf");
}

// dim 8, hidden 16, 1 layer, 2 heads, 1 kv head, vocab 10, seq_len 3 (head size 4).
std::vector<uint8_t> llama2c_checkpoint(bool shared) {
  const int32_t header[7] = {8, 16, 1, 2, 1, shared ? 10 : -10, 3};
  const size_t floats = 80 + 8 + 64 + 32 + 32 + 64 + 8 + 3 * 128 + 8 + 2 * 3 * 2 + (shared ? 0 : 80);
  std::vector<uint8_t> b(28 + 4 * floats);
  std::memcpy(b.data(), header, 28);
  for (size_t i = 0; i < floats; ++i) {
    const float x = float(i % 17) * 0.125f - 1.0f;
    std::memcpy(b.data() + 28 + 4 * i, &x, 4);
  }
  return b;
}

std::vector<uint8_t> llama2c_vocab(int n) {
  std::vector<uint8_t> b;
  auto put = [&b](const void* p, size_t k) { b.insert(b.end(), (const uint8_t*)p, (const uint8_t*)p + k); };
  const int32_t max_len = 6;
  put(&max_len, 4);
  for (int i = 0; i < n; ++i) {
    const std::string piece = i < 3 ? std::string("<0x0") + char('0' + i) + ">" : std::string(1, char('a' + i));
    const float score = -float(i);
    const int32_t len = int32_t(piece.size());
    put(&score, 4);
    put(&len, 4);
    put(piece.data(), piece.size());
  }
  return b;
}

}  // namespace

void safetensors_seeds(const std::string& dir) {
  const auto f32 = pattern(24, 1), bf16 = pattern(6, 2), i64 = pattern(16, 3);
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add_tensor("model.embed_tokens.weight", DType::F32, {2, 3}, f32.data());
  w.add_tensor("model.norm.weight", DType::BF16, {3}, bf16.data());
  w.add_tensor_raw("position_ids", "I64", {1, 2}, i64.data(), i64.size());
  w.write(dir + "/small.safetensors");
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  try {
    std::filesystem::create_directories(dir);
    gguf_seeds(dir);
    safetensors_seeds(dir);
    const auto tied = llama2c_checkpoint(true);
    write_bytes(dir + "/llama2c.bin", tied);
    write_bytes(dir + "/llama2c_untied.bin", llama2c_checkpoint(false));
    write_bytes(dir + "/llama2c_truncated.bin", std::vector<uint8_t>(tied.begin(), tied.begin() + 300));
    write_bytes(dir + "/tok16.bin", llama2c_vocab(16));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
