// DeepSeek (DeepSeekMoE 16B, GGUF "deepseek"): Llama's attention, the first
// `leading_dense_block_count` layers with a dense FFN, and the rest with a
// mixture of fine-grained experts plus `expert_shared_count` shared experts
// (stored as one FFN of Fe * shared_count rows, no gate) that every token
// runs through. Routing: softmax, top K, weights not renormalised, scaled by
// expert_weights_scale.
//
// Legend: V vocab, C embedding, L layers, Hq/Hkv query/KV heads, D head dim,
// F dense feed-forward, E experts (K used per token), Fe expert feed-forward,
// Fs = Fe * shared experts, T tokens in the batch, R rows of logits.
//
//   x = embed(tokens)                                         (T, C)
//   per layer:
//     h = rmsnorm(x) ; q,k,v = h Wq, h Wk, h Wv                (T, Hq, D) (T, Hkv, D)
//     q,k = rope(q,k) ; cache <- k,v ; a = attn(q)             (T, Hq, D)
//     x = x + a Wo                                             (T, C)
//     h = rmsnorm(x)
//     dense layers: x = x + (silu(h Wg) * h Wu) Wd             (T, C)
//     MoE layers:   p = softmax(h Wr)                          (T, E)
//                   x = x + sum over the K largest p of scale * p * expert_e(h)
//                         + (silu(h Wsg) * h Wsu) Wsd          (T, C)
//   hidden = rmsnorm(x[out_rows]) ; logits = hidden Wout       (R, C) (R, V)
//
// RoPE: llama.cpp's converter permutes Wq/Wk as for Llama (adjacent pairs).
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/layers.h"
#include "loom/model/registry.h"

namespace loom::model {

namespace {

using graph::Value;

struct DeepseekLayer {
  Tensor attn_norm;  // (C)
  QkvWeights qkv;    // (Hq*D, C) (Hkv*D, C) (Hkv*D, C)
  Tensor wo;         // (C, Hq*D)
  Tensor ffn_norm;   // (C)
  FfnWeights ffn;    // (F, C) (F, C) (C, F), leading dense layers
  MoeWeights moe;    // (E, C) (E, Fe, C) (E, Fe, C) (E, C, Fe); shared (Fs, C) (Fs, C) (C, Fs)
};

class Deepseek final : public Model {
 public:
  Deepseek(const ModelSource& src, backend::Backend& be) {
    config_ = read_decoder_config(src, graph::RopeStyle::Adjacent);
    ModelConfig& c = config_;
    const format::Metadata& m = src.metadata();
    const int64_t n_dense = m.get_int("deepseek.leading_dense_block_count", 0);
    const int64_t n_shared = m.get_int("deepseek.expert_shared_count");
    const double scale = m.get_float("deepseek.expert_weights_scale", 1.0);
    LOOM_CHECK(c.n_expert > 0 && n_dense >= 0 && n_dense <= c.n_layer && n_shared >= 0 && (n_dense == 0 || c.n_ff > 0),
               "[model] {}: inconsistent deepseek MoE parameters (experts {}, leading dense layers {}, shared experts "
               "{}, dense ffn {})", src.path(), c.n_expert, n_dense, n_shared, c.n_ff);
    const graph::MoeFfn routing{int32_t(c.n_expert_used), /*normalize=*/false, float(scale > 0 ? scale : 1.0)};

    WeightBinder w(src, be);
    out_ = bind_output(src, w, c);
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      DeepseekLayer L;
      L.attn_norm = w.get(blk(l, "attn_norm.weight"), {C});
      L.qkv = bind_qkv(w, l, c);
      L.wo = w.get(blk(l, "attn_output.weight"), {C, Q});
      L.ffn_norm = w.get(blk(l, "ffn_norm.weight"), {C});
      if (l < n_dense) {
        L.ffn = bind_ffn(w, l, c.n_ff, c);
      } else {
        const int64_t Fe = per_layer_int(src, "deepseek.expert_feed_forward_length", l, 0);
        LOOM_CHECK(Fe > 0, "[model] {}: deepseek.expert_feed_forward_length must be positive", src.path());
        L.moe = bind_moe(src, w, l, c, Fe, Fe * n_shared, routing);
      }
      layers_.push_back(std::move(L));
    }
  }

  ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    LayerBuilder b(g, in, kv, config_, out_.rope_freqs);
    Value x = b.embed(out_.tok_embd);  // (T, C)
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const DeepseekLayer& L = layers_[size_t(l)];
      Value h = b.named(b.norm(x, L.attn_norm, blk(l, "attn_norm")), l, "attn_in");          // (T, C)
      Value a = b.attention(l, b.qkv(h, L.qkv, l));                                           // (T, Hq*D)
      x = b.named(graph::add(x, b.linear(a, L.wo, {}, blk(l, "attn_output"))), l, "attn_res");  // (T, C)
      h = b.named(b.norm(x, L.ffn_norm, blk(l, "ffn_norm")), l, "ffn_in");                   // (T, C)
      Value f = L.moe.router.defined() ? b.moe(h, L.moe, l) : b.ffn(h, L.ffn, l);             // (T, C)
      x = b.named(graph::add(x, f), l, "ffn_res");                                            // (T, C)
    }
    return b.output(x, out_);  // (R, V) (R, C)
  }

 private:
  OutputWeights out_;  // (V, C) (C) (V, C)
  std::vector<DeepseekLayer> layers_;
};

}  // namespace

void register_deepseek(Registry& r) {
  r.add("deepseek", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<Deepseek>(s, b); });
}

}  // namespace loom::model
