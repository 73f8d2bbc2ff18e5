#include "bench_synthetic.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/model/export.h"
#include "loom/quant/quantize.h"

namespace loom::cli {

using format::GgufValue;

const std::vector<SyntheticShape>& synthetic_shapes() {
  // Hyper-parameters as published in each model's config.json.
  static const std::vector<SyntheticShape> shapes = {
      {"tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, false, false},
      {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.0f, true, true},
      {"llama-7b", "llama", 4096, 32, 32, 32, 11008, 32000, 4096, 10000.0f, false, false},
  };
  return shapes;
}

namespace {

// Fills `n` floats with a deterministic uniform(-a, a) sequence.
void random_fill(float* dst, size_t n, uint64_t seed, float a) {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) dst[i] = a * (float(rng() >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

std::string cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string base = xdg && *xdg ? xdg : home && *home ? std::string(home) + "/.cache" : "/tmp";
  return base + "/loom/synthetic";
}

}  // namespace

std::string synthetic_model(const std::string& shape_name, DType type) {
  const SyntheticShape* s = nullptr;
  std::string known;
  for (const auto& sh : synthetic_shapes()) {
    if (shape_name == sh.name) s = &sh;
    known += (known.empty() ? "" : ", ") + std::string(sh.name);
  }
  LOOM_CHECK(s != nullptr, "[cli] unknown synthetic shape '{}'; known: {}", shape_name, known);
  const std::string dir = cache_dir();
  const std::string path = fmt::format("{}/{}-{}.gguf", dir, s->name, name(type));
  if (std::filesystem::exists(path)) return path;
  std::filesystem::create_directories(dir);
  std::fprintf(stderr, "writing synthetic model %s (once)...\n", path.c_str());

  format::GgufWriter w;
  const std::string a = s->arch;
  const int64_t D = s->n_embd / s->n_head;
  w.set("general.architecture", GgufValue::make_string(a));
  w.set("general.name", GgufValue::make_string(std::string("synthetic ") + s->name));
  w.set(a + ".context_length", GgufValue::make_uint32(uint32_t(s->n_ctx)));
  w.set(a + ".embedding_length", GgufValue::make_uint32(uint32_t(s->n_embd)));
  w.set(a + ".block_count", GgufValue::make_uint32(uint32_t(s->n_layer)));
  w.set(a + ".feed_forward_length", GgufValue::make_uint32(uint32_t(s->n_ff)));
  w.set(a + ".attention.head_count", GgufValue::make_uint32(uint32_t(s->n_head)));
  w.set(a + ".attention.head_count_kv", GgufValue::make_uint32(uint32_t(s->n_head_kv)));
  w.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::make_float32(1e-6f));
  w.set(a + ".rope.freq_base", GgufValue::make_float32(s->rope_base));
  w.set(a + ".rope.dimension_count", GgufValue::make_uint32(uint32_t(D)));
  const uint32_t ft = type == DType::F32 ? 0 : type == DType::F16 ? 1 : type == DType::Q4_0 ? 2 : type == DType::Q8_0 ? 7 : 32;
  w.set("general.file_type", GgufValue::make_uint32(ft));
  // A placeholder SentencePiece vocabulary: <unk>, <s>, </s>, 256 byte tokens, then "t<i>".
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int64_t i = 0; i < s->n_vocab; ++i) {
    if (i < 3) {
      tokens.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
      types.push_back(i == 0 ? 2 : 3);
    } else if (i < 259) {
      tokens.push_back(fmt::format("<0x{:02X}>", i - 3));
      types.push_back(6);
    } else {
      tokens.push_back(fmt::format("t{}", i));
      types.push_back(1);
    }
    scores.push_back(-float(i));
  }
  w.set("tokenizer.ggml.model", GgufValue::make_string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::make_string_array(std::move(tokens)));
  w.set("tokenizer.ggml.scores", GgufValue::make_float32_array(std::move(scores)));
  w.set("tokenizer.ggml.token_type", GgufValue::make_int32_array(std::move(types)));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::make_uint32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::make_uint32(2));

  uint64_t seed = 1;
  auto add = [&](const std::string& name, Shape shape, float scale) {
    model::SourceTensor probe{name, 0, DType::F32, shape, nullptr, 0};
    const DType to = model::export_type(probe, {.type = type});
    w.add_tensor_generated(name, to, shape, [shape, to, scale, seed = seed++](std::byte* dst) {
      const int64_t cols = shape[-1], rows = shape.numel() / cols;
      std::vector<float> row(static_cast<size_t>(cols));
      const size_t rb = row_bytes(to, cols);
      for (int64_t r = 0; r < rows; ++r) {
        random_fill(row.data(), row.size(), seed * 1000003 + uint64_t(r), scale);
        quant::quantize_row(to, row.data(), dst + size_t(r) * rb, cols);
      }
    });
  };
  const int64_t C = s->n_embd, Q = s->n_head * D, KV = s->n_head_kv * D, F = s->n_ff;
  const float wscale = 1.0f / std::sqrt(float(C));
  add("token_embd.weight", {s->n_vocab, C}, 0.02f);
  for (int64_t l = 0; l < s->n_layer; ++l) {
    auto n = [l](const char* t) { return fmt::format("blk.{}.{}", l, t); };
    add(n("attn_norm.weight"), {C}, 1.0f);
    add(n("attn_q.weight"), {Q, C}, wscale);
    add(n("attn_k.weight"), {KV, C}, wscale);
    add(n("attn_v.weight"), {KV, C}, wscale);
    if (s->qkv_bias) {
      add(n("attn_q.bias"), {Q}, 0.02f);
      add(n("attn_k.bias"), {KV}, 0.02f);
      add(n("attn_v.bias"), {KV}, 0.02f);
    }
    add(n("attn_output.weight"), {C, Q}, wscale);
    add(n("ffn_norm.weight"), {C}, 1.0f);
    add(n("ffn_gate.weight"), {F, C}, wscale);
    add(n("ffn_up.weight"), {F, C}, wscale);
    add(n("ffn_down.weight"), {C, F}, 1.0f / std::sqrt(float(F)));
  }
  add("output_norm.weight", {C}, 1.0f);
  if (!s->tied_output) add("output.weight", {s->n_vocab, C}, wscale);
  w.write(path);
  return path;
}

}  // namespace loom::cli
