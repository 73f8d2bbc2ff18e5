// The GLM goldens of ../shared/data/golden (from chatglm.cpp's tests: a
// 1-layer GLM block with random weights, run by the Hugging Face modeling
// code): loom builds the same model as a GGUF file, prefills ids [0, 1, 2],
// then decodes [3] and [4] through the KV cache, and its final hidden states
// (after the output RMSNorm) match the reference's to 1e-5 — on every backend.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "model/tiny_models.h"
#include "support/test_data.h"

namespace loom {
namespace {

constexpr int64_t kVocab = 5, kC = 32, kQkv = 48, kF = 48;

struct Golden {
  test::ref::Weights weights;  // GGUF names
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<float>> out;  // [n * 32] per step
};

// Reads the file layout of the data README: weights, then (ids, out) per step.
Golden read_golden(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.size(), 30548u) << path;
  size_t at = 0;
  auto floats = [&](size_t n) {
    std::vector<float> v(n);
    if (at + n * 4 <= bytes.size()) std::memcpy(v.data(), bytes.data() + at, n * 4);
    at += n * 4;
    return v;
  };
  Golden g;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    g.weights[name] = {shape, floats(size_t(n))};
  };
  add("token_embd.weight", {kVocab, kC});
  add("blk.0.attn_norm.weight", {kC});
  add("blk.0.attn_qkv.weight", {kQkv, kC});
  add("blk.0.attn_qkv.bias", {kQkv});
  add("blk.0.attn_output.weight", {kC, kC});
  add("blk.0.ffn_norm.weight", {kC});
  add("blk.0.ffn_up.weight", {2 * kF, kC});  // dense_h_to_4h: gate rows 0..47, up rows 48..95
  add("blk.0.ffn_down.weight", {kC, kF});
  add("output_norm.weight", {kC});
  for (size_t n : {3u, 1u, 1u}) {
    std::vector<int32_t> ids(n);
    if (at + n * 4 <= bytes.size()) std::memcpy(ids.data(), bytes.data() + at, n * 4);
    at += n * 4;
    g.ids.push_back(ids);
    g.out.push_back(floats(n * kC));
  }
  EXPECT_EQ(at, bytes.size());
  return g;
}

// hidden 32, 8 query heads in 2 multi-query groups of head_dim 4, rotary on
// the first 2 dims of each head (half), base 10000.
std::vector<std::pair<std::string, format::GgufValue>> glm_metadata(const std::string& arch, float eps) {
  using format::GgufValue;
  return {{"general.architecture", GgufValue::make_string(arch)},
          {arch + ".context_length", GgufValue::make_uint32(64)},
          {arch + ".embedding_length", GgufValue::make_uint32(kC)},
          {arch + ".block_count", GgufValue::make_uint32(1)},
          {arch + ".feed_forward_length", GgufValue::make_uint32(kF)},
          {arch + ".attention.head_count", GgufValue::make_uint32(8)},
          {arch + ".attention.head_count_kv", GgufValue::make_uint32(2)},
          {arch + ".rope.dimension_count", GgufValue::make_uint32(2)},
          {arch + ".rope.freq_base", GgufValue::make_float32(10000.0f)},
          {arch + ".attention.layer_norm_rms_epsilon", GgufValue::make_float32(eps)}};
}

struct Case {
  const char* file;
  const char* arch;  // the GGUF architecture the block is written under
  float eps;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.file << " as " << c.arch; }

class GlmGolden : public ::testing::TestWithParam<std::tuple<Case, std::string>> {};

TEST_P(GlmGolden, PrefillThenTwoDecodeStepsMatchTheReference) {
  const auto& [cs, backend_name] = GetParam();
  LOOM_DATA(data, std::string("golden/") + cs.file);
  const Golden g = read_golden(data);
  // One file per test instance: ctest runs the instances in parallel processes.
  const std::string path =
      test::scratch_dir("glm_golden") + "/" + cs.file + "." + cs.arch + "." + backend_name + ".gguf";
  test::write_gguf(glm_metadata(cs.arch, cs.eps), g.weights, path);

  auto be = backend::create(backend_name, {.threads = 2});
  auto src = model::ModelSource::open(path);
  auto m = model::load(*src, *be);
  model::KvCache kv(*be, m->config(), 2, 16, DType::F32);
  model::Runner runner(*m, *be, kv);
  model::Batch b;
  b.block_table = {0, 1};
  int32_t pos = 0;
  double worst = 0;
  for (size_t step = 0; step < g.ids.size(); ++step) {
    b.tokens = g.ids[step];
    b.positions.clear();
    b.seq_ids.clear();
    b.out_rows.clear();
    for (size_t i = 0; i < b.tokens.size(); ++i) {
      b.positions.push_back(pos++);
      b.seq_ids.push_back(0);
      b.out_rows.push_back(int32_t(i));
    }
    runner.forward(b);
    const auto hidden = runner.hidden();
    ASSERT_EQ(hidden.size(), g.out[step].size());
    for (size_t i = 0; i < hidden.size(); ++i) {
      worst = std::max(worst, std::fabs(double(hidden[i]) - double(g.out[step][i])));
      EXPECT_NEAR(hidden[i], g.out[step][i], 1e-5) << "step " << step << " element " << i;
    }
  }
  std::printf("[ %s as %s on %s ] max abs error %.3g\n", cs.file, cs.arch, backend_name.c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(
    All, GlmGolden,
    ::testing::Combine(::testing::Values(Case{"glm2_model.data", "chatglm", 1e-5f},
                                         Case{"glm3_model.data", "chatglm", 1e-5f},
                                         Case{"glm4_model.data", "chatglm", 1.5625e-7f},
                                         // GLM-4-9B's block has no post-norms; under "glm4" it runs as plain pre-norm.
                                         Case{"glm4_model.data", "glm4", 1.5625e-7f}),
                       ::testing::ValuesIn(backend::backend_names())),
    [](const auto& info) {
      std::string f = std::get<0>(info.param).file;
      return f.substr(0, 4) + "_" + std::get<0>(info.param).arch + "_" + std::get<1>(info.param);
    });

}  // namespace
}  // namespace loom
