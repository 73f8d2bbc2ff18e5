// Qwen2 / Qwen2.5 (GGUF "qwen2"): Llama's block with biases on the Q, K and V
// projections, RoPE on halves of each head (NeoX style, as the Hugging Face
// code and llama.cpp's unpermuted files have it), and an output projection
// that small models tie to the token embedding.
//
// Legend: V vocab, C embedding, L layers, Hq/Hkv query/KV heads, D head dim,
// F feed-forward, T tokens in the batch, R rows of logits.
//
//   x = embed(tokens)                                   (T, C)
//   per layer:
//     h = rmsnorm(x) ; q,k,v = h Wq + bq, h Wk + bk, h Wv + bv   (T, Hq, D) (T, Hkv, D)
//     q,k = rope_halves(q,k) ; cache <- k,v ; a = attn(q)        (T, Hq, D)
//     x = x + a Wo                                       (T, C)
//     h = rmsnorm(x) ; x = x + (silu(h Wg) * h Wu) Wd    (T, C)
//   hidden = rmsnorm(x[out_rows]) ; logits = hidden Wout (R, C) (R, V)
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/layers.h"
#include "loom/model/registry.h"

namespace loom::model {

namespace {

using graph::Value;

struct Qwen2Layer {
  Tensor attn_norm;  // (C)
  QkvWeights qkv;    // (Hq*D, C) (Hkv*D, C) (Hkv*D, C) + biases (Hq*D) (Hkv*D) (Hkv*D)
  Tensor wo;         // (C, Hq*D)
  Tensor ffn_norm;   // (C)
  FfnWeights ffn;    // (F, C) (F, C) (C, F)
};

class Qwen2 final : public Model {
 public:
  Qwen2(const ModelSource& src, backend::Backend& be) {
    config_ = read_decoder_config(src, graph::RopeStyle::Halves);
    ModelConfig& c = config_;
    LOOM_CHECK(c.n_ff > 0, "[model] {}: qwen2.feed_forward_length must be positive", src.path());
    WeightBinder w(src, be);
    out_ = bind_output(src, w, c);
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      Qwen2Layer L;
      L.attn_norm = w.get(blk(l, "attn_norm.weight"), {C});
      L.qkv = bind_qkv(w, l, c);
      L.wo = w.get(blk(l, "attn_output.weight"), {C, Q});
      L.ffn_norm = w.get(blk(l, "ffn_norm.weight"), {C});
      L.ffn = bind_ffn(w, l, c.n_ff, c);
      layers_.push_back(std::move(L));
    }
  }

  ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    LayerBuilder b(g, in, kv, config_, out_.rope_freqs);
    Value x = b.embed(out_.tok_embd);  // (T, C)
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const Qwen2Layer& L = layers_[size_t(l)];
      Value h = b.named(b.norm(x, L.attn_norm, blk(l, "attn_norm")), l, "attn_in");          // (T, C)
      Value a = b.attention(l, b.qkv(h, L.qkv, l));                                           // (T, Hq*D)
      x = b.named(graph::add(x, b.linear(a, L.wo, {}, blk(l, "attn_output"))), l, "attn_res");  // (T, C)
      h = b.named(b.norm(x, L.ffn_norm, blk(l, "ffn_norm")), l, "ffn_in");                   // (T, C)
      x = b.named(graph::add(x, b.ffn(h, L.ffn, l)), l, "ffn_res");                           // (T, C)
    }
    return b.output(x, out_);  // (R, V) (R, C)
  }

 private:
  OutputWeights out_;  // (V, C) (C) (V, C)
  std::vector<Qwen2Layer> layers_;
};

}  // namespace

void register_qwen2(Registry& r) {
  r.add("qwen2", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<Qwen2>(s, b); });
}

}  // namespace loom::model
