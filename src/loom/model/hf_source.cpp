// A Hugging Face folder as a ModelSource: config.json becomes llama.cpp's
// metadata keys and every safetensors tensor gets its GGUF name (hf_names.h).
// The shards stay memory-mapped and tensors point into them; only tensors
// that must be derived are copied into memory the source owns: experts,
// which Hugging Face stores one tensor per expert and GGUF as one stacked
// [E, ...] tensor; f16/bf16 vectors (norms, biases), which GGUF and the
// kernels keep in f32; and (never in files written by the safetensors
// library) data not aligned to its element size.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/safetensors.h"
#include "loom/model/hf_names.h"
#include "loom/model/source.h"

namespace loom::model {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, "[model] {}: cannot open", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail("[model] {}: malformed JSON ({})", path.string(), e.what());
  }
}

// GGUF's numbering of a safetensors dtype, or kNoGgmlType.
uint32_t ggml_type_for(const std::string& dtype) {
  static const std::pair<const char*, uint32_t> kMap[] = {
      {"F32", 0}, {"F16", 1}, {"BF16", 30}, {"I8", 24}, {"I16", 25}, {"I32", 26}, {"I64", 27}, {"F64", 28}};
  for (const auto& [n, id] : kMap)
    if (dtype == n) return id;
  return kNoGgmlType;
}

// The safetensors files of a folder: model.safetensors, or the shards its
// index lists (each checked to hold the tensors the index promises).
std::vector<std::unique_ptr<format::SafetensorsFile>> open_shards(const fs::path& dir) {
  std::vector<std::unique_ptr<format::SafetensorsFile>> shards;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(single)) {
    shards.push_back(format::SafetensorsFile::open(single.string()));
    return shards;
  }
  if (fs::is_regular_file(index)) {
    const nlohmann::json j = read_json(index);
    auto wm = j.find("weight_map");
    LOOM_CHECK(j.is_object() && wm != j.end() && wm->is_object(),
               "[model] {}: expected an object with a \"weight_map\" of tensor name -> shard file", index.string());
    std::vector<std::string> files;
    std::map<std::string, std::vector<std::string>> promised;  // shard -> tensors the index puts there
    for (const auto& [name, file] : wm->items()) {
      LOOM_CHECK(file.is_string(), "[model] {}: weight_map['{}'] must be a file name", index.string(), name);
      const std::string f = file.get<std::string>();
      // The index is untrusted: a shard must be a plain file name in this folder.
      LOOM_CHECK(!f.empty() && f.find('/') == std::string::npos && f != "." && f != "..",
                 "[model] {}: weight_map['{}'] names '{}', which is not a file in the folder", index.string(), name,
                 f);
      if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
      promised[f].push_back(name);
    }
    LOOM_CHECK(!files.empty(), "[model] {}: the weight_map lists no tensors", index.string());
    for (const auto& f : files) {
      const fs::path p = dir / f;
      LOOM_CHECK(fs::is_regular_file(p), "[model] {}: shard '{}' (listed in {}) is missing; download it again",
                 dir.string(), f, index.filename().string());
      shards.push_back(format::SafetensorsFile::open(p.string()));
      for (const auto& name : promised[f])
        LOOM_CHECK(shards.back()->find_tensor(name) != nullptr,
                   "[model] {}: tensor '{}' is missing from shard {} (the index {} puts it there); the download is "
                   "incomplete or the index is stale",
                   dir.string(), name, f, index.filename().string());
    }
    return shards;
  }
  std::string found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" || e.path().extension() == ".bin")
      found += (found.empty() ? "" : ", ") + e.path().filename().string();
  fail("[model] {}: no model.safetensors and no model.safetensors.index.json{}; loom reads Hugging Face weights as "
       "safetensors",
       dir.string(), found.empty() ? "" : " (found: " + found + ")");
}

// Sorts GGUF names as llama.cpp writes them: token_embd*, then blocks in
// numeric order, then output_norm/output.
int64_t order_key(const std::string& name) {
  if (name.rfind("token_embd", 0) == 0) return -1;
  if (name.rfind("blk.", 0) == 0) return std::strtoll(name.c_str() + 4, nullptr, 10);
  return INT64_MAX;
}

}  // namespace

std::unique_ptr<ModelSource> ModelSource::from_hf_folder(const std::string& path) {
  const fs::path dir(path);
  const fs::path config = dir / "config.json";
  LOOM_CHECK(fs::is_regular_file(config),
             "[model] {}: a folder must be a Hugging Face model (config.json with *.safetensors); config.json is "
             "missing",
             path);
  HfModelInfo info = hf_translate_config(read_json(config), config.string());
  std::unique_ptr<ModelSource> s(new ModelSource());
  s->path_ = path;
  s->kind_ = Kind::HuggingFace;
  s->hf_layout_ = info.layout;
  s->metadata_ = format::Metadata(path, info.metadata.entries());
  if (!s->metadata_.find("general.name")) {
    fs::path p = fs::absolute(dir).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();  // "dir/" has an empty last component
    s->metadata_.set("general.name", format::GgufValue::make_string(p.filename().string()));
  }

  const auto shards = open_shards(dir);
  struct ExpertPart {
    int64_t expert;
    const format::SafetensorsTensor* t;
    const format::SafetensorsFile* file;
  };
  std::map<std::string, std::vector<ExpertPart>> experts;  // stacked GGUF name -> parts
  std::set<std::string> seen;
  auto claim = [&](const std::string& gguf, const std::string& where) {
    LOOM_CHECK(seen.insert(gguf).second, "[model] {}: two tensors become '{}' (the second is {})", path, gguf, where);
  };
  for (const auto& shard : shards) {
    const size_t storage = s->storages_.size();
    const auto& m = shard->mapping();
    s->storages_.push_back(SourceStorage{shard->path(), m->data(), m->size(), m, true});
    const std::string file = fs::path(shard->path()).filename().string();
    for (const auto& t : shard->tensors()) {
      const std::string where = fmt::format("'{}' in {}", t.name, file);
      const std::optional<HfName> n = hf_to_gguf_name(info.layout, t.name);
      if (!n)
        fail("[model] {}: tensor '{}' in {} is not a {} weight loom knows ({}); is config.json's architecture "
             "right?",
             path, t.name, file, info.gguf_arch, info.hf_arch);
      if (n->ignore) continue;
      if (n->expert >= 0) {
        experts[n->gguf].push_back(ExpertPart{n->expert, &t, shard.get()});
        continue;
      }
      claim(n->gguf, where);
      SourceTensor st{n->gguf, ggml_type_for(t.dtype_name), t.dtype, t.shape(shard->path()), t.data,
                      size_t(t.nbytes), storage, t.dtype_name, t.name + " in " + file};
      if (st.shape.rank == 1 && (st.dtype == DType::F16 || st.dtype == DType::BF16)) {
        // Norms and biases of f16/bf16 checkpoints become f32, as llama.cpp's
        // converter writes them and as the kernels take them (a small copy).
        std::vector<uint16_t> halves(size_t(st.shape[0]));
        std::memcpy(halves.data(), t.data, t.nbytes);  // the file's copy may be unaligned
        auto copy = std::make_shared<std::vector<std::byte>>(size_t(st.shape[0]) * 4);
        dequantize_row(*st.dtype, halves.data(), reinterpret_cast<float*>(copy->data()), st.shape[0]);
        st.data = copy->data();
        st.nbytes = copy->size();
        st.dtype = DType::F32;
        st.ggml_type = 0;
        st.type_name = "F32";
        st.storage = s->add_owned(n->gguf + " (as f32)", copy);
      } else if (reinterpret_cast<uintptr_t>(t.data) % uintptr_t(t.element_size) != 0) {
        // Kernels load elements directly: data off its element alignment is copied.
        auto copy = std::make_shared<std::vector<std::byte>>(t.data, t.data + t.nbytes);
        st.data = copy->data();
        st.storage = s->add_owned(n->gguf + " (realigned copy)", copy);
      }
      s->tensors_.push_back(std::move(st));
    }
  }

  // Experts: Hugging Face keeps one [F, C] tensor per expert; GGUF (and the
  // MoE kernels) want them stacked as [E, F, C]. This copies them once.
  for (auto& [gguf, parts] : experts) {
    const int64_t E = info.n_expert;
    LOOM_CHECK(E > 0, "[model] {}: '{}' holds expert weights, but config.json gives no expert count", path,
               parts[0].t->name);
    std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.expert < b.expert; });
    for (int64_t e = 0; e < E; ++e) {
      const bool ok = size_t(e) < parts.size() && parts[size_t(e)].expert == e;
      if (!ok)
        fail("[model] {}: expert {} of '{}' is missing (config.json has {} experts; expected a tensor named '{}')",
             path, e, gguf, E, gguf_to_hf_name(info.layout, info.gguf_arch, gguf, e));
    }
    LOOM_CHECK(int64_t(parts.size()) == E, "[model] {}: '{}' has {} expert tensors, but config.json says {} experts",
               path, gguf, parts.size(), E);
    const auto& first = *parts[0].t;
    LOOM_CHECK(first.dims.size() == 2, "[model] {}: expert tensor '{}' has rank {}, expected 2", path, first.name,
               first.dims.size());
    for (const auto& p : parts)
      LOOM_CHECK(p.t->dims == first.dims && p.t->dtype_name == first.dtype_name,
                 "[model] {}: expert tensor '{}' ({} {}) differs from '{}' ({} {})", path, p.t->name, p.t->dtype_name,
                 p.t->shape("").str(), first.name, first.dtype_name, first.shape("").str());
    claim(gguf, "the stacked experts");
    auto bytes = std::make_shared<std::vector<std::byte>>(size_t(first.nbytes) * size_t(E));
    for (int64_t e = 0; e < E; ++e)
      std::memcpy(bytes->data() + size_t(e) * first.nbytes, parts[size_t(e)].t->data, first.nbytes);
    SourceTensor st{gguf, ggml_type_for(first.dtype_name), first.dtype, Shape{E, first.dims[0], first.dims[1]},
                    bytes->data(), bytes->size(), 0, first.dtype_name,
                    fmt::format("{} experts stacked from '{}', ...", E, first.name)};
    st.storage = s->add_owned(gguf + " (stacked experts)", bytes);
    s->tensors_.push_back(std::move(st));
  }

  if (!info.rope_freqs.empty()) {
    // Derived from config.json, as llama.cpp's converter does (a tiny owned tensor).
    auto bytes = std::make_shared<std::vector<std::byte>>(info.rope_freqs.size() * 4);
    std::memcpy(bytes->data(), info.rope_freqs.data(), bytes->size());
    claim("rope_freqs.weight", "the llama3 RoPE factors");
    SourceTensor st{"rope_freqs.weight", 0, DType::F32, Shape{int64_t(info.rope_freqs.size())}, bytes->data(),
                    bytes->size(), 0, "F32", "computed from config.json's llama3 rope_scaling"};
    st.storage = s->add_owned("rope_freqs.weight", bytes);
    s->tensors_.push_back(std::move(st));
  }

  std::stable_sort(s->tensors_.begin(), s->tensors_.end(), [](const SourceTensor& a, const SourceTensor& b) {
    return order_key(a.name) < order_key(b.name);
  });
  return s;
}

}  // namespace loom::model
