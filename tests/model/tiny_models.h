// Tiny random-weight models of every architecture loom runs, written as GGUF
// files (llama.cpp's keys and tensor names), and a harness that runs one
// through loom (prefill, then greedy decoding through the KV cache) and
// compares every step with the float64 reference of reference_models.h.
//
//   test::TinySpec s = test::tiny_spec("qwen2");
//   ref::Weights w = test::random_weights(s, 7);
//   test::write_tiny_gguf(s, w, path);
//   test::expect_matches_reference(path, "cpu", ref::Model(s.config, w), prompt, 32);
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "loom/backend/backend.h"
#include "loom/format/gguf.h"
#include "loom/model/model.h"
#include "loom/model/runner.h"
#include "model/reference_models.h"

namespace loom::test {

// A tiny model: the reference config plus what the file holds.
struct TinySpec {
  std::string name;  // test name, e.g. "llama_moe"
  ref::Config config;
  bool tied = false;       // no output.weight
  bool fused_qkv = false;  // attn_qkv instead of attn_q/k/v
  bool qkv_bias = false;
  bool post_norms = false;       // glm4
  bool embd_norm = false;        // telechat2's embed_layernorm
  int64_t n_ff_exp = 0;          // expert FFN size (MoE)
  int64_t n_ff_shared = 0;       // shared expert FFN size (0: none)
  bool shared_gate = false;      // qwen2moe's sigmoid gate on the shared expert
  int64_t n_shared_experts = 0;  // deepseek: shared FFN = n_ff_exp * this
};

// The tiny configurations under test: C = 64, head_dim >= 16, 2-3 layers.
inline TinySpec tiny_spec(const std::string& name) {
  TinySpec s;
  s.name = name;
  ref::Config& c = s.config;
  c.n_vocab = 160;
  c.n_embd = 64;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 16;
  c.n_ff = 96;
  c.n_rot = 16;
  if (name == "llama") {
    c.arch = "llama";
  } else if (name == "llama_moe") {  // Mixtral: top-2 of 4 experts, renormalised
    c.arch = "llama";
    c.n_ff = 64;
    c.n_expert = 4;
    c.n_expert_used = 2;
    s.n_ff_exp = 64;
    s.tied = true;
  } else if (name == "qwen2") {
    c.arch = "qwen2";
    c.rope_adjacent = false;
    c.rope_base = 1e6;
    c.eps = 1e-6;
    s.qkv_bias = true;
    s.tied = true;
  } else if (name == "qwen2moe") {  // top-2 of 6, not renormalised, gated shared expert
    c.arch = "qwen2moe";
    c.rope_adjacent = false;
    c.rope_base = 1e6;
    c.eps = 1e-6;
    c.n_expert = 6;
    c.n_expert_used = 2;
    c.moe_normalize = false;
    s.qkv_bias = true;
    s.n_ff_exp = 32;
    s.n_ff_shared = 48;
    s.shared_gate = true;
  } else if (name == "deepseek") {  // one dense layer, then top-2 of 6 + 2 shared experts, scaled
    c.arch = "deepseek";
    c.n_layer = 3;
    c.n_dense_lead = 1;
    c.n_expert = 6;
    c.n_expert_used = 2;
    c.moe_normalize = false;
    c.moe_scale = 1.5;
    s.n_ff_exp = 32;
    s.n_shared_experts = 2;
    s.n_ff_shared = 64;
  } else if (name == "chatglm") {  // multi-query (1 group), rotary on half of a 32-dim head
    c.arch = "chatglm";
    c.n_head = 2;
    c.n_head_kv = 1;
    c.head_dim = 32;
    c.n_rot = 16;
    s.fused_qkv = true;
    s.qkv_bias = true;
  } else if (name == "glm4") {  // separate Q/K/V with bias, sandwich norms, tied output
    c.arch = "glm4";
    c.n_rot = 8;
    s.qkv_bias = true;
    s.post_norms = true;
    s.tied = true;
  } else if (name == "telechat2") {
    c.arch = "telechat2";
    c.rope_adjacent = false;
  } else if (name == "telechat2_embd_norm") {  // embed_layernorm = true, tied output
    c.arch = "telechat2";
    c.rope_adjacent = false;
    s.embd_norm = true;
    s.tied = true;
  } else {
    ADD_FAILURE() << "unknown tiny model " << name;
  }
  return s;
}

// Uniform weights in [-a, a) with a = sqrt(3 / fan_in) (unit variance through
// a layer), norms in [0.8, 1.2), biases in [-0.1, 0.1), embeddings in [-1, 1).
inline ref::Weights random_weights(const TinySpec& s, uint32_t seed) {
  const ref::Config& c = s.config;
  std::mt19937 rng(seed);
  auto uniform = [&](double lo, double hi) { return float(lo + (hi - lo) * double(rng() >> 8) / 16777216.0); };
  ref::Weights w;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double lo, double hi) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    ref::HostWeight h{shape, std::vector<float>(size_t(n))};
    for (float& v : h.data) v = uniform(lo, hi);
    w[name] = std::move(h);
  };
  auto matrix = [&](const std::string& name, std::vector<int64_t> shape) {
    const double a = std::sqrt(3.0 / double(shape.back()));
    add(name, std::move(shape), -a, a);
  };
  auto norm = [&](const std::string& name, int64_t n) { add(name, {n}, 0.8, 1.2); };
  auto bias = [&](const std::string& name, int64_t n) { add(name, {n}, -0.1, 0.1); };
  const int64_t C = c.n_embd, Q = c.n_head * c.head_dim, KV = c.n_head_kv * c.head_dim, F = c.n_ff;
  add("token_embd.weight", {c.n_vocab, C}, -1, 1);
  norm("output_norm.weight", C);
  if (!s.tied) matrix("output.weight", {c.n_vocab, C});
  if (s.embd_norm) norm("token_embd_norm.weight", C);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight", C);
    norm(p + "ffn_norm.weight", C);
    if (c.arch == "telechat2") {
      matrix(p + "attn_q.weight", {Q, C});
      matrix(p + "attn_kv.weight", {2 * KV, C});
      bias(p + "attn_output.bias", C);
    } else if (s.fused_qkv) {
      matrix(p + "attn_qkv.weight", {Q + 2 * KV, C});
      if (s.qkv_bias) bias(p + "attn_qkv.bias", Q + 2 * KV);
    } else {
      matrix(p + "attn_q.weight", {Q, C});
      matrix(p + "attn_k.weight", {KV, C});
      matrix(p + "attn_v.weight", {KV, C});
      if (s.qkv_bias) {
        bias(p + "attn_q.bias", Q);
        bias(p + "attn_k.bias", KV);
        bias(p + "attn_v.bias", KV);
      }
    }
    matrix(p + "attn_output.weight", {C, Q});
    if (s.post_norms) {
      norm(p + "post_attention_norm.weight", C);
      norm(p + "post_ffw_norm.weight", C);
    }
    if (c.n_expert > 0 && l >= c.n_dense_lead) {
      const int64_t E = c.n_expert, Fe = s.n_ff_exp;
      matrix(p + "ffn_gate_inp.weight", {E, C});
      matrix(p + "ffn_gate_exps.weight", {E, Fe, C});
      matrix(p + "ffn_up_exps.weight", {E, Fe, C});
      matrix(p + "ffn_down_exps.weight", {E, C, Fe});
      if (s.n_ff_shared > 0) {
        matrix(p + "ffn_gate_shexp.weight", {s.n_ff_shared, C});
        matrix(p + "ffn_up_shexp.weight", {s.n_ff_shared, C});
        matrix(p + "ffn_down_shexp.weight", {C, s.n_ff_shared});
      }
      if (s.shared_gate) matrix(p + "ffn_gate_inp_shexp.weight", {1, C});  // llama.cpp keeps HF's [1, C]
    } else if (c.arch == "chatglm" || c.arch == "glm4") {
      matrix(p + "ffn_up.weight", {2 * F, C});
      matrix(p + "ffn_down.weight", {C, F});
    } else {
      matrix(p + "ffn_gate.weight", {F, C});
      matrix(p + "ffn_up.weight", {F, C});
      matrix(p + "ffn_down.weight", {C, F});
      if (c.arch == "telechat2") bias(p + "ffn_down.bias", C);
    }
  }
  return w;
}

// The llama.cpp metadata keys of a tiny model.
inline std::vector<std::pair<std::string, format::GgufValue>> tiny_metadata(const TinySpec& s) {
  using format::GgufValue;
  const ref::Config& c = s.config;
  const std::string a = c.arch;
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.architecture", GgufValue::make_string(a)},
      {"general.name", GgufValue::make_string("tiny-" + s.name)},
      {a + ".context_length", GgufValue::make_uint32(256)},
      {a + ".embedding_length", GgufValue::make_uint32(uint32_t(c.n_embd))},
      {a + ".block_count", GgufValue::make_uint32(uint32_t(c.n_layer))},
      {a + ".feed_forward_length", GgufValue::make_uint32(uint32_t(c.n_ff))},
      {a + ".attention.head_count", GgufValue::make_uint32(uint32_t(c.n_head))},
      {a + ".attention.head_count_kv", GgufValue::make_uint32(uint32_t(c.n_head_kv))},
      {a + ".attention.key_length", GgufValue::make_uint32(uint32_t(c.head_dim))},
      {a + ".attention.value_length", GgufValue::make_uint32(uint32_t(c.head_dim))},
      {a + ".rope.dimension_count", GgufValue::make_uint32(uint32_t(c.n_rot))},
      {a + ".rope.freq_base", GgufValue::make_float32(float(c.rope_base))},
      {a + ".attention.layer_norm_rms_epsilon", GgufValue::make_float32(float(c.eps))},
  };
  if (c.n_expert > 0) {
    kv.push_back({a + ".expert_count", GgufValue::make_uint32(uint32_t(c.n_expert))});
    kv.push_back({a + ".expert_used_count", GgufValue::make_uint32(uint32_t(c.n_expert_used))});
  }
  if (a == "qwen2moe") {
    kv.push_back({a + ".expert_feed_forward_length", GgufValue::make_uint32(uint32_t(s.n_ff_exp))});
    kv.push_back({a + ".expert_shared_feed_forward_length", GgufValue::make_uint32(uint32_t(s.n_ff_shared))});
  }
  if (a == "deepseek") {
    kv.push_back({a + ".leading_dense_block_count", GgufValue::make_uint32(uint32_t(c.n_dense_lead))});
    kv.push_back({a + ".expert_feed_forward_length", GgufValue::make_uint32(uint32_t(s.n_ff_exp))});
    kv.push_back({a + ".expert_shared_count", GgufValue::make_uint32(uint32_t(s.n_shared_experts))});
    kv.push_back({a + ".expert_weights_scale", GgufValue::make_float32(float(c.moe_scale))});
  }
  return kv;
}

// Writes weights (all F32) and metadata as GGUF; `skip` leaves a tensor out.
inline void write_gguf(const std::vector<std::pair<std::string, format::GgufValue>>& metadata, const ref::Weights& w,
                       const std::string& path, const std::string& skip = "") {
  format::GgufWriter out;
  for (const auto& [k, v] : metadata) out.set(k, v);
  for (const auto& [name, t] : w) {
    if (name == skip) continue;
    Shape shape;
    shape.rank = int(t.shape.size());
    for (size_t i = 0; i < t.shape.size(); ++i) shape[int(i)] = t.shape[i];
    out.add_tensor(name, DType::F32, shape, t.data.data());
  }
  out.write(path);
}

inline void write_tiny_gguf(const TinySpec& s, const ref::Weights& w, const std::string& path) {
  write_gguf(tiny_metadata(s), w, path);
}

// Worst errors seen in one comparison (for the test log).
struct Agreement {
  double hidden = 0, logits = 0;
  int tokens = 0;
};

// Loads `path` on `backend`, prefills `prompt` (hidden states and logits of
// every row), then decodes `n_greedy` tokens greedily one at a time through
// the KV cache; every step's logits, and the prefill's hidden states, must be
// within `tol` (relative to the vector's scale) of the reference, and the
// greedy tokens must be the reference's.
inline Agreement expect_matches_reference(const std::string& path, const std::string& backend_name,
                                          const ref::Model& reference, std::vector<int32_t> prompt, int n_greedy,
                                          double tol = 1e-4) {
  Agreement worst;
  auto be = backend::create(backend_name, {.threads = 2});
  auto src = model::ModelSource::open(path);
  auto m = model::load(*src, *be);
  const model::ModelConfig& c = m->config();
  const int bs = 16;
  const int64_t blocks = int64_t(prompt.size() + size_t(n_greedy) + bs) / bs;
  model::KvCache kv(*be, c, blocks, bs, DType::F32);
  model::Runner runner(*m, *be, kv);
  model::Batch b;
  b.n_seqs = 1;
  for (int64_t i = 0; i < blocks; ++i) b.block_table.push_back(int32_t(i));

  const int64_t T = int64_t(prompt.size()), V = c.n_vocab, C = c.n_embd;
  b.tokens = prompt;
  for (int32_t t = 0; t < int32_t(T); ++t) {
    b.positions.push_back(t);
    b.seq_ids.push_back(0);
    b.out_rows.push_back(t);
  }
  const auto out = runner.forward(b);
  const std::vector<float> logits(out.begin(), out.end());
  const auto hidden = runner.hidden();
  ref::Result r = reference.run(prompt);
  for (int64_t t = 0; t < T; ++t) {
    worst.hidden = std::max(worst.hidden, ref::relative_error(hidden.data() + t * C, r.hidden[size_t(t)]));
    worst.logits = std::max(worst.logits, ref::relative_error(logits.data() + t * V, r.logits[size_t(t)]));
  }
  EXPECT_LE(worst.hidden, tol) << "prefill hidden states";
  EXPECT_LE(worst.logits, tol) << "prefill logits";

  std::vector<int32_t> seq = prompt;
  std::vector<float> last(logits.end() - V, logits.end());
  for (int step = 0; step < n_greedy; ++step) {
    const int32_t mine = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    const int32_t theirs = ref::argmax(r.logits.back());
    EXPECT_EQ(mine, theirs) << "greedy token " << step;
    if (mine != theirs) break;
    ++worst.tokens;
    seq.push_back(mine);
    if (step + 1 == n_greedy) break;
    b.tokens = {mine};
    b.positions = {int32_t(seq.size() - 1)};
    b.seq_ids = {0};
    b.out_rows = {0};
    const auto o = runner.forward(b);
    last.assign(o.begin(), o.end());
    r = reference.run(seq);
    const double e = ref::relative_error(last.data(), r.logits.back());
    worst.logits = std::max(worst.logits, e);
    EXPECT_LE(e, tol) << "logits at decode step " << step;
    if (e > tol) break;
  }
  std::printf("[ %s on %s ] max relative error: hidden %.3g, logits %.3g; %d greedy tokens agree\n", path.c_str(),
              backend_name.c_str(), worst.hidden, worst.logits, worst.tokens);
  return worst;
}

}  // namespace loom::test
