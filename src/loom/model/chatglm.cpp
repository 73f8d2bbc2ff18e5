// ChatGLM2 / ChatGLM3 and GLM-4-9B (GGUF "chatglm"): a pre-norm decoder with
// RMSNorm, a fused QKV projection with bias (Q rows, then K, then V) over
// multi-query groups (the KV heads), rotary embedding on the first
// rope.dimension_count dims of each head (half of it) in adjacent pairs, no
// bias on the output projection, and a SwiGLU whose gate and up projections
// are one fused matrix (gate rows first).
//
// Legend: V vocab, C embedding, L layers, Hq query heads, Hkv KV heads
// (multi-query groups), D head dim, F feed-forward, T tokens in the batch,
// R rows of logits.
//
//   x = embed(tokens)                                        (T, C)
//   per layer:
//     h = rmsnorm(x) ; qkv = h Wqkv + bqkv                   (T, (Hq+2Hkv)*D)
//     q,k,v = head ranges of qkv                             (T, Hq, D) (T, Hkv, D) (T, Hkv, D)
//     q,k = rope(first n_rot dims, adjacent pairs) ; cache <- k,v ; a = attn(q)   (T, Hq, D)
//     x = x + a Wo                                           (T, C)
//     h = rmsnorm(x) ; gu = h Wup                            (T, 2F)
//     x = x + (silu(gu[:, :F]) * gu[:, F:]) Wd               (T, C)
//   hidden = rmsnorm(x[out_rows]) ; logits = hidden Wout     (R, C) (R, V)
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/layers.h"
#include "loom/model/registry.h"

namespace loom::model {

namespace {

using graph::Value;

struct ChatGlmLayer {
  Tensor attn_norm;  // (C)
  QkvWeights qkv;    // fused ((Hq+2Hkv)*D, C) + ((Hq+2Hkv)*D), or separate q/k/v
  Tensor wo;         // (C, Hq*D)
  Tensor ffn_norm;   // (C)
  Tensor ffn_up;     // (2F, C): gate rows 0..F-1, up rows F..2F-1
  Tensor ffn_down;   // (C, F)
};

class ChatGlm final : public Model {
 public:
  ChatGlm(const ModelSource& src, backend::Backend& be) {
    config_ = read_decoder_config(src, graph::RopeStyle::Adjacent);
    ModelConfig& c = config_;
    LOOM_CHECK(c.n_ff > 0, "[model] {}: chatglm.feed_forward_length must be positive", src.path());
    WeightBinder w(src, be);
    out_ = bind_output(src, w, c);
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim, F = c.n_ff;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      ChatGlmLayer L;
      L.attn_norm = w.get(blk(l, "attn_norm.weight"), {C});
      L.qkv = bind_qkv(w, l, c);
      L.wo = w.get(blk(l, "attn_output.weight"), {C, Q});
      L.ffn_norm = w.get(blk(l, "ffn_norm.weight"), {C});
      L.ffn_up = w.get(blk(l, "ffn_up.weight"), {2 * F, C});
      L.ffn_down = w.get(blk(l, "ffn_down.weight"), {C, F});
      layers_.push_back(std::move(L));
    }
  }

  ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    LayerBuilder b(g, in, kv, config_, out_.rope_freqs);
    Value x = b.embed(out_.tok_embd);  // (T, C)
    for (int64_t l = 0; l < config_.n_layer; ++l) {
      const ChatGlmLayer& L = layers_[size_t(l)];
      Value h = b.named(b.norm(x, L.attn_norm, blk(l, "attn_norm")), l, "attn_in");          // (T, C)
      Value a = b.attention(l, b.qkv(h, L.qkv, l));                                           // (T, Hq*D)
      x = b.named(graph::add(x, b.linear(a, L.wo, {}, blk(l, "attn_output"))), l, "attn_res");  // (T, C)
      h = b.named(b.norm(x, L.ffn_norm, blk(l, "ffn_norm")), l, "ffn_in");                   // (T, C)
      x = b.named(graph::add(x, b.fused_ffn(h, L.ffn_up, L.ffn_down, l)), l, "ffn_res");      // (T, C)
    }
    return b.output(x, out_);  // (R, V) (R, C)
  }

 private:
  OutputWeights out_;  // (V, C) (C) (V, C)
  std::vector<ChatGlmLayer> layers_;
};

}  // namespace

void register_chatglm(Registry& r) {
  r.add("chatglm", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<ChatGlm>(s, b); });
}

}  // namespace loom::model
