// Llama (Llama 2/3, TinyLlama, Mistral-style dense models, llama2.c).
//
// Legend: V vocab, C embedding, L layers, Hq/Hkv query/KV heads, D head dim,
// F feed-forward, T tokens in the batch, R rows of logits.
//
//   x = embed(tokens)                                   (T, C)
//   per layer:
//     h = rmsnorm(x) ; q,k,v = h Wq, h Wk, h Wv         (T, Hq, D) (T, Hkv, D)
//     q,k = rope(q,k) ; cache <- k,v ; a = attn(q)      (T, Hq, D)
//     x = x + a Wo                                       (T, C)
//     h = rmsnorm(x) ; x = x + (silu(h Wg) * h Wu) Wd    (T, C)
//   logits = rmsnorm(x[out_rows]) Wout                  (R, V)
#include <cmath>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/registry.h"
#include "loom/model/weights.h"

namespace loom::model {

namespace {

using graph::Value;

struct LlamaLayer {
  Tensor attn_norm;                  // (C)
  Tensor wq, wk, wv, wo;             // (Hq*D, C) (Hkv*D, C) (Hkv*D, C) (C, Hq*D)
  Tensor bq, bk, bv;                 // optional biases (Hq*D) (Hkv*D) (Hkv*D)
  Tensor ffn_norm;                   // (C)
  Tensor w_gate, w_up, w_down;       // (F, C) (F, C) (C, F)
};

class Llama final : public Model {
 public:
  Llama(const ModelSource& src, backend::Backend& be) {
    const format::Metadata& m = src.metadata();
    const std::string a = m.get_string("general.architecture");
    ModelConfig& c = config_;
    c.arch = a;
    c.name = m.get_string("general.name", "");
    c.n_embd = m.get_int(a + ".embedding_length");
    c.n_layer = m.get_int(a + ".block_count");
    c.n_head = m.get_int(a + ".attention.head_count");
    c.n_head_kv = m.get_int(a + ".attention.head_count_kv", c.n_head);
    c.n_ff = m.get_int(a + ".feed_forward_length");
    c.n_ctx_train = m.get_int(a + ".context_length", 2048);
    LOOM_CHECK(c.n_embd > 0 && c.n_layer > 0 && c.n_head > 0 && c.n_head_kv > 0 && c.n_ff > 0 &&
                   c.n_head % c.n_head_kv == 0,
               "[model] {}: inconsistent llama hyper-parameters (embedding {}, layers {}, heads {}/{}, ffn {})",
               src.path(), c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_ff);
    c.head_dim = m.get_int(a + ".attention.key_length", c.n_embd / c.n_head);
    LOOM_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "[model] {}: head dimension {} must be even and positive",
               src.path(), c.head_dim);
    c.norm_eps = float(m.get_float(a + ".attention.layer_norm_rms_epsilon", 1e-5));
    c.rope.n_rot = int32_t(m.get_int(a + ".rope.dimension_count", c.head_dim));
    c.rope.base = float(m.get_float(a + ".rope.freq_base", 10000.0));
    c.rope.style = graph::RopeStyle::Adjacent;  // GGUF "llama" stores Q/K permuted for adjacent pairs
    if (m.get_string(a + ".rope.scaling.type", "none") == "linear")
      c.rope.freq_scale = float(1.0 / m.get_float(a + ".rope.scaling.factor", 1.0));
    LOOM_CHECK(c.rope.n_rot > 0 && c.rope.n_rot <= c.head_dim && c.rope.n_rot % 2 == 0,
               "[model] {}: rope dimension count {} must be even and at most the head dim {}", src.path(),
               c.rope.n_rot, c.head_dim);

    WeightBinder w(src, be);
    const SourceTensor* emb = src.find_tensor("token_embd.weight");
    if (!emb) fail("[model] {}: missing tensor 'token_embd.weight'", src.path());
    c.n_vocab = emb->shape.rank == 2 ? emb->shape[0] : 0;
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim, KV = c.n_head_kv * c.head_dim, F = c.n_ff;
    tok_embd_ = w.get("token_embd.weight", {c.n_vocab, C});
    output_norm_ = w.get("output_norm.weight", {C});
    output_ = w.optional("output.weight", {c.n_vocab, C});
    c.tied_output = !output_.defined();
    if (c.tied_output) output_ = tok_embd_;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      auto n = [l](const char* s) { return fmt::format("blk.{}.{}", l, s); };
      LlamaLayer L;
      L.attn_norm = w.get(n("attn_norm.weight"), {C});
      L.wq = w.get(n("attn_q.weight"), {Q, C});
      L.wk = w.get(n("attn_k.weight"), {KV, C});
      L.wv = w.get(n("attn_v.weight"), {KV, C});
      L.wo = w.get(n("attn_output.weight"), {C, Q});
      L.bq = w.optional(n("attn_q.bias"), {Q});
      L.bk = w.optional(n("attn_k.bias"), {KV});
      L.bv = w.optional(n("attn_v.bias"), {KV});
      L.ffn_norm = w.get(n("ffn_norm.weight"), {C});
      L.w_gate = w.get(n("ffn_gate.weight"), {F, C});
      L.w_up = w.get(n("ffn_up.weight"), {F, C});
      L.w_down = w.get(n("ffn_down.weight"), {C, F});
      layers_.push_back(std::move(L));
    }
  }

  Value forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    const ModelConfig& c = config_;
    const int64_t T = in.tokens.dim(0);
    auto named = [&](Value v, int64_t l, const char* what) { return g.named(v, fmt::format("blk.{}.{}", l, what)); };
    auto linear = [&](Value x, const Tensor& w, const Tensor& b, const std::string& name) {
      Value y = graph::matmul(x, g.constant(w, name + ".weight"));
      return b.defined() ? graph::add(y, g.constant(b, name + ".bias")) : y;
    };
    const graph::Attention attn_params{float(1.0 / std::sqrt(double(c.head_dim))), kv.block_size()};

    Value x = graph::get_rows(g.constant(tok_embd_, "token_embd.weight"), in.tokens);  // (T, C)
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const LlamaLayer& L = layers_[size_t(l)];
      const std::string p = fmt::format("blk.{}.", l);
      Value h = named(graph::rms_norm(x, g.constant(L.attn_norm, p + "attn_norm.weight"), c.norm_eps), l, "attn_in");
      Value q = graph::reshape(linear(h, L.wq, L.bq, p + "attn_q"), {T, c.n_head, c.head_dim});      // (T, Hq, D)
      Value k = graph::reshape(linear(h, L.wk, L.bk, p + "attn_k"), {T, c.n_head_kv, c.head_dim});   // (T, Hkv, D)
      Value v = graph::reshape(linear(h, L.wv, L.bv, p + "attn_v"), {T, c.n_head_kv, c.head_dim});   // (T, Hkv, D)
      q = named(graph::rope(q, in.positions, c.rope), l, "q_rope");
      k = named(graph::rope(k, in.positions, c.rope), l, "k_rope");
      Value kc = graph::kv_store(g.constant(kv.k(l), p + "k_cache"), k, in.slots);  // (S, Hkv, D)
      Value vc = graph::kv_store(g.constant(kv.v(l), p + "v_cache"), v, in.slots);
      Value a = graph::attention(q, kc, vc, in.positions, in.seq_ids, in.block_table, attn_params);  // (T, Hq, D)
      a = graph::reshape(named(a, l, "attn"), {T, c.n_head * c.head_dim});
      x = named(graph::add(x, graph::matmul(a, g.constant(L.wo, p + "attn_output.weight"))), l, "attn_res");
      h = named(graph::rms_norm(x, g.constant(L.ffn_norm, p + "ffn_norm.weight"), c.norm_eps), l, "ffn_in");
      Value gate = graph::matmul(h, g.constant(L.w_gate, p + "ffn_gate.weight"));  // (T, F)
      Value up = graph::matmul(h, g.constant(L.w_up, p + "ffn_up.weight"));        // (T, F)
      Value f = graph::matmul(graph::swiglu(gate, up), g.constant(L.w_down, p + "ffn_down.weight"));  // (T, C)
      x = named(graph::add(x, f), l, "ffn_res");
    }
    x = graph::get_rows(x, in.out_rows);                                                       // (R, C)
    x = graph::rms_norm(x, g.constant(output_norm_, "output_norm.weight"), c.norm_eps);
    return g.named(graph::matmul(x, g.constant(output_, "output.weight")), "logits");           // (R, V)
  }

 private:
  Tensor tok_embd_;     // (V, C)
  Tensor output_norm_;  // (C)
  Tensor output_;       // (V, C), the embedding when tied
  std::vector<LlamaLayer> layers_;
};

}  // namespace

void register_llama(Registry& r) {
  r.add("llama", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<Llama>(s, b); });
}

}  // namespace loom::model
