// write_hf: a ModelSource as a Hugging Face folder. config.json is built from
// the GGUF keys (the inverse of hf_translate_config), tensors get their
// Hugging Face names (hf_names.h), Q/K rows go back to Hugging Face's halves
// order, stacked experts are written one tensor per expert, and a
// SentencePiece vocabulary in tokenizer.ggml.* becomes tokenizer.model (the
// protobuf SentencePiece and transformers' LlamaTokenizer read) with a
// tokenizer_config.json.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loom/core/error.h"
#include "loom/format/atomic_file.h"
#include "loom/format/safetensors.h"
#include "loom/model/export.h"
#include "loom/model/hf_names.h"
#include "loom/quant/quantize.h"

namespace loom::model {

namespace fs = std::filesystem;

namespace {

using Json = nlohmann::ordered_json;

void write_text(const fs::path& path, const std::string& text) {
  format::AtomicFile out(path.string());
  out.write(text.data(), text.size());
  out.commit();
}

// --- SentencePiece ModelProto (protobuf wire format) ------------------------------

class Proto {
 public:
  std::string bytes;
  void varint(uint64_t v) {
    while (v >= 0x80) {
      bytes += char(uint8_t(v) | 0x80);
      v >>= 7;
    }
    bytes += char(uint8_t(v));
  }
  void key(uint32_t field, int wire) { varint((uint64_t(field) << 3) | uint32_t(wire)); }
  void int_field(uint32_t field, int64_t v) {  // int32/enum/bool: negative values take 10 bytes, as protobuf does
    key(field, 0);
    varint(uint64_t(v));
  }
  void float_field(uint32_t field, float v) {
    key(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    bytes.append(b, 4);
  }
  void bytes_field(uint32_t field, std::string_view v) {
    key(field, 2);
    varint(v.size());
    bytes += v;
  }
};

// tokenizer.ggml.* of a "llama" (SentencePiece) vocabulary as a .model file.
std::string sentencepiece_model(const format::Metadata& m) {
  const auto& tokens = m.at("tokenizer.ggml.tokens").strings();
  const format::GgufValue* scores_v = m.find("tokenizer.ggml.scores");
  const format::GgufValue* types_v = m.find("tokenizer.ggml.token_type");
  const std::vector<float> scores = scores_v ? scores_v->floats() : std::vector<float>();
  const std::vector<int64_t> types = types_v ? types_v->ints() : std::vector<int64_t>();
  Proto model;
  bool byte_fallback = false;
  for (size_t i = 0; i < tokens.size(); ++i) {
    Proto piece;
    piece.bytes_field(1, tokens[i]);
    piece.float_field(2, i < scores.size() ? scores[i] : 0.0f);
    const int64_t type = i < types.size() ? types[i] : 1;  // GGUF token types use SentencePiece's numbering
    if (type != 1) piece.int_field(3, type);
    byte_fallback = byte_fallback || type == 6;
    model.bytes_field(1, piece.bytes);
  }
  Proto trainer;
  trainer.int_field(3, 2);  // model_type BPE
  if (byte_fallback) trainer.int_field(35, 1);
  trainer.int_field(40, m.get_int("tokenizer.ggml.unknown_token_id", 0));
  trainer.int_field(41, m.get_int("tokenizer.ggml.bos_token_id", 1));
  trainer.int_field(42, m.get_int("tokenizer.ggml.eos_token_id", 2));
  trainer.int_field(43, m.get_int("tokenizer.ggml.padding_token_id", -1));
  model.bytes_field(2, trainer.bytes);
  Proto normalizer;
  normalizer.bytes_field(1, "identity");
  normalizer.int_field(3, m.get_bool("tokenizer.ggml.add_space_prefix", true) ? 1 : 0);
  normalizer.int_field(4, 0);  // remove_extra_whitespaces: off, as in Llama's tokenizer.model
  normalizer.int_field(5, 1);  // escape_whitespaces
  model.bytes_field(3, normalizer.bytes);
  return model.bytes;
}

// --- config.json --------------------------------------------------------------------

// A float32 metadata value as the shortest decimal that reads back the same
// (1e-05, not 9.999999747378752e-06).
double shortest(double v) { return std::stod(fmt::format("{}", float(v))); }

std::string torch_dtype(DType t) {
  return t == DType::F32 ? "float32" : t == DType::F16 ? "float16" : "bfloat16";
}

// The Hugging Face name table of a GGUF architecture write_hf supports.
std::string layout_of(const std::string& arch) {
  if (arch == "llama" || arch == "qwen2" || arch == "qwen2moe" || arch == "deepseek" || arch == "glm4") return "llama";
  if (arch == "chatglm") return "chatglm";
  if (arch == "telechat2") return "telechat";
  return {};
}

// config.json of `src`: the inverse of hf_translate_config (hf_names.cpp).
Json config_json(const ModelSource& src, const format::Metadata& tok, DType dtype, bool tied,
                 std::vector<std::string>& notes) {
  const format::Metadata& m = src.metadata();
  const std::string a = m.get_string("general.architecture");
  auto i = [&](const char* key) { return m.get_int(a + "." + key); };
  const int64_t C = i("embedding_length"), H = i("attention.head_count");
  const int64_t Hkv = m.get_int(a + ".attention.head_count_kv", H);
  const int64_t D = m.get_int(a + ".attention.key_length", C / H);
  const int64_t n_rot = m.get_int(a + ".rope.dimension_count", D);
  const double base = m.get_float(a + ".rope.freq_base", 10000.0);
  const double eps = shortest(m.get_float(a + ".attention.layer_norm_rms_epsilon", 1e-5));
  const int64_t ctx = m.get_int(a + ".context_length", 2048);
  const SourceTensor* emb = src.find_tensor("token_embd.weight");
  LOOM_CHECK(emb && emb->shape.rank == 2, "[model] {}: no token_embd.weight [V, C] to take the vocabulary size from",
             src.path());
  const int64_t V = emb->shape[0];
  const int64_t n_expert = m.get_int(a + ".expert_count", 0);
  const bool qkv_bias = src.find_tensor("blk.0.attn_q.bias") || src.find_tensor("blk.0.attn_qkv.bias");
  Json j;
  auto cls = [&](const char* c, const char* type) {
    j["architectures"] = {c};
    j["model_type"] = type;
  };
  if (a == "chatglm") {
    LOOM_CHECK(n_rot * 2 == D, "[model] {}: ChatGLM's code rotates half of each head; this model rotates {} of {}",
               src.path(), n_rot, D);
    cls("ChatGLMModel", "chatglm");
    j["num_layers"] = i("block_count");
    j["hidden_size"] = C;
    j["ffn_hidden_size"] = i("feed_forward_length");
    j["kv_channels"] = D;
    j["num_attention_heads"] = H;
    j["multi_query_attention"] = Hkv != H;
    j["multi_query_group_num"] = Hkv;
    j["seq_length"] = ctx;
    j["layernorm_epsilon"] = eps;
    j["padded_vocab_size"] = V;
    j["vocab_size"] = V;
    j["rope_ratio"] = shortest(base / 10000.0);
    j["add_qkv_bias"] = qkv_bias;
    j["add_bias_linear"] = false;
    j["rmsnorm"] = true;
    j["post_layer_norm"] = src.find_tensor("output_norm.weight") != nullptr;
    j["original_rope"] = true;
    j["apply_residual_connection_post_layernorm"] = false;
  } else if (a == "telechat2") {
    cls("Telechat2ForCausalLM", "telechat");
    j["hidden_size"] = C;
    j["n_layer"] = i("block_count");
    j["n_head"] = H;
    j["num_key_value_heads"] = Hkv;
    j["ffn_hidden_size"] = i("feed_forward_length");
    j["layer_norm_epsilon"] = eps;
    j["training_seqlen"] = ctx;
    j["base_seqlen"] = ctx;  // no NTK widening: the base below is the one to use
    j["embed_layernorm"] = src.find_tensor("token_embd_norm.weight") != nullptr;
    j["apply_residual_connection_post_layernorm"] = false;
    if (base != 10000.0) {
      j["rope_theta"] = shortest(base);
      notes.push_back("TeleChat2's own Python code uses RoPE base 10000 and ignores rope_theta; loom reads it");
    }
    if (tied) notes.push_back("TeleChat2's own Python code expects an lm_head; this model ties it to the embedding");
  } else {
    if (a == "llama") {
      LOOM_CHECK(n_rot == D, "[model] {}: RoPE on {} of {} head dims has no Hugging Face Llama form", src.path(), n_rot,
                 D);
      if (n_expert > 0)
        cls("MixtralForCausalLM", "mixtral");
      else
        cls("LlamaForCausalLM", "llama");
      j["attention_bias"] = qkv_bias;
    } else if (a == "qwen2") {
      cls("Qwen2ForCausalLM", "qwen2");
      j["use_sliding_window"] = false;
    } else if (a == "qwen2moe") {
      cls("Qwen2MoeForCausalLM", "qwen2_moe");
      j["moe_intermediate_size"] = i("expert_feed_forward_length");
      if (auto* f = m.find(a + ".expert_shared_feed_forward_length")) j["shared_expert_intermediate_size"] = f->as_int();
      j["decoder_sparse_step"] = 1;
      j["norm_topk_prob"] = false;
    } else if (a == "deepseek") {
      cls("DeepseekForCausalLM", "deepseek");
      j["moe_intermediate_size"] = i("expert_feed_forward_length");
      j["n_shared_experts"] = m.get_int(a + ".expert_shared_count", 0);
      j["first_k_dense_replace"] = m.get_int(a + ".leading_dense_block_count", 0);
      j["moe_layer_freq"] = 1;
      j["scoring_func"] = "softmax";
      j["norm_topk_prob"] = false;
    } else if (a == "glm4") {
      cls("Glm4ForCausalLM", "glm4");
      j["head_dim"] = D;
      j["partial_rotary_factor"] = double(n_rot) / double(D);
      j["attention_bias"] = qkv_bias;
    } else {
      fail("[model] {}: writing architecture '{}' as a Hugging Face folder is not supported", src.path(), a);
    }
    j["hidden_size"] = C;
    if (auto* ff = m.find(a + ".feed_forward_length")) j["intermediate_size"] = ff->as_int();
    j["num_hidden_layers"] = i("block_count");
    j["num_attention_heads"] = H;
    j["num_key_value_heads"] = Hkv;
    if (D != C / H && a != "glm4") j["head_dim"] = D;
    j["max_position_embeddings"] = ctx;
    j["rms_norm_eps"] = eps;
    j["rope_theta"] = shortest(base);
    if (m.get_string(a + ".rope.scaling.type", "none") == "linear")
      j["rope_scaling"] = {{"type", "linear"}, {"factor", shortest(m.get_float(a + ".rope.scaling.factor"))}};
    if (n_expert > 0) {
      j[a == "llama" ? "num_local_experts" : a == "deepseek" ? "n_routed_experts" : "num_experts"] = n_expert;
      j["num_experts_per_tok"] = i("expert_used_count");
    }
    j["hidden_act"] = "silu";
  }
  j["vocab_size"] = V;
  j["tie_word_embeddings"] = tied;
  if (auto* b = tok.find("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = b->as_int();
  if (auto* e = tok.find("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = e->as_int();
  j["torch_dtype"] = torch_dtype(dtype);
  return j;
}

// A tensor to write: where its bytes are, under which name.
struct OutTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> dims;
  const void* data;
  size_t nbytes;
};

void write_shards(const std::vector<OutTensor>& tensors, size_t shard_bytes, const fs::path& dir) {
  std::vector<std::vector<const OutTensor*>> shards(1);
  size_t in_shard = 0;
  for (const auto& t : tensors) {
    if (shard_bytes > 0 && in_shard > 0 && in_shard + t.nbytes > shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(&t);
    in_shard += t.nbytes;
  }
  if (shards.size() == 1) {
    format::SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const OutTensor* t : shards[0]) w.add_tensor(t->name, t->dtype, t->dims, t->data);
    w.write((dir / "model.safetensors").string());
    return;
  }
  Json index;
  size_t total = 0;
  for (const auto& t : tensors) total += t.nbytes;
  index["metadata"] = {{"total_size", total}};
  Json map = Json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = fmt::format("model-{:05}-of-{:05}.safetensors", i + 1, shards.size());
    format::SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const OutTensor* t : shards[i]) {
      w.add_tensor(t->name, t->dtype, t->dims, t->data);
      map[t->name] = file;
    }
    w.write((dir / file).string());
  }
  index["weight_map"] = std::move(map);
  write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

}  // namespace

std::vector<std::string> write_hf(const ModelSource& source, const MetadataList& extra, const ExportOptions& o,
                                  const std::string& dir_path) {
  LOOM_CHECK(!o.type || *o.type == DType::F32 || *o.type == DType::F16 || *o.type == DType::BF16,
             "[model] a Hugging Face folder holds f32, f16 or bf16 weights, not {}", name(*o.type));
  const format::Metadata& m = source.metadata();
  const std::string arch = m.get_string("general.architecture");
  const std::string layout = layout_of(arch);
  LOOM_CHECK(!layout.empty(),
             "[model] {}: writing architecture '{}' as a Hugging Face folder is not supported; convert it to GGUF "
             "instead",
             source.path(), arch);
  format::Metadata tok(source.path(), m.entries());
  for (const auto& [k, v] : extra) tok.set(k, v);
  std::vector<std::string> notes;

  // Q/K rows: GGUF and llama2.c keep adjacent pairs for llama; Hugging Face keeps halves.
  const bool unpermute = hf_rope_is_permuted_in_gguf(arch) && m.get_string(arch + ".rope.style", "") != "neox";
  std::vector<std::vector<std::byte>> owned;
  std::vector<OutTensor> out;
  DType written = o.type.value_or(DType::F32);
  bool tied = true;
  for (const SourceTensor& t : source.tensors()) {
    LOOM_CHECK(t.dtype.has_value(), "[model] {}: tensor '{}' has type {}, which loom cannot convert", source.path(),
               t.name, t.type_name);
    if (t.name == "output.weight") tied = false;
    // Safetensors holds plain types: quantized weights are expanded to f32 unless --type says otherwise.
    DType to = o.type.value_or(traits(*t.dtype).is_quantized ? DType::F32 : *t.dtype);
    if (!o.type && !traits(*t.dtype).is_quantized) written = *t.dtype;
    const std::byte* data = t.data;
    const bool is_q = t.name.find(".attn_q.") != std::string::npos, is_k = t.name.find(".attn_k.") != std::string::npos;
    if (unpermute && (is_q || is_k)) {
      const int64_t heads = is_q ? m.get_int(arch + ".attention.head_count")
                                 : m.get_int(arch + ".attention.head_count_kv", m.get_int(arch + ".attention.head_count"));
      owned.emplace_back(t.nbytes);
      permute_qk_rows(t.data, owned.back().data(), heads, t.shape[0], t.nbytes / size_t(t.shape[0]),
                      /*to_gguf=*/false);
      data = owned.back().data();
    }
    size_t nbytes = t.nbytes;
    if (to != *t.dtype) {
      const int64_t cols = t.shape.rank > 0 ? t.shape[-1] : 1, rows = t.shape.numel() / std::max<int64_t>(cols, 1);
      std::vector<float> row(static_cast<size_t>(cols));
      std::vector<std::byte> conv(row_bytes(to, cols) * size_t(rows));
      const size_t in_rb = row_bytes(*t.dtype, cols), out_rb = row_bytes(to, cols);
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(*t.dtype, data + size_t(r) * in_rb, row.data(), cols);
        quant::quantize_row(to, row.data(), conv.data() + size_t(r) * out_rb, cols);
      }
      owned.push_back(std::move(conv));
      data = owned.back().data();
      nbytes = owned.back().size();
    }
    std::vector<int64_t> dims(t.shape.dims.begin(), t.shape.dims.begin() + t.shape.rank);
    if (t.name.find("_exps.") != std::string::npos) {
      // Stacked experts [E, ...] go out one tensor per expert (views of the same bytes).
      LOOM_CHECK(dims.size() == 3, "[model] {}: expert tensor '{}' has shape {}, expected [E, rows, cols]",
                 source.path(), t.name, t.shape.str());
      const size_t per = nbytes / size_t(dims[0]);
      for (int64_t e = 0; e < dims[0]; ++e) {
        const std::string hf = gguf_to_hf_name(layout, arch, t.name, e);
        LOOM_CHECK(!hf.empty(), "[model] {}: tensor '{}' has no Hugging Face name for {}", source.path(), t.name,
                   arch);
        out.push_back({hf, to, {dims[1], dims[2]}, data + size_t(e) * per, per});
      }
      continue;
    }
    const std::string hf = gguf_to_hf_name(layout, arch, t.name);
    LOOM_CHECK(!hf.empty(), "[model] {}: tensor '{}' has no Hugging Face name for architecture '{}'", source.path(),
               t.name, arch);
    out.push_back({hf, to, std::move(dims), data, nbytes});
  }

  const Json config = config_json(source, tok, written, tied, notes);
  const fs::path dir(dir_path);
  std::error_code ec;
  fs::create_directories(dir, ec);
  LOOM_CHECK(!ec && fs::is_directory(dir), "[model] {}: cannot create the folder: {}", dir_path, ec.message());
  write_shards(out, o.shard_bytes, dir);
  write_text(dir / "config.json", config.dump(2) + "\n");

  if (tok.get_string("tokenizer.ggml.model", "") == "llama" && tok.find("tokenizer.ggml.tokens")) {
    write_text(dir / "tokenizer.model", sentencepiece_model(tok));
    const auto& tokens = tok.at("tokenizer.ggml.tokens").strings();
    auto text = [&](const char* key) -> Json {
      const auto* v = tok.find(key);
      return v && v->as_int() >= 0 && size_t(v->as_int()) < tokens.size() ? Json(tokens[size_t(v->as_int())])
                                                                           : Json(nullptr);
    };
    Json tc;
    tc["tokenizer_class"] = "LlamaTokenizer";
    tc["add_bos_token"] = tok.get_bool("tokenizer.ggml.add_bos_token", true);
    tc["add_eos_token"] = tok.get_bool("tokenizer.ggml.add_eos_token", false);
    tc["bos_token"] = text("tokenizer.ggml.bos_token_id");
    tc["eos_token"] = text("tokenizer.ggml.eos_token_id");
    tc["unk_token"] = text("tokenizer.ggml.unknown_token_id");
    tc["model_max_length"] = m.get_int(arch + ".context_length", 2048);
    write_text(dir / "tokenizer_config.json", tc.dump(2) + "\n");
  } else if (tok.find("tokenizer.ggml.model")) {
    notes.push_back(fmt::format("the '{}' tokenizer was not written (loom writes SentencePiece vocabularies only); "
                                "copy the original tokenizer files into {}",
                                tok.get_string("tokenizer.ggml.model"), dir_path));
  } else {
    notes.push_back("the model has no tokenizer metadata, so no tokenizer files were written");
  }
  return notes;
}

}  // namespace loom::model
