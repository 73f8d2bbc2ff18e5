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

using Op = std::variant<Input, Constant, View, GetRows, MatMul, RmsNorm, Rope, KvStore, Attention, SwiGlu, Add, Mul,
                        Scale, Softmax, Sigmoid, ScaleRows, MoeFfn>;

// Name of the op held by `op` ("matmul"), for messages and `supports`.
const char* op_name(const Op& op);

}  // namespace loom::graph
