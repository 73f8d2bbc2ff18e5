// Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B; GGUF "qwen2moe"): Qwen2's attention
// (Q/K/V biases, RoPE on halves) and, in every layer, a mixture of experts
// plus one shared expert that every token runs through, scaled by a sigmoid
// gate. The selected experts' weights are not renormalised (norm_topk_prob
// is false for these models).
//
// Legend: V vocab, C embedding, L layers, Hq/Hkv query/KV heads, D head dim,
// E experts (K used per token), Fe expert feed-forward, Fs shared-expert
// feed-forward, T tokens in the batch, R rows of logits.
//
//   x = embed(tokens)                                         (T, C)
//   per layer:
//     h = rmsnorm(x) ; q,k,v = h Wq + bq, h Wk + bk, h Wv + bv (T, Hq, D) (T, Hkv, D)
//     q,k = rope_halves(q,k) ; cache <- k,v ; a = attn(q)      (T, Hq, D)
//     x = x + a Wo                                             (T, C)
//     h = rmsnorm(x) ; p = softmax(h Wr)                       (T, C) (T, E)
//     m = sum over the K largest p of p * expert_e(h)          (T, C)
//     s = sigmoid(h Ws^T) * (silu(h Wsg) * h Wsu) Wsd        (T, 1) * (T, C)
//     x = x + m + s                                            (T, C)
//   hidden = rmsnorm(x[out_rows]) ; logits = hidden Wout       (R, C) (R, V)
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/layers.h"
#include "loom/model/registry.h"

namespace loom::model {

namespace {

using graph::Value;

struct Qwen2MoeLayer {
  Tensor attn_norm;  // (C)
  QkvWeights qkv;    // (Hq*D, C) (Hkv*D, C) (Hkv*D, C) + biases
  Tensor wo;         // (C, Hq*D)
  Tensor ffn_norm;   // (C)
  MoeWeights moe;    // (E, C) (E, Fe, C) (E, Fe, C) (E, C, Fe); shared (Fs, C) (Fs, C) (C, Fs), gate (1, C)
};

class Qwen2Moe final : public Model {
 public:
  Qwen2Moe(const ModelSource& src, backend::Backend& be) {
    config_ = read_decoder_config(src, graph::RopeStyle::Halves);
    ModelConfig& c = config_;
    LOOM_CHECK(c.n_expert > 0, "[model] {}: qwen2moe.expert_count must be positive", src.path());
    const graph::MoeFfn routing{int32_t(c.n_expert_used), /*normalize=*/false, 1.0f};

    WeightBinder w(src, be);
    out_ = bind_output(src, w, c);
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const int64_t Fe = per_layer_int(src, "qwen2moe.expert_feed_forward_length", l, c.n_ff / c.n_expert_used);
      const int64_t Fs = src.metadata().get_int("qwen2moe.expert_shared_feed_forward_length", c.n_ff);
      LOOM_CHECK(Fe > 0 && Fs > 0, "[model] {}: expert feed-forward sizes {} and {} must be positive", src.path(), Fe,
                 Fs);
      Qwen2MoeLayer L;
      L.attn_norm = w.get(blk(l, "attn_norm.weight"), {C});
      L.qkv = bind_qkv(w, l, c);
      L.wo = w.get(blk(l, "attn_output.weight"), {C, Q});
      L.ffn_norm = w.get(blk(l, "ffn_norm.weight"), {C});
      L.moe = bind_moe(src, w, l, c, Fe, Fs, routing);
      layers_.push_back(std::move(L));
    }
  }

  ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    LayerBuilder b(g, in, kv, config_, out_.rope_freqs);
    Value x = b.embed(out_.tok_embd);  // (T, C)
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const Qwen2MoeLayer& L = layers_[size_t(l)];
      Value h = b.named(b.norm(x, L.attn_norm, blk(l, "attn_norm")), l, "attn_in");          // (T, C)
      Value a = b.attention(l, b.qkv(h, L.qkv, l));                                           // (T, Hq*D)
      x = b.named(graph::add(x, b.linear(a, L.wo, {}, blk(l, "attn_output"))), l, "attn_res");  // (T, C)
      h = b.named(b.norm(x, L.ffn_norm, blk(l, "ffn_norm")), l, "ffn_in");                   // (T, C)
      x = b.named(graph::add(x, b.moe(h, L.moe, l)), l, "ffn_res");                           // (T, C)
    }
    return b.output(x, out_);  // (R, V) (R, C)
  }

 private:
  OutputWeights out_;  // (V, C) (C) (V, C)
  std::vector<Qwen2MoeLayer> layers_;
};

}  // namespace

void register_qwen2moe(Registry& r) {
  r.add("qwen2moe", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<Qwen2Moe>(s, b); });
}

}  // namespace loom::model
