// A Hugging Face folder as a model: stories260K exported by loom reproduces
// llama2.c's golden text (the export permutes Q/K to Hugging Face's halves
// order and loading presents them with llama.rope.style = "neox"), sharded
// folders give the same logits, experts are stacked, and every broken folder
// gives an error naming the file, the tensor and the expectation.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "hf_folder.h"
#include "loom/backend/backend.h"
#include "loom/model/model.h"

namespace loom {
namespace {

using test::error_of;
using test::TensorOut;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(HfStories, RunsFromAFolderWrittenByLoomAndMatchesLlama2c) {
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  LOOM_DATA(expected, "models/expected_stories260K_t0_n200.txt");
  const std::string dir = test::stories_hf(bin, tok, "golden");
  auto src = model::ModelSource::open(dir);
  EXPECT_EQ(src->kind(), model::ModelSource::Kind::HuggingFace);
  EXPECT_EQ(src->metadata().get_string("llama.rope.style"), "neox");
  EXPECT_EQ(src->metadata().get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(src->find_tensor("output.weight"), nullptr);  // tied, as in stories260K
  // Zero-copy: one storage, the mapped model.safetensors.
  ASSERT_EQ(src->storages().size(), 1u);
  EXPECT_TRUE(src->storages()[0].file_backed);
  const auto* q = src->find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->origin, "model.layers.0.self_attn.q_proj.weight in model.safetensors");
  EXPECT_EQ(test::greedy(dir).text, test::read_all(expected));
}

// Feeds a prompt and one more token; returns both logit rows.
std::vector<float> logits_of(const std::string& model) {
  engine::SessionOptions so;
  so.model_path = model;
  so.threads = 2;
  engine::Session s(so);
  const std::vector<int32_t> prompt = {1, 403, 261, 30, 77};
  const std::vector<int32_t> next = {99};
  auto a = s.feed(prompt);
  std::vector<float> out(a.begin(), a.end());
  auto b = s.feed(next);
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(HfStories, TwoShardsWithAnIndexGiveTheSameLogitsAsOneFile) {
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  const std::string single = test::stories_hf(bin, tok, "shards");
  const std::vector<float> want = logits_of(single);
  ASSERT_EQ(want.size(), 2u * 512u);

  // Split by hand: even tensors in one shard, odd ones in the other, with the index naming each.
  namespace fs = std::filesystem;
  const std::string sharded = test::scratch_dir("hf/shards") + "/sharded";
  fs::remove_all(sharded);
  fs::create_directories(sharded);
  for (const char* f : {"config.json", "tokenizer.model", "tokenizer_config.json"})
    fs::copy_file(single + "/" + f, sharded + "/" + f);
  auto whole = format::SafetensorsFile::open(single + "/model.safetensors");
  format::SafetensorsWriter w[2];
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  const char* names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  for (size_t i = 0; i < whole->tensors().size(); ++i) {
    const auto& t = whole->tensors()[i];
    w[i % 2].add_tensor_raw(t.name, t.dtype_name, t.dims, t.data, t.nbytes);
    index["weight_map"][t.name] = names[i % 2];
  }
  for (int i = 0; i < 2; ++i) w[i].write(sharded + "/" + names[i]);
  test::write_file(sharded + "/model.safetensors.index.json", index.dump());
  auto src = model::ModelSource::open(sharded);
  EXPECT_EQ(src->storages().size(), 2u);
  EXPECT_EQ(logits_of(sharded), want);

  // The exporter's own sharding reads back the same.
  const std::string exported = test::stories_hf(bin, tok, "shards-exported", {.shard_bytes = 300 * 1024});
  EXPECT_TRUE(fs::exists(exported + "/model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(exported + "/model-00002-of-00004.safetensors"));
  EXPECT_EQ(logits_of(exported), want);
}

class HfErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_DATA(bin, "models/stories260K.bin");
    LOOM_DATA(tok, "models/tok512.bin");
    good_ = test::stories_hf(bin, tok, std::string("errors-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    bad_ = good_ + "-bad";
  }
  std::string load_error(const std::string& dir) {
    return error_of([&] {
      auto src = model::ModelSource::open(dir);
      auto be = backend::create("cpu", {.threads = 1});
      model::load(*src, *be);
    });
  }
  std::string good_, bad_;
};

TEST_F(HfErrors, MissingTensorNamesTheFolderBothNamesAndTheShape) {
  test::rewrite_folder(good_, bad_, [](std::vector<TensorOut>& ts) {
    std::erase_if(ts, [](const TensorOut& t) { return t.name == "model.layers.2.mlp.up_proj.weight"; });
  });
  const std::string m = load_error(bad_);
  EXPECT_TRUE(has(m, bad_)) << m;
  EXPECT_TRUE(has(m, "missing tensor 'blk.2.ffn_up.weight'")) << m;
  EXPECT_TRUE(has(m, "[172, 64]")) << m;
  EXPECT_TRUE(has(m, "model.layers.2.mlp.up_proj.weight")) << m;
}

TEST_F(HfErrors, WrongShapeNamesTheTensorItsFileAndTheExpectation) {
  test::rewrite_folder(good_, bad_, [](std::vector<TensorOut>& ts) {
    for (auto& t : ts)
      if (t.name == "model.layers.1.mlp.down_proj.weight") t.dims = {172, 64};  // transposed
  });
  const std::string m = load_error(bad_);
  EXPECT_TRUE(has(m, bad_)) << m;
  EXPECT_TRUE(has(m, "'blk.1.ffn_down.weight' (model.layers.1.mlp.down_proj.weight in model.safetensors)")) << m;
  EXPECT_TRUE(has(m, "has shape [172, 64], expected [64, 172]")) << m;
}

TEST_F(HfErrors, TruncatedSafetensors) {
  test::rewrite_folder(good_, bad_, [](std::vector<TensorOut>&) {});
  const std::string file = bad_ + "/model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 100);
  const std::string m = load_error(bad_);
  EXPECT_TRUE(has(m, file)) << m;
  EXPECT_TRUE(has(m, "truncated")) << m;
  EXPECT_TRUE(has(m, "model.")) << m;  // the last tensor, which no longer fits
}

TEST_F(HfErrors, AHeaderThatClaimsOneTerabyte) {
  test::rewrite_folder(good_, bad_, [](std::vector<TensorOut>&) {});
  const std::string file = bad_ + "/model.safetensors";
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  const uint64_t tb = uint64_t(1) << 40;
  f.write(reinterpret_cast<const char*>(&tb), 8);
  f.close();
  const std::string m = load_error(bad_);
  EXPECT_TRUE(has(m, file)) << m;
  EXPECT_TRUE(has(m, "1099511627776")) << m;
}

TEST_F(HfErrors, UnknownArchitecture) {
  test::rewrite_folder(good_, bad_, [](std::vector<TensorOut>&) {});
  auto config = nlohmann::json::parse(test::read_all(bad_ + "/config.json"));
  config["architectures"] = {"FalconForCausalLM"};
  config["model_type"] = "falcon";
  test::write_file(bad_ + "/config.json", config.dump());
  const std::string m = load_error(bad_);
  EXPECT_TRUE(has(m, bad_ + "/config.json")) << m;
  EXPECT_TRUE(has(m, "unknown architecture 'FalconForCausalLM'")) << m;
}

TEST_F(HfErrors, UnknownTensorAndMissingConfig) {
  test::rewrite_folder(good_, bad_, [](std::vector<TensorOut>& ts) {
    ts.push_back({"model.layers.0.self_attn.q_norm.weight", "F32", {8}, std::string(32, '\0')});
  });
  std::string m = load_error(bad_);
  EXPECT_TRUE(has(m, "'model.layers.0.self_attn.q_norm.weight' in model.safetensors")) << m;
  std::filesystem::remove(bad_ + "/config.json");
  m = load_error(bad_);
  EXPECT_TRUE(has(m, bad_)) << m;
  EXPECT_TRUE(has(m, "config.json is missing")) << m;
}

TEST_F(HfErrors, IndexPromisesATensorItsShardDoesNotHold) {
  test::rewrite_folder(good_, bad_, [](std::vector<TensorOut>& ts) {
    std::erase_if(ts, [](const TensorOut& t) { return t.name == "model.norm.weight"; });
  });
  namespace fs = std::filesystem;
  fs::rename(bad_ + "/model.safetensors", bad_ + "/model-00001-of-00001.safetensors");
  nlohmann::json index = {{"weight_map", {{"model.norm.weight", "model-00001-of-00001.safetensors"},
                                          {"model.embed_tokens.weight", "model-00001-of-00001.safetensors"}}}};
  test::write_file(bad_ + "/model.safetensors.index.json", index.dump());
  std::string m = load_error(bad_);
  EXPECT_TRUE(has(m, "tensor 'model.norm.weight' is missing from shard model-00001-of-00001.safetensors")) << m;
  index["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors";
  test::write_file(bad_ + "/model.safetensors.index.json", index.dump());
  m = load_error(bad_);
  EXPECT_TRUE(has(m, "shard 'model-00002-of-00002.safetensors'")) << m;
  EXPECT_TRUE(has(m, "missing")) << m;
  index["weight_map"]["model.norm.weight"] = "../../etc/passwd";
  test::write_file(bad_ + "/model.safetensors.index.json", index.dump());
  m = load_error(bad_);
  EXPECT_TRUE(has(m, "not a file in the folder")) << m;
}

// A tiny Mixtral folder: one layer, 4 experts, spread over two shards.
struct TinyMixtral {
  std::string dir;
  std::vector<std::vector<float>> w1;  // per expert [F, C]
};
TinyMixtral write_tiny_mixtral(const std::string& name, bool drop_expert_2 = false) {
  const int64_t C = 32, F = 64, E = 4, V = 16, H = 4, KV = 2, D = 8;
  TinyMixtral m;
  m.dir = test::scratch_dir("hf/" + name) + "/mixtral";
  std::filesystem::remove_all(m.dir);
  std::filesystem::create_directories(m.dir);
  test::write_file(m.dir + "/config.json",
                   R"({"architectures":["MixtralForCausalLM"],"hidden_size":32,"intermediate_size":64,
      "num_attention_heads":4,"num_key_value_heads":2,"num_hidden_layers":1,"max_position_embeddings":64,
      "rms_norm_eps":1e-5,"rope_theta":10000.0,"vocab_size":16,"num_local_experts":4,"num_experts_per_tok":2,
      "tie_word_embeddings":true})");
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.2f);
  std::vector<std::vector<float>> keep;  // data stays alive until the writers run
  auto make = [&](size_t n) {
    keep.emplace_back(n);
    for (auto& x : keep.back()) x = nd(rng);
    return keep.back().data();
  };
  keep.reserve(64);
  format::SafetensorsWriter a, b;
  const std::string p = "model.layers.0.";
  a.add_tensor("model.embed_tokens.weight", DType::F32, {V, C}, make(V * C));
  a.add_tensor("model.norm.weight", DType::F32, {C}, make(C));
  a.add_tensor(p + "input_layernorm.weight", DType::F32, {C}, make(C));
  a.add_tensor(p + "post_attention_layernorm.weight", DType::F32, {C}, make(C));
  a.add_tensor(p + "self_attn.q_proj.weight", DType::F32, {H * D, C}, make(H * D * C));
  a.add_tensor(p + "self_attn.k_proj.weight", DType::F32, {KV * D, C}, make(KV * D * C));
  a.add_tensor(p + "self_attn.v_proj.weight", DType::F32, {KV * D, C}, make(KV * D * C));
  a.add_tensor(p + "self_attn.o_proj.weight", DType::F32, {C, H * D}, make(C * H * D));
  a.add_tensor(p + "block_sparse_moe.gate.weight", DType::F32, {E, C}, make(E * C));
  nlohmann::json index = {{"weight_map", nlohmann::json::object()}};
  for (int64_t e = 0; e < E; ++e) {
    format::SafetensorsWriter& w = e < 2 ? a : b;
    const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
    const float* w1 = make(F * C);
    m.w1.emplace_back(w1, w1 + F * C);
    if (!(drop_expert_2 && e == 2)) {
      w.add_tensor(x + "w1.weight", DType::F32, {F, C}, w1);
      index["weight_map"][x + "w1.weight"] = e < 2 ? "a.safetensors" : "b.safetensors";
    }
    w.add_tensor(x + "w3.weight", DType::F32, {F, C}, make(F * C));
    w.add_tensor(x + "w2.weight", DType::F32, {C, F}, make(C * F));
  }
  a.write(m.dir + "/a.safetensors");
  b.write(m.dir + "/b.safetensors");
  for (const char* t : {"model.embed_tokens.weight"}) index["weight_map"][t] = "a.safetensors";
  test::write_file(m.dir + "/model.safetensors.index.json", index.dump());
  return m;
}

TEST(HfExperts, PerExpertTensorsAreStackedInExpertOrder) {
  const TinyMixtral m = write_tiny_mixtral("experts");
  auto src = model::ModelSource::open(m.dir);
  EXPECT_EQ(src->metadata().get_string("general.architecture"), "llama");
  EXPECT_EQ(src->metadata().get_int("llama.expert_count"), 4);
  const auto* g = src->find_tensor("blk.0.ffn_gate_exps.weight");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->shape, (Shape{4, 64, 32}));
  EXPECT_FALSE(src->storages()[g->storage].file_backed);  // the one copy
  for (int e = 0; e < 4; ++e)
    EXPECT_EQ(std::memcmp(g->data + size_t(e) * 64 * 32 * 4, m.w1[size_t(e)].data(), 64 * 32 * 4), 0) << e;
  EXPECT_EQ(src->find_tensor("blk.0.ffn_down_exps.weight")->shape, (Shape{4, 32, 64}));
  EXPECT_EQ(src->find_tensor("blk.0.ffn_gate_inp.weight")->shape, (Shape{4, 32}));
  // Everything else stays in the mappings.
  EXPECT_TRUE(src->storages()[src->find_tensor("blk.0.attn_q.weight")->storage].file_backed);
}

TEST(HfExperts, AMissingExpertIsNamedByItsHuggingFaceName) {
  const TinyMixtral m = write_tiny_mixtral("experts-missing", /*drop_expert_2=*/true);
  const std::string err = error_of([&] { model::ModelSource::open(m.dir); });
  EXPECT_TRUE(has(err, "expert 2 of 'blk.0.ffn_gate_exps.weight' is missing")) << err;
  EXPECT_TRUE(has(err, "model.layers.0.block_sparse_moe.experts.2.w1.weight")) << err;
}

TEST(HfSource, DataOffItsAlignmentIsCopiedNotRejected) {
  // A BF16 [3] tensor first puts the F32 one that follows at byte 6 of the data.
  const std::string dir = test::scratch_dir("hf/misaligned") + "/m";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  test::write_file(dir + "/config.json", R"({"architectures":["Qwen2ForCausalLM"],"hidden_size":3,
    "intermediate_size":4,"num_attention_heads":1,"num_hidden_layers":1})");
  std::string header = R"({"model.norm.weight":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},)"
                       R"("model.embed_tokens.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[6,30]}})";
  header.append((8 - (header.size() % 8)) % 8, ' ');
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header;
  bytes += std::string("\x80\x3f\x00\x40\x40\x40", 6);  // bf16 1, 2, 3
  const float emb[6] = {1, 2, 3, 4, 5, 6};
  bytes.append(reinterpret_cast<const char*>(emb), sizeof emb);
  test::write_file(dir + "/model.safetensors", bytes);
  auto src = model::ModelSource::open(dir);
  const auto* t = src->find_tensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 4, 0u);
  EXPECT_EQ(std::memcmp(t->data, emb, sizeof emb), 0);
  // BF16 vectors become F32, as in llama.cpp's GGUF files.
  const auto* norm = src->find_tensor("output_norm.weight");
  EXPECT_EQ(*norm->dtype, DType::F32);
  float nv[3];
  std::memcpy(nv, norm->data, 12);
  EXPECT_EQ(nv[0], 1.0f);
  EXPECT_EQ(nv[1], 2.0f);
  EXPECT_EQ(nv[2], 3.0f);
}

}  // namespace
}  // namespace loom
