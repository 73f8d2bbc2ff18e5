// Building blocks shared by the architecture files: reading the common
// hyper-parameters, binding the usual tensors by their GGUF names (fused or
// separate QKV, dense or mixture-of-experts FFN), and adding their nodes to a
// forward graph. An architecture file composes them in its own order, with a
// shape comment on every tensor; nothing here touches tensor memory.
//
//   ModelConfig c = read_decoder_config(src, graph::RopeStyle::Halves);
//   QkvWeights qkv = bind_qkv(w, l, c);
//   LayerBuilder b(g, in, kv, c);
//   Qkv x = b.qkv(h, qkv, l);  Value a = b.attention(l, x);   // (T, Hq*D)
//
// Legend: V vocab, C embedding, Hq/Hkv query/KV heads, D head dim, F
// feed-forward, E experts, Fe expert feed-forward, Fs shared-expert
// feed-forward, T tokens in the batch, R rows of logits.
#pragma once

#include <string>

#include "loom/graph/graph.h"
#include "loom/graph/op.h"
#include "loom/model/model.h"
#include "loom/model/weights.h"

namespace loom::model {

// Hyper-parameters every decoder reads under "<arch>." (llama.cpp's keys):
// embedding_length, block_count, attention.head_count(_kv), key_length,
// feed_forward_length, context_length, layer_norm_rms_epsilon,
// rope.dimension_count / freq_base / scaling, expert_count / expert_used_count,
// and loom's rope.style ("norm": adjacent pairs, "neox": halves), whose
// default is the architecture's.
ModelConfig read_decoder_config(const ModelSource& src, graph::RopeStyle default_style);

// "blk.<layer>.<what>".
std::string blk(int64_t layer, const std::string& what);

// A key that llama.cpp allows to be one integer or one per layer.
int64_t per_layer_int(const ModelSource& src, const std::string& key, int64_t layer, int64_t fallback);

// Token embedding, final norm and output projection.
struct OutputWeights {
  Tensor tok_embd;     // (V, C)
  Tensor output_norm;  // (C)
  Tensor output;       // (V, C), the token embedding when the file has none (tied)
  Tensor rope_freqs;   // (n_rot/2) RoPE frequency factors (Llama 3.1 rope scaling), optional
};
// Binds them and sets c.n_vocab and c.tied_output.
OutputWeights bind_output(const ModelSource& src, const WeightBinder& w, ModelConfig& c);

// Attention projections. llama.cpp's files hold either a fused attn_qkv (Q
// rows, then K, then V) or separate attn_q/k/v; biases are optional.
struct QkvWeights {
  Tensor wqkv, bqkv;  // ((Hq+2Hkv)*D, C) ((Hq+2Hkv)*D), or undefined
  Tensor wq, wk, wv;  // (Hq*D, C) (Hkv*D, C) (Hkv*D, C), when not fused
  Tensor bq, bk, bv;  // (Hq*D) (Hkv*D) (Hkv*D), optional
};
QkvWeights bind_qkv(const WeightBinder& w, int64_t layer, const ModelConfig& c);

// A SwiGLU feed-forward: down(silu(gate x) * up x), optional biases.
struct FfnWeights {
  Tensor gate, up, down;        // (F, C) (F, C) (C, F)
  Tensor gate_b, up_b, down_b;  // (F) (F) (C), optional
};
FfnWeights bind_ffn(const WeightBinder& w, int64_t layer, int64_t n_ff, const ModelConfig& c);

// Mixture of experts: a router, expert FFNs, and optionally a shared expert
// that every token runs through (scaled by a sigmoid gate when the file has one).
struct MoeWeights {
  Tensor router;                                // ffn_gate_inp (E, C)
  Tensor gate_exps, up_exps, down_exps;         // (E, Fe, C) (E, Fe, C) (E, C, Fe)
  Tensor shared_gate, shared_up, shared_down;   // (Fs, C) (Fs, C) (C, Fs), optional
  Tensor shared_router;                         // ffn_gate_inp_shexp (1, C), optional
  graph::MoeFfn params;
};
// n_ff_exp: Fe; n_ff_shared: Fs, 0 when there is no shared expert.
MoeWeights bind_moe(const ModelSource& src, const WeightBinder& w, int64_t layer, const ModelConfig& c,
                    int64_t n_ff_exp, int64_t n_ff_shared, const graph::MoeFfn& params);

struct Qkv {
  graph::Value q;  // (T, Hq, D)
  graph::Value k;  // (T, Hkv, D)
  graph::Value v;  // (T, Hkv, D)
};

// Adds the common pieces of a decoder layer to one forward graph.
class LayerBuilder {
 public:
  // rope_freqs: the model's RoPE frequency factors (OutputWeights::rope_freqs), may be undefined.
  LayerBuilder(graph::Graph& g, const ForwardInputs& in, const KvCache& kv, const ModelConfig& c,
               const Tensor& rope_freqs = {})
      : g_(g), in_(in), kv_(kv), c_(c), rope_freqs_(rope_freqs) {}

  int64_t tokens() const { return in_.tokens.dim(0); }
  graph::Value weight(const Tensor& t, const std::string& name) { return g_.constant(t, name); }
  graph::Value named(graph::Value v, int64_t layer, const char* what);
  // x W^T (+ b).                                        (..., K) -> (..., N)
  graph::Value linear(graph::Value x, const Tensor& w, const Tensor& b, const std::string& name);
  // RMSNorm with the model's eps.
  graph::Value norm(graph::Value x, const Tensor& w, const std::string& name);
  // The token embeddings of the batch.                  (T, C)
  graph::Value embed(const Tensor& tok_embd);
  // Q, K, V of h (T, C), fused or separate; views of one matmul when fused.
  Qkv qkv(graph::Value h, const QkvWeights& w, int64_t layer);
  // RoPE on q and k, k/v into the cache, causal attention.   -> (T, Hq*D)
  graph::Value attention(int64_t layer, const Qkv& x);
  // down(silu(gate h) * up h).                          (T, C) -> (T, C)
  graph::Value ffn(graph::Value h, const FfnWeights& w, int64_t layer);
  // The same with gate and up fused in one (2F, C) matrix, gate rows first (GLM).
  graph::Value fused_ffn(graph::Value h, const Tensor& up_gate, const Tensor& down, int64_t layer);
  // Routed experts (+ the shared expert).               (T, C) -> (T, C)
  graph::Value moe(graph::Value h, const MoeWeights& w, int64_t layer);
  // Rows out_rows of x, the output norm, the output projection.
  ForwardOutputs output(graph::Value x, const OutputWeights& w);

 private:
  graph::Graph& g_;
  const ForwardInputs& in_;
  const KvCache& kv_;
  const ModelConfig& c_;
  Tensor rope_freqs_;
};

}  // namespace loom::model
