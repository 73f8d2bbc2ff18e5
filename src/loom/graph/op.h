// Op definitions: one parameter struct per op. A graph node holds one of
// them in the `Op` variant; backends implement a kernel per struct. Adding an
// op = a struct here + a builder in ops.h/ops.cpp (shape checks) + a kernel in
// each backend + a case in the conformance suite (docs/adding-an-op.md).
//
// Layout conventions (shapes outermost first):
//   activations   [T, C]       T tokens of a batch, C channels
//   heads         [T, H, D]    H heads of D dims
//   weights       [N, K]       y = x W^T (PyTorch / GGUF layout)
//   KV cache      [S, Hkv, D]  S slots = blocks * block_size
#pragma once

#include <cstdint>
#include <variant>

#include "loom/core/tensor.h"

namespace loom::graph {

// Leaves.
struct Input {};     // data written by the host before each run (token ids, positions, ...)
struct Constant {};  // an existing tensor (weights, the KV cache)

// A new view of input 0's memory: the node's shape and strides, at
// `offset` bytes from the start of input 0. No computation.
struct View {
  size_t offset = 0;
};

// out[t, :] = float(table[ids[t], :])            (table [V, C] any dtype, ids [T] i32) -> [T, C] f32
struct GetRows {};
// out = x W^T                                      (x [..., K] f32, w [N, K] any dtype) -> [..., N] f32
struct MatMul {};
// out = x / sqrt(mean(x^2) + eps) * w              (x [..., C] f32, w [C] f32, optional) -> like x
struct RmsNorm {
  float eps = 1e-5f;
};

enum class RopeStyle : uint8_t {
  Adjacent,  // rotates pairs (2i, 2i+1): llama2.c, GGUF "llama", ChatGLM/GLM
  Halves,    // rotates pairs (i, i + n_rot/2): Hugging Face / GPT-NeoX, Qwen2
};
// Rotary position embedding on the first n_rot dims of every head:
// pair i turns by pos * freq_scale * base^(-2i/n_rot) / factor[i], where the
// optional third input holds per-pair frequency factors (Llama 3.1's
// rope_freqs; 1 without it).  (x [T, H, D] f32, pos [T] i32, factor [n_rot/2] f32) -> like x
struct Rope {
  int32_t n_rot = 0;
  float base = 10000.0f;
  float freq_scale = 1.0f;
  RopeStyle style = RopeStyle::Adjacent;
};

// Writes the rows of src into the cache at slots[t]; the output is the cache
// itself (same memory), so attention that reads it runs after the write.
//                                                  (cache [S, H, D] f32/f16, src [T, H, D] f32, slots [T] i32)
struct KvStore {};

// Causal attention of each token over the cached keys/values of its sequence:
// token t (sequence seq[t], position pos[t]) attends to positions 0..pos[t],
// whose slots are block_table[seq[t], p / block_size] * block_size + p % block_size.
// Query head h reads KV head h / (Hq / Hkv) (grouped-query attention).
//   (q [T, Hq, D] f32, k [S, Hkv, D], v [S, Hkv, D], pos [T] i32, seq [T] i32,
//    block_table [NS, MB] i32) -> [T, Hq, D] f32
struct Attention {
  float scale = 1.0f;       // usually 1/sqrt(D)
  int32_t block_size = 16;  // KV slots per block
};

// out = silu(gate) * up                            (gate, up [..., C] f32) -> like gate
struct SwiGlu {};
// Elementwise with broadcasting of b over the leading dims of a (b's shape is
// a suffix of a's shape, e.g. a bias [C] added to [T, C]).
struct Add {};
struct Mul {};
// out = x * factor
struct Scale {
  float factor = 1.0f;
};
// Softmax over the last dimension.
struct Softmax {};
// out = 1 / (1 + exp(-x))                          (x [..., C] f32) -> like x
struct Sigmoid {};
// out[r, :] = x[r, :] * s[r]: one factor per row   (x [..., C] f32, s [..., 1] f32 with x's leading dims) -> like x
// (e.g. Qwen2-MoE's sigmoid gate on its shared expert).
struct ScaleRows {};

// Mixture-of-experts feed-forward: each token runs through the `n_used`
// experts of highest router probability, and only those experts' weights are
// read. For token t with probabilities p = probs[t, :]:
//   S = the n_used largest p[e] (ties: the lower expert index first)
//   w_e = p[e] * scale, or p[e] / sum_{j in S} p[j] * scale when normalize
//   out[t] = sum_{e in S} w_e * down[e] (silu(gate[e] x[t]) * (up[e] x[t]))
//   (x [T, C] f32, probs [T, E] f32, gate [E, F, C], up [E, F, C], down [E, C, F] any weight dtype) -> [T, C] f32
struct MoeFfn {
  int32_t n_used = 2;
  bool normalize = true;  // Mixtral renormalises the selected weights; Qwen2-MoE and DeepSeek do not
  float scale = 1.0f;     // DeepSeek's routed scaling factor
};

// --- Training: forward ops without a KV cache, and backward ops (builders in
// train_ops.h; the rules that use them in src/loom/train/backward.cpp). Each
// backward op takes what it needs of the forward op's inputs and dy, the
// gradient of the forward output, and returns the gradient of one input.

// out = value everywhere (a gradient seed)          () -> [shape] f32
struct Fill {
  float value = 0.0f;
};
// out[c, r] = x[r, c], the leading dims of x merged into r    (x [..., C] f32) -> [C, R] f32
struct Transpose {};
// Sum of x over the leading dims it has beyond the output shape, a suffix of
// x's shape (the gradient of a broadcast operand).  (x [..., S...] f32) -> [S...] f32
struct SumTo {};
// Causal self-attention over the batch as T / seq_len sequences of seq_len
// tokens (seq_len 0: one sequence of T): token t attends to the tokens j <= t
// of its own sequence; query head h reads KV head h / (Hq / Hkv).
//   (q [T, Hq, D], k [T, Hkv, D], v [T, Hkv, D] f32) -> [T, Hq, D] f32
struct CausalAttention {
  float scale = 1.0f;  // usually 1/sqrt(D)
  int32_t seq_len = 0;
};
// Mean cross-entropy of rows of logits against target ids; rows whose target
// is negative are ignored (padding, prompt tokens):
//   loss = -1/N sum_{r: y[r] >= 0} log softmax(logits[r])[y[r]], N = #counted rows (loss 0 if N = 0)
//   (logits [R, V] f32, targets [R] i32) -> [1] f32
struct CrossEntropy {};

// dx of rms_norm; with g = dy * w and inv = 1 / sqrt(mean(x^2) + eps):
//   dx = inv * g - x * inv^3 * mean(g * x)          (x [..., C], dy like x, w [C] optional) -> like x
struct RmsNormBackward {
  float eps = 1e-5f;
};
// dx of rope: dy turned by -theta                   (dy [T, H, D], pos [T] i32, factor [n_rot/2] optional) -> like dy
struct RopeBackward {
  Rope rope;
};
// d gate or d up of swiglu, with s = sigmoid(gate):
//   d up = dy * gate * s;  d gate = dy * up * s * (1 + gate * (1 - s))     (gate, up, dy [..., C]) -> like gate
struct SwiGluBackward {
  bool wrt_up = false;
};
// dx of softmax from its output y: y * (dy - sum(dy * y))   (y, dy [..., C]) -> like y
struct SoftmaxBackward {};
// d table of get_rows: zeros with row dy[t] added at ids[t]   (dy [T, C] f32, ids [T] i32) -> [V, C] f32
struct GetRowsBackward {};
// dx of slice(x, axis, start, n): zeros of x's shape, dy at [start, start + n) of axis   (dy) -> x's shape
struct SliceBackward {
  int32_t axis = 0;
  int64_t start = 0;
};
// dq, dk, dv of causal_attention (same parameters), one after the other in one
// flat vector that the builder splits into views.
//   (q, k, v, dy [T, Hq, D]) -> [T*Hq*D + 2*T*Hkv*D] f32
struct CausalAttentionBackward {
  CausalAttention attention;
};
// d logits of cross_entropy: dloss / N * (softmax(logits[r]) - onehot(y[r])), 0 on ignored rows
//   (logits [R, V], targets [R] i32, dloss [1]) -> [R, V] f32
struct CrossEntropyBackward {};

using Op = std::variant<Input, Constant, View, GetRows, MatMul, RmsNorm, Rope, KvStore, Attention, SwiGlu, Add, Mul,
                        Scale, Softmax, Sigmoid, ScaleRows, MoeFfn, Fill, Transpose, SumTo, CausalAttention,
                        CrossEntropy, RmsNormBackward, RopeBackward, SwiGluBackward, SoftmaxBackward, GetRowsBackward,
                        SliceBackward, CausalAttentionBackward, CrossEntropyBackward>;

// Name of the op held by `op` ("matmul"), for messages and `supports`.
const char* op_name(const Op& op);

}  // namespace loom::graph
