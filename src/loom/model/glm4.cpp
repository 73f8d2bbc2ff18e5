// GLM-4-0414 family (GGUF "glm4"): ChatGLM's block (Q/K/V with bias, rotary
// on the first rope.dimension_count dims of each head in adjacent pairs,
// fused gate/up SwiGLU) with "sandwich" norms: an RMSNorm on the attention
// output (post_attention_norm) and on the FFN output (post_ffw_norm) before
// each residual add. llama.cpp's glm4 files always have them; a file without
// them (GLM-4-9B's block written under this name) runs as plain pre-norm.
//
// Legend: V vocab, C embedding, L layers, Hq/Hkv query/KV heads, D head dim,
// F feed-forward, T tokens in the batch, R rows of logits.
//
//   x = embed(tokens)                                        (T, C)
//   per layer:
//     h = rmsnorm(x) ; q,k,v = h Wq + bq, h Wk + bk, h Wv + bv (or fused)   (T, Hq, D) (T, Hkv, D)
//     q,k = rope(first n_rot dims, adjacent pairs) ; cache <- k,v ; a = attn(q)   (T, Hq, D)
//     x = x + rmsnorm_post_attn(a Wo)                        (T, C)
//     h = rmsnorm(x) ; gu = h Wup                            (T, 2F)
//     x = x + rmsnorm_post_ffw((silu(gu[:, :F]) * gu[:, F:]) Wd)   (T, C)
//   hidden = rmsnorm(x[out_rows]) ; logits = hidden Wout     (R, C) (R, V)
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/layers.h"
#include "loom/model/registry.h"

namespace loom::model {

namespace {

using graph::Value;

struct Glm4Layer {
  Tensor attn_norm;       // (C)
  QkvWeights qkv;         // (Hq*D, C) (Hkv*D, C) (Hkv*D, C) + biases, or fused
  Tensor wo;              // (C, Hq*D)
  Tensor post_attn_norm;  // (C), optional
  Tensor ffn_norm;        // (C)
  Tensor ffn_up;          // (2F, C): gate rows 0..F-1, up rows F..2F-1
  Tensor ffn_down;        // (C, F)
  Tensor post_ffw_norm;   // (C), optional (present exactly when post_attn_norm is)
};

class Glm4 final : public Model {
 public:
  Glm4(const ModelSource& src, backend::Backend& be) {
    config_ = read_decoder_config(src, graph::RopeStyle::Adjacent);
    ModelConfig& c = config_;
    LOOM_CHECK(c.n_ff > 0, "[model] {}: glm4.feed_forward_length must be positive", src.path());
    WeightBinder w(src, be);
    out_ = bind_output(src, w, c);
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim, F = c.n_ff;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      Glm4Layer L;
      L.attn_norm = w.get(blk(l, "attn_norm.weight"), {C});
      L.qkv = bind_qkv(w, l, c);
      L.wo = w.get(blk(l, "attn_output.weight"), {C, Q});
      L.post_attn_norm = w.optional(blk(l, "post_attention_norm.weight"), {C});
      L.ffn_norm = w.get(blk(l, "ffn_norm.weight"), {C});
      L.ffn_up = w.get(blk(l, "ffn_up.weight"), {2 * F, C});
      L.ffn_down = w.get(blk(l, "ffn_down.weight"), {C, F});
      // Both post-norms or neither: half a sandwich is a broken file, not a variant.
      L.post_ffw_norm = L.post_attn_norm.defined() ? w.get(blk(l, "post_ffw_norm.weight"), {C})
                                                   : w.optional(blk(l, "post_ffw_norm.weight"), {C});
      LOOM_CHECK(L.post_ffw_norm.defined() == L.post_attn_norm.defined(),
                 "[model] {}: layer {} has 'post_ffw_norm.weight' but no 'post_attention_norm.weight'; expected both "
                 "or neither", src.path(), l);
      layers_.push_back(std::move(L));
    }
  }

  ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    LayerBuilder b(g, in, kv, config_, out_.rope_freqs);
    Value x = b.embed(out_.tok_embd);  // (T, C)
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const Glm4Layer& L = layers_[size_t(l)];
      Value h = b.named(b.norm(x, L.attn_norm, blk(l, "attn_norm")), l, "attn_in");  // (T, C)
      Value a = b.attention(l, b.qkv(h, L.qkv, l));                                   // (T, Hq*D)
      a = b.linear(a, L.wo, {}, blk(l, "attn_output"));                               // (T, C)
      if (L.post_attn_norm.defined()) a = b.norm(a, L.post_attn_norm, blk(l, "post_attention_norm"));
      x = b.named(graph::add(x, a), l, "attn_res");                                   // (T, C)
      h = b.named(b.norm(x, L.ffn_norm, blk(l, "ffn_norm")), l, "ffn_in");           // (T, C)
      Value f = b.fused_ffn(h, L.ffn_up, L.ffn_down, l);                              // (T, C)
      if (L.post_ffw_norm.defined()) f = b.norm(f, L.post_ffw_norm, blk(l, "post_ffw_norm"));
      x = b.named(graph::add(x, f), l, "ffn_res");                                    // (T, C)
    }
    return b.output(x, out_);  // (R, V) (R, C)
  }

 private:
  OutputWeights out_;  // (V, C) (C) (V, C)
  std::vector<Glm4Layer> layers_;
};

}  // namespace

void register_glm4(Registry& r) {
  r.add("glm4", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<Glm4>(s, b); });
}

}  // namespace loom::model
