// TeleChat2 (China Telecom; no llama.cpp architecture, so loom's own GGUF
// names, docs/gguf-names.md): a Llama-like pre-norm decoder whose attention
// has a separate query projection and one fused key_value projection stored
// per KV head (D key rows, then D value rows, for each head in turn), a
// biased output projection ("dense"), and a SwiGLU whose down projection has
// a bias. RoPE rotates halves of the whole head (rotate_half in the reference
// code), base rope.freq_base.
//
// Models with embed_layernorm have an RMSNorm on the token embeddings
// (token_embd_norm); the released ones do not.
//
// Not modelled: the reference code's dynamic NTK base and log-scaled cos/sin
// beyond its training length (training_seqlen); within it, both reduce to
// plain RoPE (the source computes the fixed NTK factor into rope.freq_base).
//
// Legend: V vocab, C embedding, L layers, Hq/Hkv query/KV heads, D head dim,
// F feed-forward, T tokens in the batch, R rows of logits.
//
//   x = embed(tokens) (then rmsnorm, if the file has token_embd_norm)   (T, C)
//   per layer:
//     h = rmsnorm(x) ; q = h Wq                            (T, Hq, D)
//     kv = h Wkv                                           (T, Hkv, 2D)
//     k, v = kv[:, :, :D], kv[:, :, D:]                    (T, Hkv, D) each
//     q,k = rope_halves(q,k) ; cache <- k,v ; a = attn(q)  (T, Hq, D)
//     x = x + a Wo + bo                                    (T, C)
//     h = rmsnorm(x) ; x = x + (silu(h Wg) * h Wu) Wd + bd (T, C)
//   hidden = rmsnorm(x[out_rows]) ; logits = hidden Wout   (R, C) (R, V)
#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/model/layers.h"
#include "loom/model/registry.h"

namespace loom::model {

namespace {

using graph::Value;

struct TeleChat2Layer {
  Tensor attn_norm;  // (C)
  Tensor wq;         // (Hq*D, C)
  Tensor wkv;        // (Hkv*2*D, C): per KV head, D key rows then D value rows
  Tensor wo, bo;     // (C, Hq*D) (C)
  Tensor ffn_norm;   // (C)
  FfnWeights ffn;    // (F, C) (F, C) (C, F) + down bias (C)
};

class TeleChat2 final : public Model {
 public:
  TeleChat2(const ModelSource& src, backend::Backend& be) {
    config_ = read_decoder_config(src, graph::RopeStyle::Halves);
    ModelConfig& c = config_;
    LOOM_CHECK(c.n_ff > 0, "[model] {}: telechat2.feed_forward_length must be positive", src.path());
    WeightBinder w(src, be);
    out_ = bind_output(src, w, c);
    const int64_t C = c.n_embd, Q = c.n_head * c.head_dim, KV = c.n_head_kv * c.head_dim;
    embd_norm_ = w.optional("token_embd_norm.weight", {C});
    for (int64_t l = 0; l < c.n_layer; ++l) {
      TeleChat2Layer L;
      L.attn_norm = w.get(blk(l, "attn_norm.weight"), {C});
      L.wq = w.get(blk(l, "attn_q.weight"), {Q, C});
      L.wkv = w.get(blk(l, "attn_kv.weight"), {2 * KV, C});
      L.wo = w.get(blk(l, "attn_output.weight"), {C, Q});
      L.bo = w.get(blk(l, "attn_output.bias"), {C});
      L.ffn_norm = w.get(blk(l, "ffn_norm.weight"), {C});
      L.ffn = bind_ffn(w, l, c.n_ff, c);
      L.ffn.down_b = w.get(blk(l, "ffn_down.bias"), {C});
      layers_.push_back(std::move(L));
    }
  }

  ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const override {
    const ModelConfig& c = config_;
    LayerBuilder b(g, in, kv, c, out_.rope_freqs);
    const int64_t T = b.tokens(), D = c.head_dim;
    Value x = b.embed(out_.tok_embd);                                         // (T, C)
    if (embd_norm_.defined()) x = b.norm(x, embd_norm_, "token_embd_norm");  // (T, C)
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const TeleChat2Layer& L = layers_[size_t(l)];
      Value h = b.named(b.norm(x, L.attn_norm, blk(l, "attn_norm")), l, "attn_in");         // (T, C)
      Value q = graph::reshape(b.linear(h, L.wq, {}, blk(l, "attn_q")), {T, c.n_head, D});   // (T, Hq, D)
      Value kvp = graph::reshape(b.linear(h, L.wkv, {}, blk(l, "attn_kv")), {T, c.n_head_kv, 2 * D});  // (T, Hkv, 2D)
      Value a = b.attention(l, {q, graph::slice(kvp, 2, 0, D), graph::slice(kvp, 2, D, D)});  // (T, Hq*D)
      x = b.named(graph::add(x, b.linear(a, L.wo, L.bo, blk(l, "attn_output"))), l, "attn_res");  // (T, C)
      h = b.named(b.norm(x, L.ffn_norm, blk(l, "ffn_norm")), l, "ffn_in");                  // (T, C)
      x = b.named(graph::add(x, b.ffn(h, L.ffn, l)), l, "ffn_res");                          // (T, C)
    }
    return b.output(x, out_);  // (R, V) (R, C)
  }

 private:
  OutputWeights out_;  // (V, C) (C) (V, C)
  Tensor embd_norm_;    // (C), optional
  std::vector<TeleChat2Layer> layers_;
};

}  // namespace

void register_telechat2(Registry& r) {
  r.add("telechat2", [](const ModelSource& s, backend::Backend& b) { return std::make_unique<TeleChat2>(s, b); });
}

}  // namespace loom::model
