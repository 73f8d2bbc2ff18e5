#include "loom/model/layers.h"

#include <cmath>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/graph/ops.h"

namespace loom::model {

using graph::Value;

ModelConfig read_decoder_config(const ModelSource& src, graph::RopeStyle default_style) {
  const format::Metadata& m = src.metadata();
  const std::string a = m.get_string("general.architecture");
  ModelConfig c;
  c.arch = a;
  c.name = m.get_string("general.name", "");
  c.n_embd = m.get_int(a + ".embedding_length");
  c.n_layer = m.get_int(a + ".block_count");
  c.n_head = m.get_int(a + ".attention.head_count");
  c.n_head_kv = m.get_int(a + ".attention.head_count_kv", c.n_head);
  c.n_ff = m.get_int(a + ".feed_forward_length", 0);
  c.n_ctx_train = m.get_int(a + ".context_length", 2048);
  c.n_expert = m.get_int(a + ".expert_count", 0);
  c.n_expert_used = m.get_int(a + ".expert_used_count", 0);
  LOOM_CHECK(c.n_embd > 0 && c.n_layer > 0 && c.n_head > 0 && c.n_head_kv > 0 && c.n_ff >= 0 &&
                 c.n_head % c.n_head_kv == 0 && c.n_ctx_train > 0,
             "[model] {}: inconsistent {} hyper-parameters (embedding {}, layers {}, heads {}/{}, ffn {}, context "
             "{}); the query heads must be a multiple of the KV heads",
             src.path(), a, c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_ff, c.n_ctx_train);
  LOOM_CHECK(c.n_expert >= 0 && c.n_expert_used >= 0 && c.n_expert_used <= c.n_expert &&
                 (c.n_expert == 0 || c.n_expert_used > 0),
             "[model] {}: {}.expert_used_count = {} must be in 1..{}.expert_count = {}", src.path(), a,
             c.n_expert_used, a, c.n_expert);
  c.head_dim = m.get_int(a + ".attention.key_length", c.n_embd / c.n_head);
  LOOM_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "[model] {}: head dimension {} must be even and positive",
             src.path(), c.head_dim);
  const int64_t value_length = m.get_int(a + ".attention.value_length", c.head_dim);
  LOOM_CHECK(value_length == c.head_dim, "[model] {}: {}.attention.value_length {} differs from key_length {}; loom "
             "needs equal key and value head sizes", src.path(), a, value_length, c.head_dim);
  c.norm_eps = float(m.get_float(a + ".attention.layer_norm_rms_epsilon", 1e-5));
  LOOM_CHECK(c.norm_eps >= 0, "[model] {}: negative RMSNorm epsilon {}", src.path(), c.norm_eps);

  c.rope.n_rot = int32_t(m.get_int(a + ".rope.dimension_count", c.head_dim));
  c.rope.base = float(m.get_float(a + ".rope.freq_base", 10000.0));
  const std::string scaling = m.get_string(a + ".rope.scaling.type", "none");
  if (scaling == "linear") {
    c.rope.freq_scale = float(1.0 / m.get_float(a + ".rope.scaling.factor", 1.0));
  } else {
    LOOM_CHECK(scaling == "none", "[model] {}: rope scaling '{}' is not supported yet (loom knows none and linear)",
               src.path(), scaling);
  }
  const std::string style = m.get_string(a + ".rope.style", "");
  if (style.empty())
    c.rope.style = default_style;
  else if (style == "neox" || style == "halves")
    c.rope.style = graph::RopeStyle::Halves;
  else if (style == "norm" || style == "adjacent")
    c.rope.style = graph::RopeStyle::Adjacent;
  else
    fail("[model] {}: {}.rope.style is '{}'; expected 'norm' (adjacent pairs) or 'neox' (halves)", src.path(), a,
         style);
  LOOM_CHECK(c.rope.n_rot > 0 && c.rope.n_rot <= c.head_dim && c.rope.n_rot % 2 == 0,
             "[model] {}: rope dimension count {} must be even and at most the head dim {}", src.path(),
             c.rope.n_rot, c.head_dim);
  LOOM_CHECK(c.rope.base > 0 && c.rope.freq_scale > 0 && std::isfinite(c.rope.base),
             "[model] {}: rope base {} and frequency scale {} must be positive", src.path(), c.rope.base,
             c.rope.freq_scale);
  return c;
}

std::string blk(int64_t layer, const std::string& what) { return fmt::format("blk.{}.{}", layer, what); }

int64_t per_layer_int(const ModelSource& src, const std::string& key, int64_t layer, int64_t fallback) {
  const format::GgufValue* v = src.metadata().find(key);
  if (!v) return fallback;
  if (!v->is_array()) return src.metadata().get_int(key);
  const std::vector<int64_t> all = v->ints();
  LOOM_CHECK(layer < int64_t(all.size()), "[model] {}: {} has {} entries, fewer than the layers", src.path(), key,
             all.size());
  return all[size_t(layer)];
}

OutputWeights bind_output(const ModelSource& src, const WeightBinder& w, ModelConfig& c) {
  const SourceTensor* emb = src.find_tensor("token_embd.weight");
  if (!emb) fail("[model] {}: missing tensor 'token_embd.weight' (expected shape [vocab, {}])", src.path(), c.n_embd);
  LOOM_CHECK(emb->shape.rank == 2 && emb->shape[0] > 0, "[model] {}: tensor 'token_embd.weight' has shape {}, "
             "expected [vocab, {}]", src.path(), emb->shape.str(), c.n_embd);
  c.n_vocab = emb->shape[0];
  OutputWeights o;
  o.tok_embd = w.get("token_embd.weight", {c.n_vocab, c.n_embd});
  o.output_norm = w.get("output_norm.weight", {c.n_embd});
  o.output = w.optional("output.weight", {c.n_vocab, c.n_embd});
  c.tied_output = !o.output.defined();
  if (c.tied_output) o.output = o.tok_embd;
  o.rope_freqs = w.optional("rope_freqs.weight", {c.rope.n_rot / 2});
  return o;
}

QkvWeights bind_qkv(const WeightBinder& w, int64_t l, const ModelConfig& c) {
  const int64_t C = c.n_embd, Q = c.n_head * c.head_dim, KV = c.n_head_kv * c.head_dim;
  QkvWeights q;
  q.wqkv = w.optional(blk(l, "attn_qkv.weight"), {Q + 2 * KV, C});
  if (q.wqkv.defined()) {
    q.bqkv = w.optional(blk(l, "attn_qkv.bias"), {Q + 2 * KV});
    return q;
  }
  q.wq = w.get(blk(l, "attn_q.weight"), {Q, C});
  q.wk = w.get(blk(l, "attn_k.weight"), {KV, C});
  q.wv = w.get(blk(l, "attn_v.weight"), {KV, C});
  q.bq = w.optional(blk(l, "attn_q.bias"), {Q});
  q.bk = w.optional(blk(l, "attn_k.bias"), {KV});
  q.bv = w.optional(blk(l, "attn_v.bias"), {KV});
  return q;
}

FfnWeights bind_ffn(const WeightBinder& w, int64_t l, int64_t F, const ModelConfig& c) {
  const int64_t C = c.n_embd;
  FfnWeights f;
  f.gate = w.get(blk(l, "ffn_gate.weight"), {F, C});
  f.up = w.get(blk(l, "ffn_up.weight"), {F, C});
  f.down = w.get(blk(l, "ffn_down.weight"), {C, F});
  f.gate_b = w.optional(blk(l, "ffn_gate.bias"), {F});
  f.up_b = w.optional(blk(l, "ffn_up.bias"), {F});
  f.down_b = w.optional(blk(l, "ffn_down.bias"), {C});
  return f;
}

MoeWeights bind_moe(const ModelSource& src, const WeightBinder& w, int64_t l, const ModelConfig& c, int64_t Fe,
                    int64_t Fs, const graph::MoeFfn& params) {
  const int64_t C = c.n_embd, E = c.n_expert;
  MoeWeights m;
  m.router = w.get(blk(l, "ffn_gate_inp.weight"), {E, C});
  m.gate_exps = w.get(blk(l, "ffn_gate_exps.weight"), {E, Fe, C});
  m.up_exps = w.get(blk(l, "ffn_up_exps.weight"), {E, Fe, C});
  m.down_exps = w.get(blk(l, "ffn_down_exps.weight"), {E, C, Fe});
  if (Fs > 0) {
    m.shared_gate = w.get(blk(l, "ffn_gate_shexp.weight"), {Fs, C});
    m.shared_up = w.get(blk(l, "ffn_up_shexp.weight"), {Fs, C});
    m.shared_down = w.get(blk(l, "ffn_down_shexp.weight"), {C, Fs});
    // A one-row matrix (1, C) in llama.cpp's files and Hugging Face's; a vector (C) is the same data.
    const std::string gate = blk(l, "ffn_gate_inp_shexp.weight");
    const SourceTensor* t = src.find_tensor(gate);
    m.shared_router = w.optional(gate, t && t->shape.rank == 1 ? Shape{C} : Shape{1, C});
    if (m.shared_router.defined() && m.shared_router.shape().rank == 1)
      m.shared_router = Tensor(m.shared_router.buffer(), m.shared_router.offset(), m.shared_router.dtype(), {1, C});
  }
  m.params = params;
  return m;
}

Value LayerBuilder::named(Value v, int64_t layer, const char* what) { return g_.named(v, blk(layer, what)); }

Value LayerBuilder::linear(Value x, const Tensor& w, const Tensor& b, const std::string& name) {
  Value y = graph::matmul(x, g_.constant(w, name + ".weight"));
  return b.defined() ? graph::add(y, g_.constant(b, name + ".bias")) : y;
}

Value LayerBuilder::norm(Value x, const Tensor& w, const std::string& name) {
  return graph::rms_norm(x, g_.constant(w, name + ".weight"), c_.norm_eps);
}

Value LayerBuilder::embed(const Tensor& tok_embd) {
  return graph::get_rows(g_.constant(tok_embd, "token_embd.weight"), in_.tokens);
}

Qkv LayerBuilder::qkv(Value h, const QkvWeights& w, int64_t l) {
  const int64_t T = tokens(), Hq = c_.n_head, Hkv = c_.n_head_kv, D = c_.head_dim;
  if (w.wqkv.defined()) {
    // One matmul; Q, K and V are head ranges of it (views, no copy).
    Value qkv = linear(h, w.wqkv, w.bqkv, blk(l, "attn_qkv"));             // (T, (Hq+2Hkv)*D)
    qkv = graph::reshape(qkv, {T, Hq + 2 * Hkv, D});                       // (T, Hq+2Hkv, D)
    return {graph::slice(qkv, 1, 0, Hq), graph::slice(qkv, 1, Hq, Hkv), graph::slice(qkv, 1, Hq + Hkv, Hkv)};
  }
  return {graph::reshape(linear(h, w.wq, w.bq, blk(l, "attn_q")), {T, Hq, D}),     // (T, Hq, D)
          graph::reshape(linear(h, w.wk, w.bk, blk(l, "attn_k")), {T, Hkv, D}),    // (T, Hkv, D)
          graph::reshape(linear(h, w.wv, w.bv, blk(l, "attn_v")), {T, Hkv, D})};   // (T, Hkv, D)
}

Value LayerBuilder::attention(int64_t l, const Qkv& x) {
  const graph::Attention params{float(1.0 / std::sqrt(double(c_.head_dim))), kv_.block_size()};
  const Value factors = rope_freqs_.defined() ? g_.constant(rope_freqs_, "rope_freqs.weight") : Value();
  Value q = named(graph::rope(x.q, in_.positions, c_.rope, factors), l, "q_rope");  // (T, Hq, D)
  Value k = named(graph::rope(x.k, in_.positions, c_.rope, factors), l, "k_rope");  // (T, Hkv, D)
  Value kc = graph::kv_store(g_.constant(kv_.k(l), blk(l, "k_cache")), k, in_.slots);  // (S, Hkv, D)
  Value vc = graph::kv_store(g_.constant(kv_.v(l), blk(l, "v_cache")), x.v, in_.slots);
  Value a = graph::attention(q, kc, vc, in_.positions, in_.seq_ids, in_.block_table, params);  // (T, Hq, D)
  return graph::reshape(named(a, l, "attn"), {tokens(), c_.n_head * c_.head_dim});          // (T, Hq*D)
}

Value LayerBuilder::ffn(Value h, const FfnWeights& w, int64_t l) {
  Value gate = linear(h, w.gate, w.gate_b, blk(l, "ffn_gate"));  // (T, F)
  Value up = linear(h, w.up, w.up_b, blk(l, "ffn_up"));          // (T, F)
  return linear(graph::swiglu(gate, up), w.down, w.down_b, blk(l, "ffn_down"));  // (T, C)
}

Value LayerBuilder::fused_ffn(Value h, const Tensor& up_gate, const Tensor& down, int64_t l) {
  const int64_t F = up_gate.shape()[0] / 2;
  Value gu = graph::matmul(h, g_.constant(up_gate, blk(l, "ffn_up.weight")));  // (T, 2F): gate, then up
  Value act = graph::swiglu(graph::slice(gu, 1, 0, F), graph::slice(gu, 1, F, F));  // (T, F)
  return graph::matmul(act, g_.constant(down, blk(l, "ffn_down.weight")));        // (T, C)
}

Value LayerBuilder::moe(Value h, const MoeWeights& w, int64_t l) {
  Value probs = graph::softmax(linear(h, w.router, {}, blk(l, "ffn_gate_inp")));  // (T, E)
  Value y = graph::moe_ffn(h, named(probs, l, "moe_probs"), g_.constant(w.gate_exps, blk(l, "ffn_gate_exps.weight")),
                           g_.constant(w.up_exps, blk(l, "ffn_up_exps.weight")),
                           g_.constant(w.down_exps, blk(l, "ffn_down_exps.weight")), w.params);  // (T, C)
  if (!w.shared_gate.defined()) return named(y, l, "moe_out");
  Value gate = linear(h, w.shared_gate, {}, blk(l, "ffn_gate_shexp"));  // (T, Fs)
  Value up = linear(h, w.shared_up, {}, blk(l, "ffn_up_shexp"));        // (T, Fs)
  Value s = linear(graph::swiglu(gate, up), w.shared_down, {}, blk(l, "ffn_down_shexp"));  // (T, C)
  if (w.shared_router.defined()) {
    Value router = g_.constant(w.shared_router, blk(l, "ffn_gate_inp_shexp.weight"));  // (1, C)
    s = graph::scale_rows(s, graph::sigmoid(graph::matmul(h, router)));                  // (T, C) * (T, 1)
  }
  return named(graph::add(y, s), l, "moe_out");
}

ForwardOutputs LayerBuilder::output(Value x, const OutputWeights& w) {
  x = graph::get_rows(x, in_.out_rows);                                                  // (R, C)
  Value hidden = g_.named(norm(x, w.output_norm, "output_norm"), "result_norm");          // (R, C)
  Value logits = g_.named(graph::matmul(hidden, g_.constant(w.output, "output.weight")), "logits");  // (R, V)
  return {logits, hidden};
}

}  // namespace loom::model
