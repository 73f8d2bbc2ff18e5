// Llama (Llama 2/3, TinyLlama, Mistral-style dense models, llama2.c) and
// Mixtral-style mixtures of experts, which llama.cpp files also call "llama"
// (llama.expert_count > 0 and ffn_gate_inp / ffn_*_exps tensors).
//
// Legend: V vocab, C embedding, L layers, Hq/Hkv query/KV heads, D head dim,
// F feed-forward, E experts (K of them used per token), T tokens in the
// batch, R rows of logits.
//
//   x = embed(tokens)                                   (T, C)
//   per layer:
//     h = rmsnorm(x) ; q,k,v = h Wq, h Wk, h Wv         (T, Hq, D) (T, Hkv, D)
//     q,k = rope(q,k) ; cache <- k,v ; a = attn(q)      (T, Hq, D)
//     x = x + a Wo (+ bo)                               (T, C)
//     h = rmsnorm(x)
//     dense: x = x + (silu(h Wg) * h Wu) Wd             (T, C)
//     MoE:   p = softmax(h Wr)                          (T, E)
//            x = x + sum over the K largest p of p/sum(p) * expert(h)
//   hidden = rmsnorm(x[out_rows]) ; logits = hidden Wout (R, C) (R, V)
//
// RoPE: GGUF "llama" files store Wq/Wk permuted so that adjacent pairs
// rotate; sources that keep the Hugging Face order set llama.rope.style = "neox".
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/layers.h"
#include "loom/model/registry.h"

namespace loom::model {

namespace {

using graph::Value;

struct LlamaLayer {
  Tensor attn_norm;   // (C)
  QkvWeights qkv;     // (Hq*D, C) (Hkv*D, C) (Hkv*D, C), optional biases
  Tensor wo, bo;      // (C, Hq*D) (C), bias optional
  Tensor ffn_norm;    // (C)
  FfnWeights ffn;     // (F, C) (F, C) (C, F), dense layers
  MoeWeights moe;     // (E, C) (E, F, C) (E, F, C) (E, C, F), MoE layers
};

class Llama final : public Model {
 public:
  Llama(const ModelSource& src, backend::Backend& be) {
    config_ = read_decoder_config(src, graph::RopeStyle::Adjacent);
    ModelConfig& c = config_;
    const bool moe = c.n_expert > 0;
    LOOM_CHECK(c.n_ff > 0, "[model] {}: llama.feed_forward_length must be positive", src.path());
    const double weights_scale = src.metadata().get_float("llama.expert_weights_scale", 0.0);
    graph::MoeFfn routing{int32_t(c.n_expert_used), /*normalize=*/true, float(weights_scale > 0 ? weights_scale : 1.0)};

    WeightBinder w(src, be);
    out_ = bind_output(src, w, c);
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      LlamaLayer L;
      L.attn_norm = w.get(blk(l, "attn_norm.weight"), {C});
      L.qkv = bind_qkv(w, l, c);
      L.wo = w.get(blk(l, "attn_output.weight"), {C, Q});
      L.bo = w.optional(blk(l, "attn_output.bias"), {C});
      L.ffn_norm = w.get(blk(l, "ffn_norm.weight"), {C});
      if (moe)
        L.moe = bind_moe(src, w, l, c, c.n_ff, 0, routing);
      else
        L.ffn = bind_ffn(w, l, c.n_ff, c);
      layers_.push_back(std::move(L));
    }
  }

  ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    LayerBuilder b(g, in, kv, config_, out_.rope_freqs);
    Value x = b.embed(out_.tok_embd);  // (T, C)
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const LlamaLayer& L = layers_[size_t(l)];
      Value h = b.named(b.norm(x, L.attn_norm, blk(l, "attn_norm")), l, "attn_in");           // (T, C)
      Value a = b.attention(l, b.qkv(h, L.qkv, l));                                            // (T, Hq*D)
      x = b.named(graph::add(x, b.linear(a, L.wo, L.bo, blk(l, "attn_output"))), l, "attn_res");  // (T, C)
      h = b.named(b.norm(x, L.ffn_norm, blk(l, "ffn_norm")), l, "ffn_in");                    // (T, C)
      Value f = L.moe.router.defined() ? b.moe(h, L.moe, l) : b.ffn(h, L.ffn, l);              // (T, C)
      x = b.named(graph::add(x, f), l, "ffn_res");                                             // (T, C)
    }
    return b.output(x, out_);  // (R, V) (R, C)
  }

 private:
  OutputWeights out_;  // (V, C) (C) (V, C)
  std::vector<LlamaLayer> layers_;
};

}  // namespace

void register_llama(Registry& r) {
  r.add("llama", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<Llama>(s, b); });
}

}  // namespace loom::model
