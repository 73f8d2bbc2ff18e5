// LoRA fine-tuning: the adapters' gradients against finite differences of a
// float64 forward written here; a fine-tune of stories260K (a llama2.c file,
// whose q/k rows are in the adjacent-pair order llama.cpp's GGUF uses) lowers
// the loss and leaves the base alone; its checkpoint is a PEFT adapter folder
// with the names and shapes PEFT gives; and the adapter, merged at load time
// by engine::Session (what `loom run --lora` uses), by the Hugging Face copy
// of the same model, or written merged into a GGUF, gives the training
// graph's logits.
//
// Legend: V vocab, C embedding, Hq/Hkv query/KV heads, D head dim, F
// feed-forward, r rank, B rows, T tokens per row.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "loom/engine/session.h"
#include "loom/model/export.h"
#include "loom/model/lora.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/train/checkpoint.h"
#include "loom/train/data.h"
#include "loom/train/lora.h"
#include "loom/train/trainer.h"
#include "model/hf_folder.h"
#include "train/grad_check.h"

namespace loom::train {
namespace {

namespace fs = std::filesystem;
using test::Vec;

// --- gradients -------------------------------------------------------------

constexpr int64_t V = 11, C = 12, Hq = 3, Hkv = 1, D = 4, F = 10, L = 2, R = 2, B = 2, T = 4;
constexpr double kAlpha = 3.0, kEps = 1e-5, kBase = 10000.0;
const std::vector<int32_t> kTokens = {1, 5, 10, 5, 0, 7, 3, 3};
const std::vector<int32_t> kTargets = {5, 10, 5, -1, 7, 3, 3, 9};  // one ignored row

LlamaTrainConfig tiny_config(graph::RopeStyle style) {
  return {.vocab_size = V, .dim = C, .n_layers = L, .n_heads = Hq, .n_kv_heads = Hkv, .ff_dim = F,
          .max_seq_len = 16, .norm_eps = float(kEps), .rope_base = float(kBase), .rope_style = style,
          .tied_output = true};
}

std::vector<std::vector<float>> random_values(const std::vector<ParamSpec>& specs, uint32_t seed, float lo,
                                              float hi) {
  std::vector<std::vector<float>> out;
  for (const ParamSpec& s : specs) {
    out.push_back(s.shape.size() == 1 ? test::random_floats(size_t(s.size()), seed++, 0.5f, 1.5f)
                                      : test::random_floats(size_t(s.size()), seed++, lo, hi));
  }
  return out;
}

Vec to_vec(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// The loss in float64 from the formulas: base weights in llama_param_specs
// order (embedding, per layer norm, q, k, v, o, norm, gate, up, down; final
// norm; tied), adapters on all seven linears of each layer (A, B per target).
double ref_loss(const std::vector<Vec>& w, const std::vector<Vec>& ad, bool halves) {
  const double s = kAlpha / double(R);
  const std::vector<int32_t> pos = {0, 1, 2, 3, 0, 1, 2, 3};
  const int64_t N = B * T;
  Vec x(size_t(N * C));
  for (int64_t t = 0; t < N; ++t)
    for (int64_t i = 0; i < C; ++i) x[size_t(t * C + i)] = w[0][size_t(kTokens[size_t(t)] * C + i)];
  // y = h W^T + s (h A^T) B^T
  auto lin = [&](const Vec& h, const Vec& W, const Vec& A, const Vec& Bm, int64_t in, int64_t out) {
    Vec y = test::ref_matmul(h, W, N, in, out);
    const Vec low = test::ref_matmul(test::ref_matmul(h, A, N, in, R), Bm, N, R, out);
    for (size_t i = 0; i < y.size(); ++i) y[i] += s * low[i];
    return y;
  };
  for (int64_t l = 0; l < L; ++l) {
    const size_t b = 1 + size_t(l) * 9, a = size_t(l) * 14;
    Vec h = test::ref_rms_norm(x, w[b], C, kEps);
    Vec q = lin(h, w[b + 1], ad[a + 0], ad[a + 1], C, Hq * D);
    Vec k = lin(h, w[b + 2], ad[a + 2], ad[a + 3], C, Hkv * D);
    const Vec v = lin(h, w[b + 3], ad[a + 4], ad[a + 5], C, Hkv * D);
    q = test::ref_rope(q, pos, Hq, D, D, kBase, 1.0, halves);
    k = test::ref_rope(k, pos, Hkv, D, D, kBase, 1.0, halves);
    const Vec att = test::ref_causal_attention(q, k, v, N, Hq, Hkv, D, 1.0 / std::sqrt(double(D)), T);
    const Vec o = lin(att, w[b + 4], ad[a + 6], ad[a + 7], Hq * D, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    h = test::ref_rms_norm(x, w[b + 5], C, kEps);
    const Vec gate = lin(h, w[b + 6], ad[a + 8], ad[a + 9], C, F), up = lin(h, w[b + 7], ad[a + 10], ad[a + 11], C, F);
    Vec act(gate.size());
    for (size_t i = 0; i < act.size(); ++i) act[i] = test::ref_silu(gate[i]) * up[i];
    const Vec d = lin(act, w[b + 8], ad[a + 12], ad[a + 13], F, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
  }
  const Vec logits = test::ref_matmul(test::ref_rms_norm(x, w[1 + size_t(L) * 9], C, kEps), w[0], N, C, V);
  return test::ref_cross_entropy(logits, kTargets, V);
}

class LoraGradient : public ::testing::TestWithParam<std::tuple<std::string, graph::RopeStyle>> {};

// d loss / d A and d B of every adapter (all seven targets, both layers; B
// non-zero so that A has a gradient) against central differences (h = 1e-6)
// of ref_loss, with the grad_check.h criterion: |got - want| <= 1e-4 (|want|
// + mean |want| of the tensor). The base weights are frozen inputs: only the
// 28 adapter tensors are parameters of the step.
TEST_P(LoraGradient, MatchesFiniteDifferencesOfAFloat64Forward) {
  const auto& [backend_name, style] = GetParam();
  const LlamaTrainConfig c = tiny_config(style);
  const LoraConfig lora{.rank = R, .alpha = float(kAlpha), .targets = model::lora_target_modules()};
  const std::vector<ParamSpec> specs = lora_param_specs(c, lora);
  ASSERT_EQ(specs.size(), size_t(L * 14));
  const auto base = random_values(llama_param_specs(c), 300, -0.5f, 0.5f);
  const auto adapters = random_values(specs, 500, -0.4f, 0.4f);

  auto be = backend::create(backend_name, {.threads = 2});
  LlamaTrainStep step(c, *be, B, T, {.grads = true, .lora = lora});
  step.set_frozen(base);
  const float loss = step.run(adapters, kTokens, kTargets);

  std::vector<Vec> w, ad;
  for (const auto& v : base) w.push_back(to_vec(v));
  for (const auto& v : adapters) ad.push_back(to_vec(v));
  const bool halves = style == graph::RopeStyle::Halves;
  EXPECT_NEAR(loss, ref_loss(w, ad, halves), 1e-5);

  const double h = 1e-6;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<float> got(adapters[i].size(), 0.0f);
    step.add_grad(i, got);
    Vec want(got.size());
    double mean = 0;
    for (size_t j = 0; j < got.size(); ++j) {
      const double keep = ad[i][j];
      ad[i][j] = keep + h;
      const double up = ref_loss(w, ad, halves);
      ad[i][j] = keep - h;
      const double down = ref_loss(w, ad, halves);
      ad[i][j] = keep;
      want[j] = (up - down) / (2 * h);
      mean += std::fabs(want[j]) / double(got.size());
    }
    double worst = 0;
    size_t at = 0;
    for (size_t j = 0; j < got.size(); ++j) {
      const double err = std::fabs(double(got[j]) - want[j]) / (1e-4 * (std::fabs(want[j]) + mean));
      if (err > worst) worst = err, at = j;
    }
    EXPECT_LE(worst, 1.0) << specs[i].name << "[" << at << "]: " << got[at] << ", finite differences " << want[at];
    EXPECT_GT(mean, 0.0) << specs[i].name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Backends, LoraGradient,
    ::testing::Combine(::testing::Values("reference", "cpu"),
                       ::testing::Values(graph::RopeStyle::Adjacent, graph::RopeStyle::Halves)),
    [](const auto& info) {
      return std::get<0>(info.param) + (std::get<1>(info.param) == graph::RopeStyle::Halves ? "_halves" : "_adjacent");
    });

// --- stories260K ------------------------------------------------------------

struct Stories {
  std::string bin, tok, dir, text;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::vector<std::string> shards;
};

void stories_setup(const std::string& name, Stories* s) {
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  LOOM_DATA(corpus, "corpora/en/tinyshakespeare_input.txt");
  s->bin = bin;
  s->tok = tok;
  s->dir = test::scratch_dir("train/lora-" + name);
  fs::remove_all(s->dir);
  fs::create_directories(s->dir);
  s->text = s->dir + "/kilobyte.txt";
  test::write_file(s->text, test::read_all(corpus).substr(0, 1024));
  s->tokenizer = tokenizer::load(tok);
  s->shards = tokenize_corpus_to_shards(*s->tokenizer, std::vector<std::string>{s->text}, s->dir + "/data");
}

TrainOptions lora_options(const Stories& s, const std::string& out) {
  TrainOptions o;
  o.base_model = s.bin;
  o.lora = {.rank = 4, .alpha = 8, .targets = {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"}};
  o.seq_len = 64;
  o.batch = 4;
  o.steps = 40;
  o.lr = 1e-2f;
  o.min_lr = 1e-3f;
  o.warmup = 4;
  o.weight_decay = 0;
  o.seed = 5;
  o.threads = 2;
  o.out_dir = out;
  o.progress = nullptr;
  return o;
}

// Mean loss of the graph over every 64-token window of the text.
float text_loss(const BaseModel& base, const LoraConfig& lora, const std::vector<std::vector<float>>& adapters,
                const std::vector<int32_t>& ids) {
  auto be = backend::create("cpu", {.threads = 2});
  const int64_t Tw = 64, rows = int64_t(ids.size() - 1) / Tw;
  LlamaTrainStep step(base.config, *be, rows, Tw, {.grads = false, .lora = lora});
  step.set_frozen(base.weights);
  std::vector<int32_t> in(size_t(rows * Tw)), tg(size_t(rows * Tw));
  for (size_t i = 0; i < in.size(); ++i) in[i] = ids[i], tg[i] = ids[i + 1];
  return step.run(adapters, in, tg);
}

// 40 steps of rank-4 adapters on five linears lower the loss of the text
// clearly (measured: 4.22 -> 0.69 nats: the kilobyte is memorised); the base file and the weights
// read from it are the same before and after.
TEST(LoraFineTune, Stories260KLowersTheLossAndLeavesTheBaseAlone) {
  Stories s;
  ASSERT_NO_FATAL_FAILURE(stories_setup("finetune", &s));
  if (IsSkipped()) return;
  const std::string file_before = test::read_all(s.bin);
  const BaseModel before = load_base_model(s.bin);
  EXPECT_EQ(before.config.rope_style, graph::RopeStyle::Adjacent);  // llama2.c keeps Meta's (GGUF's) row order

  const TrainOptions o = lora_options(s, s.dir + "/run");
  const std::vector<int32_t> ids = s.tokenizer->encode(test::read_all(s.text), {.add_bos = true});
  const float loss0 = text_loss(before, o.lora, init_lora_params(before.config, o.lora, o.seed), ids);
  const TrainResult r = run_training(o, s.shards, *dist::local());
  EXPECT_EQ(r.steps_done, 40);
  const float loss1 = text_loss(before, o.lora, r.params, ids);
  std::printf("text loss %.4f -> %.4f after 40 LoRA steps\n", loss0, loss1);
  EXPECT_LT(loss1, loss0 - 0.5f);

  EXPECT_TRUE(test::read_all(s.bin) == file_before);
  const BaseModel after = load_base_model(s.bin);
  ASSERT_EQ(after.weights.size(), before.weights.size());
  for (size_t i = 0; i < after.weights.size(); ++i) EXPECT_EQ(after.weights[i], before.weights[i]) << i;
}

// The checkpoint is a PEFT adapter folder: adapter_config.json with PEFT's
// keys, and adapter_model.safetensors with exactly PEFT's names and shapes
// (written out here by hand: stories260K has C 64, 8 query and 4 KV heads of
// 8, F 172, 5 layers).
TEST(LoraFineTune, CheckpointIsAPeftAdapterFolder) {
  Stories s;
  ASSERT_NO_FATAL_FAILURE(stories_setup("peft", &s));
  if (IsSkipped()) return;
  TrainOptions o = lora_options(s, s.dir + "/run");
  o.steps = 2;
  o.lora.targets = {"q_proj", "v_proj", "gate_proj"};
  run_training(o, s.shards, *dist::local());
  const std::string ck = s.dir + "/run/step-000002";
  ASSERT_TRUE(fs::is_regular_file(ck + "/adapter_config.json"));
  const auto cfg = nlohmann::json::parse(test::read_all(ck + "/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["bias"], "none");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8);
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"q_proj", "v_proj", "gate_proj"}));
  EXPECT_EQ(cfg["base_model_name_or_path"], s.bin);

  std::map<std::string, std::vector<int64_t>> want;
  for (int l = 0; l < 5; ++l) {
    const std::string p = "base_model.model.model.layers." + std::to_string(l);
    want[p + ".self_attn.q_proj.lora_A.weight"] = {4, 64};
    want[p + ".self_attn.q_proj.lora_B.weight"] = {64, 4};
    want[p + ".self_attn.v_proj.lora_A.weight"] = {4, 64};
    want[p + ".self_attn.v_proj.lora_B.weight"] = {32, 4};
    want[p + ".mlp.gate_proj.lora_A.weight"] = {4, 64};
    want[p + ".mlp.gate_proj.lora_B.weight"] = {172, 4};
  }
  const auto f = format::SafetensorsFile::open(ck + "/adapter_model.safetensors");
  std::map<std::string, std::vector<int64_t>> got;
  for (const auto& t : f->tensors()) {
    got[t.name] = t.dims;
    EXPECT_EQ(t.dtype_name, "F32") << t.name;
  }
  EXPECT_EQ(got, want);
  EXPECT_TRUE(fs::is_regular_file(ck + "/optimizer.safetensors"));
  EXPECT_FALSE(fs::exists(ck + "/model.safetensors"));  // the base is not copied
}

// A run killed after its step-3 checkpoint (the on_step hook throws) and
// resumed ends with the adapters of an uninterrupted run, bit for bit.
TEST(LoraFineTune, ResumeIsBitExact) {
  Stories s;
  ASSERT_NO_FATAL_FAILURE(stories_setup("resume", &s));
  if (IsSkipped()) return;
  TrainOptions o = lora_options(s, s.dir + "/whole");
  o.steps = 6;
  o.save_every = 3;
  const TrainResult whole = run_training(o, s.shards, *dist::local());

  o.out_dir = s.dir + "/cut";
  o.on_step = [](int64_t step) {
    if (step == 4) throw std::runtime_error("killed");
  };
  EXPECT_THROW(run_training(o, s.shards, *dist::local()), std::runtime_error);
  o.on_step = {};
  o.resume = true;
  const TrainResult resumed = run_training(o, s.shards, *dist::local());
  EXPECT_EQ(resumed.steps_done, 6);
  EXPECT_EQ(resumed.last_loss, whole.last_loss);
  ASSERT_EQ(resumed.params.size(), whole.params.size());
  for (size_t i = 0; i < whole.params.size(); ++i) EXPECT_EQ(resumed.params[i], whole.params[i]) << i;
}

// Logits of `ids` fed one by one through engine::Session ([T, V]).
std::vector<float> session_logits(engine::SessionOptions so, const std::vector<int32_t>& ids) {
  so.threads = 2;
  engine::Session session(so);
  std::vector<float> out;
  for (int32_t id : ids) {
    const std::span<const float> l = session.feed(std::span(&id, 1));
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

// The training graph's logits equal the inference path's: for the base alone
// (the RoPE convention of the file), and with the trained adapter merged at
// load time into the llama2.c file, into its Hugging Face copy (q/k rows in
// the other order: B is converted), and written merged into a GGUF.
TEST(LoraFineTune, MergedAdapterGivesTheTrainingGraphLogits) {
  Stories s;
  ASSERT_NO_FATAL_FAILURE(stories_setup("logits", &s));
  if (IsSkipped()) return;
  TrainOptions o = lora_options(s, s.dir + "/run");
  o.steps = 10;
  o.lora.targets = model::lora_target_modules();
  const TrainResult r = run_training(o, s.shards, *dist::local());
  const std::string adapter = s.dir + "/run/step-000010";

  const BaseModel base = load_base_model(s.bin);
  const std::vector<int32_t> ids = s.tokenizer->encode("Once upon a time, there was a little dog.", {.add_bos = true});
  const int64_t Tn = int64_t(ids.size());
  auto be = backend::create("cpu", {.threads = 2});
  auto graph_logits = [&](const std::vector<std::vector<float>>& adapters) {
    LlamaTrainStep step(base.config, *be, 1, Tn, {.grads = false, .logits = true, .lora = o.lora});
    step.set_frozen(base.weights);
    step.run(adapters, ids, std::vector<int32_t>(ids.size(), -1));
    return step.logits();
  };
  const std::vector<float> plain = graph_logits(init_lora_params(base.config, o.lora, 1));  // B = 0
  const std::vector<float> tuned = graph_logits(r.params);

  const float base_diff = max_diff(session_logits({.model_path = s.bin, .tokenizer_path = s.tok}, ids), plain);
  const float lora_diff =
      max_diff(session_logits({.model_path = s.bin, .tokenizer_path = s.tok, .lora = {adapter}}, ids), tuned);
  const std::string hf = test::stories_hf(s.bin, s.tok, "lora-logits");
  const float hf_diff = max_diff(session_logits({.model_path = hf, .lora = {adapter}}, ids), tuned);
  const std::string merged = s.dir + "/merged.gguf";
  auto src = model::ModelSource::open(s.bin);
  src->merge_lora(model::LoraAdapter::open(adapter));
  model::write_gguf(*src, test::stories_tokenizer(s.tok), {}, merged);
  const float gguf_diff = max_diff(session_logits({.model_path = merged}, ids), tuned);
  const float moved = max_diff(plain, tuned);
  std::printf("max |logit diff|: base %.3g, --lora %.3g, HF + adapter %.3g, merged GGUF %.3g; adapter moved the "
              "logits by up to %.3g\n", base_diff, lora_diff, hf_diff, gguf_diff, moved);
  EXPECT_LT(base_diff, 1e-5f);
  EXPECT_LT(lora_diff, 1e-4f);
  EXPECT_LT(hf_diff, 1e-4f);
  EXPECT_LT(gguf_diff, 1e-4f);
  EXPECT_GT(moved, 0.1f);  // the comparison sees the adapter
}

// Adapters that do not fit the model fail with a message naming the problem.
TEST(LoraAdapter, MismatchesAreClearErrors) {
  Stories s;
  ASSERT_NO_FATAL_FAILURE(stories_setup("errors", &s));
  if (IsSkipped()) return;
  EXPECT_NE(test::error_of([&] { model::LoraAdapter::open(s.dir + "/none"); }).find("not a folder"),
            std::string::npos);
  const std::string dir = s.dir + "/bad";
  fs::create_directories(dir);
  test::write_file(dir + "/adapter_config.json", model::peft_adapter_config(2, 4, {"q_proj"}, "x").dump());
  EXPECT_NE(test::error_of([&] { model::LoraAdapter::open(dir); }).find("adapter_model.safetensors"),
            std::string::npos);
  auto write = [&](const std::string& name, std::vector<int64_t> a, std::vector<int64_t> b) {
    const std::vector<float> zeros(4096, 0.0f);
    format::SafetensorsWriter w;
    w.add_tensor(name + ".lora_A.weight", DType::F32, a, zeros.data());
    w.add_tensor(name + ".lora_B.weight", DType::F32, b, zeros.data());
    w.write(dir + "/adapter_model.safetensors");
  };
  auto src = model::ModelSource::open(s.bin);
  write("base_model.model.model.layers.9.self_attn.q_proj", {2, 64}, {64, 2});  // stories260K has 5 layers
  EXPECT_NE(test::error_of([&] { src->merge_lora(model::LoraAdapter::open(dir)); }).find("does not have"),
            std::string::npos);
  write("base_model.model.model.layers.0.self_attn.q_proj", {2, 48}, {64, 2});  // C is 64
  EXPECT_NE(test::error_of([&] { src->merge_lora(model::LoraAdapter::open(dir)); }).find("[64, 2] x [2, 48]"),
            std::string::npos);
  write("base_model.model.model.layers.0.self_attn.q_proj", {3, 64}, {64, 3});  // r is 2
  EXPECT_NE(test::error_of([&] { model::LoraAdapter::open(dir); }).find("but r is 2"), std::string::npos);
  write("base_model.model.lm_head", {2, 64}, {512, 2});
  EXPECT_NE(test::error_of([&] { model::LoraAdapter::open(dir); }).find("not a LoRA matrix loom knows"),
            std::string::npos);
}

}  // namespace
}  // namespace loom::train
