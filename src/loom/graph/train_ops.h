// Graph builders for training: forward ops that need no KV cache (causal
// self-attention over a batch, cross-entropy loss) and the backward ops that
// the autograd driver (src/loom/train/backward.h) composes into gradient
// graphs. Semantics are written next to each parameter struct in op.h; like
// ops.h, every check failure is a loom::Error starting with "[graph] <op>".
//
//   Value a = causal_attention(q, k, v, {.scale = 1 / sqrt(D)});   // [T, Hq, D]
//   Value loss = cross_entropy(logits, targets);                    // [1]
#pragma once

#include "loom/graph/graph.h"

namespace loom::graph {

// Forward.
Value fill(Graph& g, Shape shape, float value);
Value transpose(Value x);             // [..., C] -> [C, R], R = the product of the leading dims
Value sum_to(Value x, Shape shape);   // shape: a suffix of x's shape
Value causal_attention(Value q, Value k, Value v, const CausalAttention& params);
Value cross_entropy(Value logits, Value targets);

// Backward: the gradient of one input of the named forward op.
Value rms_norm_backward(Value x, Value weight, Value dy, float eps);  // weight may be invalid
Value rope_backward(Value dy, Value positions, const Rope& params, Value freq_factors = Value());
Value swiglu_backward(Value gate, Value up, Value dy, bool wrt_up);
Value softmax_backward(Value y, Value dy);
Value get_rows_backward(Value dy, Value ids, int64_t table_rows);
Value slice_backward(Value dy, Shape x_shape, int axis, int64_t start);
struct AttentionGrads {
  Value dq, dk, dv;  // [T, Hq, D] [T, Hkv, D] [T, Hkv, D], views of one node
};
AttentionGrads causal_attention_backward(Value q, Value k, Value v, Value dy, const CausalAttention& params);
Value cross_entropy_backward(Value logits, Value targets, Value dloss);

}  // namespace loom::graph
