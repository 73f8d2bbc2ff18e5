// Hugging Face folders for tests: stories260K written by loom's exporter (its
// correctness is proven by the golden text), helpers to rewrite a folder's
// weights (drop, reshape, split into shards), and greedy generation through
// engine::Session.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/engine/session.h"
#include "loom/format/llama2c.h"
#include "loom/format/safetensors.h"
#include "loom/model/export.h"
#include "loom/tokenizer/export.h"
#include "support/test_data.h"

namespace loom::test {

inline std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// The tokenizer.ggml.* keys of tok512.bin.
inline model::MetadataList stories_tokenizer(const std::string& tok512) {
  return tokenizer::llama2c_gguf_metadata(format::read_llama2c_vocab(tok512, 512));
}

// stories260K.bin as a Hugging Face folder under the test's scratch dir.
inline std::string stories_hf(const std::string& bin, const std::string& tok, const std::string& name,
                              const model::ExportOptions& o = {}) {
  const std::string dir = scratch_dir("hf/" + name) + "/stories";
  std::filesystem::remove_all(dir);
  auto src = model::ModelSource::open(bin);
  model::write_hf(*src, stories_tokenizer(tok), o, dir);
  return dir;
}

// Copies a folder's small files (config, tokenizer) to `to`, and rewrites its
// model.safetensors through `edit` (which may drop, replace or add tensors).
struct TensorOut {
  std::string name;
  std::string dtype;
  std::vector<int64_t> dims;
  std::string bytes;
};
inline void rewrite_folder(const std::string& from, const std::string& to,
                           const std::function<void(std::vector<TensorOut>&)>& edit) {
  namespace fs = std::filesystem;
  fs::remove_all(to);
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    if (e.path().extension() != ".safetensors") fs::copy_file(e.path(), fs::path(to) / e.path().filename());
  auto f = format::SafetensorsFile::open(from + "/model.safetensors");
  std::vector<TensorOut> ts;
  for (const auto& t : f->tensors())
    ts.push_back({t.name, t.dtype_name, t.dims, std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
  edit(ts);
  format::SafetensorsWriter w;
  for (const auto& t : ts) w.add_tensor_raw(t.name, t.dtype, t.dims, t.bytes.data(), t.bytes.size());
  w.write(to + "/model.safetensors");
}

struct Greedy {
  std::vector<int32_t> ids;
  std::string text;
};
inline Greedy greedy(const std::string& model, int n = 200, std::optional<DType> quantize = std::nullopt,
                     const std::string& tokenizer = "") {
  engine::SessionOptions so;
  so.model_path = model;
  so.tokenizer_path = tokenizer;
  so.threads = 2;
  so.quantize = quantize;
  engine::Session s(so);
  const auto prompt = s.tokenizer().encode("", {.add_bos = true});
  Greedy g;
  tokenizer::StreamDecoder dec(s.tokenizer());
  for (int32_t id : prompt) dec.push(id);
  engine::GenerateOptions o;
  o.n_predict = n;
  o.sampling.temperature = 0;
  s.generate(prompt, o, [&](int32_t id) {
    g.ids.push_back(id);
    g.text += dec.push(id);
    return true;
  });
  g.text += dec.flush();
  return g;
}

// The message of the loom::Error `f` throws ("" and a test failure if none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const loom::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a loom::Error";
  return {};
}

}  // namespace loom::test
