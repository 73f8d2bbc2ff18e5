#include "loom/model/lora.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/safetensors.h"
#include "loom/model/hf_names.h"
#include "loom/model/source.h"

namespace loom::model {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPrefix = "base_model.model.";

// Parses "base_model.model.model.layers.{l}.{self_attn|mlp}.{target}.lora_{A|B}.weight".
bool parse_peft_name(std::string_view name, int64_t* layer, std::string* target, char* matrix) {
  if (!name.starts_with(kPrefix)) return false;
  name.remove_prefix(kPrefix.size());
  constexpr std::string_view layers = "model.layers.";
  if (!name.starts_with(layers)) return false;
  name.remove_prefix(layers.size());
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  int64_t l = 0;
  for (char ch : name.substr(0, dot)) {
    if (ch < '0' || ch > '9' || l > (int64_t(1) << 40)) return false;
    l = l * 10 + (ch - '0');
  }
  name.remove_prefix(dot + 1);
  for (const std::string& t : lora_target_modules())
    for (char m : {'A', 'B'})
      if (name == fmt::format("{}.lora_{}.weight", lora_module_path(0, t).substr(std::strlen("model.layers.0.")), m)) {
        *layer = l;
        *target = t;
        *matrix = m;
        return true;
      }
  return false;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, "[model] {}: cannot open it; a LoRA adapter folder holds adapter_config.json and "
             "adapter_model.safetensors", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

// The tensor's values as floats (F32, F16, BF16; the data may be unaligned).
std::vector<float> read_floats(const format::SafetensorsFile& f, const format::SafetensorsTensor& t) {
  const DType dt = f.loom_dtype(t);
  LOOM_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16,
             "[model] {}: LoRA tensor '{}' is {}; adapters are F32, F16 or BF16", f.path(), t.name, t.dtype_name);
  const int64_t n = int64_t(t.nbytes / uint64_t(t.element_size));
  std::vector<std::byte> bytes(t.nbytes);
  if (t.nbytes > 0) std::memcpy(bytes.data(), t.data, t.nbytes);
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(dt, bytes.data(), out.data(), n);
  return out;
}

}  // namespace

const std::vector<std::string>& lora_target_modules() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

size_t lora_target_index(const std::string& target) {
  const auto& all = lora_target_modules();
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] == target) return i;
  fail("[model] unknown LoRA target '{}'; the Llama linear layers are {}", target, fmt::join(all, ", "));
}

std::string lora_module_path(int64_t layer, const std::string& target) {
  const bool attn = lora_target_index(target) < 4;
  return fmt::format("model.layers.{}.{}.{}", layer, attn ? "self_attn" : "mlp", target);
}

std::string peft_lora_name(int64_t layer, const std::string& target, char matrix) {
  return fmt::format("{}{}.lora_{}.weight", kPrefix, lora_module_path(layer, target), matrix);
}

nlohmann::json peft_adapter_config(int64_t rank, double alpha, const std::vector<std::string>& targets,
                                   const std::string& base_model) {
  return {{"peft_type", "LORA"},
          {"task_type", "CAUSAL_LM"},
          {"r", rank},
          {"lora_alpha", alpha == std::floor(alpha) ? nlohmann::json(int64_t(alpha)) : nlohmann::json(alpha)},
          {"lora_dropout", 0.0},
          {"target_modules", targets},
          {"base_model_name_or_path", base_model},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"inference_mode", true}};
}

std::vector<float> permute_lora_b(const std::vector<float>& b, int64_t out, int64_t rank, int64_t n_head,
                                  bool to_gguf) {
  LOOM_CHECK(int64_t(b.size()) == out * rank, "[model] LoRA B has {} values, expected {} x {}", b.size(), out, rank);
  std::vector<float> r(b.size());
  permute_qk_rows(reinterpret_cast<const std::byte*>(b.data()), reinterpret_cast<std::byte*>(r.data()), n_head, out,
                  size_t(rank) * sizeof(float), to_gguf);
  return r;
}

double LoraAdapter::scale() const {
  return rslora ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
}

LoraAdapter LoraAdapter::open(const std::string& dir) {
  const fs::path d(dir);
  LOOM_CHECK(fs::is_directory(d), "[model] {}: not a folder; --lora takes a PEFT adapter folder (adapter_config.json "
             "+ adapter_model.safetensors)", dir);
  const fs::path config_path = d / "adapter_config.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(config_path));
  } catch (const nlohmann::json::exception& e) {
    fail("[model] {}: not valid JSON ({})", config_path.string(), e.what());
  }
  const std::string cp = config_path.string();
  LOOM_CHECK(j.is_object() && j.value("peft_type", "") == "LORA",
             "[model] {}: \"peft_type\" is not \"LORA\"; loom merges LoRA adapters only", cp);
  LoraAdapter a;
  a.path = dir;
  try {
    a.rank = j.at("r").get<int64_t>();
    a.alpha = j.value("lora_alpha", double(a.rank));
    a.rslora = j.value("use_rslora", false);
    a.base_model = j.value("base_model_name_or_path", std::string());
    if (j.contains("target_modules") && j["target_modules"].is_array())
      a.target_modules = j["target_modules"].get<std::vector<std::string>>();
    LOOM_CHECK(!j.value("use_dora", false), "[model] {}: DoRA adapters (use_dora) are not supported", cp);
    LOOM_CHECK(!j.contains("rank_pattern") || j["rank_pattern"].empty(),
               "[model] {}: per-module ranks (rank_pattern) are not supported", cp);
  } catch (const nlohmann::json::exception& e) {
    fail("[model] {}: bad LoRA configuration ({})", cp, e.what());
  }
  LOOM_CHECK(a.rank > 0 && a.alpha > 0, "[model] {}: r {} and lora_alpha {} must be positive", cp, a.rank, a.alpha);

  const std::string weights = (d / "adapter_model.safetensors").string();
  LOOM_CHECK(fs::is_regular_file(weights), "[model] {}: missing; the adapter's weights must be in "
             "adapter_model.safetensors", weights);
  const auto file = format::SafetensorsFile::open(weights);
  std::map<std::pair<int64_t, size_t>, LoraPair> pairs;  // by (layer, target index)
  for (const auto& t : file->tensors()) {
    int64_t layer = 0;
    std::string target;
    char m = 0;
    LOOM_CHECK(parse_peft_name(t.name, &layer, &target, &m),
               "[model] {}: tensor '{}' is not a LoRA matrix loom knows (expected "
               "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight and the like, for {})",
               weights, t.name, fmt::join(lora_target_modules(), ", "));
    LOOM_CHECK(t.dims.size() == 2, "[model] {}: '{}' has {} dimensions, expected 2", weights, t.name, t.dims.size());
    LoraPair& p = pairs[{layer, lora_target_index(target)}];
    p.layer = layer;
    p.target = target;
    if (m == 'A') {
      LOOM_CHECK(t.dims[0] == a.rank, "[model] {}: '{}' is [{}, {}], but r is {}", weights, t.name, t.dims[0],
                 t.dims[1], a.rank);
      p.in = t.dims[1];
      p.a = read_floats(*file, t);
    } else {
      LOOM_CHECK(t.dims[1] == a.rank, "[model] {}: '{}' is [{}, {}], but r is {}", weights, t.name, t.dims[0],
                 t.dims[1], a.rank);
      p.out = t.dims[0];
      p.b = read_floats(*file, t);
    }
    p.rank = a.rank;
  }
  LOOM_CHECK(!pairs.empty(), "[model] {}: holds no LoRA tensors", weights);
  for (auto& [key, p] : pairs) {
    LOOM_CHECK(!p.a.empty() && !p.b.empty(), "[model] {}: {} has only one of lora_A and lora_B", weights,
               lora_module_path(p.layer, p.target));
    a.pairs.push_back(std::move(p));
  }
  return a;
}

void ModelSource::merge_lora(const LoraAdapter& adapter) {
  const std::string arch = metadata_.get_string("general.architecture", "");
  // Sources in llama.cpp's row order (GGUF, llama2.c) take B's q/k rows permuted.
  const bool permuted = hf_rope_is_permuted_in_gguf(arch) && metadata_.get_string(arch + ".rope.style", "") != "neox";
  const double scale = adapter.scale();
  for (const LoraPair& p : adapter.pairs) {
    const std::string hf = lora_module_path(p.layer, p.target) + ".weight";
    const std::optional<HfName> n = hf_to_gguf_name("llama", hf);
    SourceTensor* t = nullptr;
    if (n && n->expert < 0)
      for (SourceTensor& s : tensors_)
        if (s.name == n->gguf) t = &s;
    LOOM_CHECK(t != nullptr, "[model] {}: the adapter targets {} ({}), which {} does not have; is it an adapter for "
               "another model?", adapter.path, hf, n ? n->gguf : "no GGUF name", path_);
    LOOM_CHECK(t->dtype.has_value() && t->shape.rank == 2 && t->shape[0] == p.out && t->shape[1] == p.in,
               "[model] {}: {} is [{}, {}] x [{}, {}] (B x A) but {} is {} {}; is it an adapter for another model?",
               adapter.path, hf, p.out, p.rank, p.rank, p.in, t->name, t->type_name, t->shape.str());
    std::vector<float> b = p.b;
    const bool is_q = p.target == "q_proj", is_k = p.target == "k_proj";
    if (permuted && (is_q || is_k)) {
      const int64_t heads = is_q ? metadata_.get_int(arch + ".attention.head_count")
                                 : metadata_.get_int(arch + ".attention.head_count_kv",
                                                     metadata_.get_int(arch + ".attention.head_count"));
      b = permute_lora_b(b, p.out, p.rank, heads, /*to_gguf=*/true);
    }
    const int64_t rows = p.out, cols = p.in, r = p.rank;
    auto out = std::make_shared<std::vector<std::byte>>(size_t(rows * cols) * sizeof(float));
    auto* w = reinterpret_cast<float*>(out->data());
    const size_t in_rb = row_bytes(*t->dtype, cols);
    std::vector<double> acc(static_cast<size_t>(cols));
    for (int64_t o = 0; o < rows; ++o) {
      float* row = w + o * cols;
      dequantize_row(*t->dtype, t->data + size_t(o) * in_rb, row, cols);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = 0; k < r; ++k) {
        const double bk = double(b[size_t(o * r + k)]);
        const float* ak = p.a.data() + k * cols;
        for (int64_t i = 0; i < cols; ++i) acc[size_t(i)] += bk * double(ak[i]);
      }
      for (int64_t i = 0; i < cols; ++i) row[i] = float(double(row[i]) + scale * acc[size_t(i)]);
    }
    t->storage = add_owned(fmt::format("{} + LoRA {}", t->name, adapter.path), out);
    t->data = out->data();
    t->nbytes = out->size();
    t->dtype = DType::F32;
    t->ggml_type = format::ggml_type_of(DType::F32);
    t->type_name = "F32";
  }
}

}  // namespace loom::model
