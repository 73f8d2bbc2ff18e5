// Graph builders: small free functions that check shapes and dtypes and add
// a node. Every check failure is a loom::Error starting with "[graph] <op>".
// The op semantics are written next to each parameter struct in op.h.
//
//   Value h = rms_norm(x, norm_w, 1e-5f);                  // [T, C]
//   Value q = reshape(matmul(h, wq), {T, Hq, D});         // [T, Hq, D]
#pragma once

#include "loom/graph/graph.h"

namespace loom::graph {

Value get_rows(Value table, Value ids);
Value matmul(Value x, Value w);
Value rms_norm(Value x, Value weight, float eps);  // weight may be an invalid Value (no scaling)
Value rope(Value x, Value positions, const Rope& params, Value freq_factors = Value());
Value kv_store(Value cache, Value src, Value slots);
Value attention(Value q, Value k_cache, Value v_cache, Value positions, Value seq_ids, Value block_table,
                const Attention& params);
Value swiglu(Value gate, Value up);
Value add(Value a, Value b);
Value mul(Value a, Value b);
Value scale(Value x, float factor);
Value softmax(Value x);
Value sigmoid(Value x);
Value scale_rows(Value x, Value s);  // s [..., 1]: one factor per row of x
// Mixture-of-experts FFN (op.h MoeFfn): x [T, C], probs [T, E], gate/up [E, F, C], down [E, C, F].
Value moe_ffn(Value x, Value probs, Value gate_exps, Value up_exps, Value down_exps, const MoeFfn& params);

// Views (no computation).
Value reshape(Value x, Shape shape);                          // x must be contiguous
Value slice(Value x, int axis, int64_t start, int64_t length);  // e.g. split a fused QKV projection

}  // namespace loom::graph
