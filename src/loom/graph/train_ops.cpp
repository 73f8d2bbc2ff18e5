#include "loom/graph/train_ops.h"

#include "loom/core/error.h"
#include "loom/graph/ops.h"

namespace loom::graph {

namespace {

void expect_f32(const char* op, const char* what, Value v) {
  LOOM_CHECK(v.dtype() == DType::F32, "[graph] {}: {} must be f32, got {}", op, what, name(v.dtype()));
}

void expect_i32(const char* op, const char* what, Value v) {
  LOOM_CHECK(v.dtype() == DType::I32, "[graph] {}: {} must be i32, got {}", op, what, name(v.dtype()));
}

// f32 with a dense last dimension: kernels walk rows with a row stride.
void expect_f32_rows(const char* op, const char* what, Value v) {
  expect_f32(op, what, v);
  LOOM_CHECK(v.node().strides[size_t(v.rank() - 1)] == 4, "[graph] {}: {} must have a contiguous last dimension", op,
             what);
}

void expect_same_shape(const char* op, const char* a, Value x, const char* b, Value y) {
  LOOM_CHECK(x.shape() == y.shape(), "[graph] {}: {} {} and {} {} differ", op, a, x.shape().str(), b, y.shape().str());
}

void check_attention(const char* op, Value q, Value k, Value v, const CausalAttention& p) {
  LOOM_CHECK(q.rank() == 3 && k.rank() == 3 && k.shape() == v.shape() && k.dim(0) == q.dim(0) && k.dim(2) == q.dim(2),
             "[graph] {}: q {}, k {}, v {} must be [T, Hq, D], [T, Hkv, D], [T, Hkv, D]", op, q.shape().str(),
             k.shape().str(), v.shape().str());
  expect_f32_rows(op, "q", q);
  expect_f32_rows(op, "k", k);
  expect_f32_rows(op, "v", v);
  LOOM_CHECK(k.dim(1) > 0 && q.dim(1) % k.dim(1) == 0, "[graph] {}: {} query heads are not a multiple of {} kv heads",
             op, q.dim(1), k.dim(1));
  LOOM_CHECK(p.seq_len >= 0 && (p.seq_len == 0 || q.dim(0) % p.seq_len == 0),
             "[graph] {}: {} tokens are not a whole number of sequences of {}", op, q.dim(0), p.seq_len);
}

void check_cross_entropy(const char* op, Value logits, Value targets) {
  LOOM_CHECK(logits.rank() == 2, "[graph] {}: logits must be [R, V], got {}", op, logits.shape().str());
  expect_f32_rows(op, "logits", logits);
  LOOM_CHECK(targets.rank() == 1 && targets.dim(0) == logits.dim(0), "[graph] {}: targets {} must be [{}]", op,
             targets.shape().str(), logits.dim(0));
  expect_i32(op, "targets", targets);
}

}  // namespace

Value fill(Graph& g, Shape shape, float value) {
  LOOM_CHECK(shape.rank >= 1 && shape.numel() > 0, "[graph] fill: shape {} must be non-empty", shape.str());
  return g.add(Fill{value}, {}, DType::F32, shape);
}

Value transpose(Value x) {
  LOOM_CHECK(x.rank() >= 2, "[graph] transpose: x must have rank 2 or more, got {}", x.shape().str());
  // F32, or BF16 (the weights of BF16 training, transposed for the input gradient of a matmul).
  LOOM_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16, "[graph] transpose: x must be f32 or bf16, got {}",
             name(x.dtype()));
  LOOM_CHECK(x.node().strides[size_t(x.rank() - 1)] == int64_t(traits(x.dtype()).block_bytes),
             "[graph] transpose: x must have a contiguous last dimension");
  return x.graph().add(Transpose{}, {x}, x.dtype(), {x.dim(-1), x.shape().numel() / x.dim(-1)});
}

Value sum_to(Value x, Shape shape) {
  expect_f32_rows("sum_to", "x", x);
  bool suffix = shape.rank >= 1 && shape.rank <= x.rank();
  for (int i = 1; suffix && i <= shape.rank; ++i) suffix = shape[-i] == x.dim(-i);
  LOOM_CHECK(suffix, "[graph] sum_to: {} is not a suffix of {}", shape.str(), x.shape().str());
  return x.graph().add(SumTo{}, {x}, DType::F32, shape);
}

Value causal_attention(Value q, Value k, Value v, const CausalAttention& p) {
  check_attention("causal_attention", q, k, v, p);
  return q.graph().add(p, {q, k, v}, DType::F32, q.shape());
}

Value cross_entropy(Value logits, Value targets) {
  check_cross_entropy("cross_entropy", logits, targets);
  return logits.graph().add(CrossEntropy{}, {logits, targets}, DType::F32, {1});
}

Value rms_norm_backward(Value x, Value weight, Value dy, float eps) {
  expect_f32_rows("rms_norm_backward", "x", x);
  expect_f32_rows("rms_norm_backward", "dy", dy);
  expect_same_shape("rms_norm_backward", "x", x, "dy", dy);
  if (!weight.valid()) return x.graph().add(RmsNormBackward{eps}, {x, dy}, DType::F32, x.shape());
  LOOM_CHECK(weight.rank() == 1 && weight.dim(0) == x.dim(-1) && weight.node().strides[0] == 4,
             "[graph] rms_norm_backward: weight {} must be a contiguous [{}]", weight.shape().str(), x.dim(-1));
  expect_f32("rms_norm_backward", "weight", weight);
  return x.graph().add(RmsNormBackward{eps}, {x, dy, weight}, DType::F32, x.shape());
}

Value rope_backward(Value dy, Value positions, const Rope& p, Value freq_factors) {
  LOOM_CHECK(dy.rank() == 3, "[graph] rope_backward: dy must be [T, H, D], got {}", dy.shape().str());
  expect_f32_rows("rope_backward", "dy", dy);
  LOOM_CHECK(positions.rank() == 1 && positions.dim(0) == dy.dim(0), "[graph] rope_backward: positions {} do not "
             "match dy {}", positions.shape().str(), dy.shape().str());
  expect_i32("rope_backward", "positions", positions);
  LOOM_CHECK(p.n_rot > 0 && p.n_rot % 2 == 0 && p.n_rot <= dy.dim(2),
             "[graph] rope_backward: n_rot must be even and in 2..{}, got {}", dy.dim(2), p.n_rot);
  if (!freq_factors.valid()) return dy.graph().add(RopeBackward{p}, {dy, positions}, DType::F32, dy.shape());
  LOOM_CHECK(freq_factors.rank() == 1 && freq_factors.dim(0) == p.n_rot / 2 && freq_factors.node().strides[0] == 4,
             "[graph] rope_backward: frequency factors {} must be a contiguous [{}]", freq_factors.shape().str(),
             p.n_rot / 2);
  expect_f32("rope_backward", "frequency factors", freq_factors);
  return dy.graph().add(RopeBackward{p}, {dy, positions, freq_factors}, DType::F32, dy.shape());
}

Value swiglu_backward(Value gate, Value up, Value dy, bool wrt_up) {
  expect_f32_rows("swiglu_backward", "gate", gate);
  expect_f32_rows("swiglu_backward", "up", up);
  expect_f32_rows("swiglu_backward", "dy", dy);
  expect_same_shape("swiglu_backward", "gate", gate, "up", up);
  expect_same_shape("swiglu_backward", "gate", gate, "dy", dy);
  return gate.graph().add(SwiGluBackward{wrt_up}, {gate, up, dy}, DType::F32, gate.shape());
}

Value softmax_backward(Value y, Value dy) {
  expect_f32_rows("softmax_backward", "y", y);
  expect_f32_rows("softmax_backward", "dy", dy);
  expect_same_shape("softmax_backward", "y", y, "dy", dy);
  return y.graph().add(SoftmaxBackward{}, {y, dy}, DType::F32, y.shape());
}

Value get_rows_backward(Value dy, Value ids, int64_t table_rows) {
  LOOM_CHECK(dy.rank() == 2, "[graph] get_rows_backward: dy must be [T, C], got {}", dy.shape().str());
  expect_f32_rows("get_rows_backward", "dy", dy);
  LOOM_CHECK(ids.rank() == 1 && ids.dim(0) == dy.dim(0), "[graph] get_rows_backward: ids {} must be [{}]",
             ids.shape().str(), dy.dim(0));
  expect_i32("get_rows_backward", "ids", ids);
  LOOM_CHECK(table_rows > 0, "[graph] get_rows_backward: the table needs rows, got {}", table_rows);
  return dy.graph().add(GetRowsBackward{}, {dy, ids}, DType::F32, {table_rows, dy.dim(1)});
}

Value slice_backward(Value dy, Shape x_shape, int axis, int64_t start) {
  expect_f32_rows("slice_backward", "dy", dy);
  if (axis < 0) axis += x_shape.rank;
  bool ok = dy.rank() == x_shape.rank && axis >= 0 && axis < x_shape.rank && start >= 0 &&
            start + dy.dim(axis) <= x_shape[axis];
  for (int i = 0; ok && i < x_shape.rank; ++i) ok = i == axis || dy.dim(i) == x_shape[i];
  LOOM_CHECK(ok, "[graph] slice_backward: dy {} is not a slice of {} at {} on axis {}", dy.shape().str(),
             x_shape.str(), start, axis);
  return dy.graph().add(SliceBackward{axis, start}, {dy}, DType::F32, x_shape);
}

AttentionGrads causal_attention_backward(Value q, Value k, Value v, Value dy, const CausalAttention& p) {
  check_attention("causal_attention_backward", q, k, v, p);
  expect_f32_rows("causal_attention_backward", "dy", dy);
  expect_same_shape("causal_attention_backward", "q", q, "dy", dy);
  const Shape q_shape = q.shape(), k_shape = k.shape();  // copies: adding nodes moves the node list
  const int64_t nq = q_shape.numel(), nk = k_shape.numel();
  Value all = q.graph().add(CausalAttentionBackward{p}, {q, k, v, dy}, DType::F32, {nq + 2 * nk});
  return {reshape(slice(all, 0, 0, nq), q_shape), reshape(slice(all, 0, nq, nk), k_shape),
          reshape(slice(all, 0, nq + nk, nk), k_shape)};
}

Value cross_entropy_backward(Value logits, Value targets, Value dloss) {
  check_cross_entropy("cross_entropy_backward", logits, targets);
  LOOM_CHECK(dloss.shape().numel() == 1, "[graph] cross_entropy_backward: dloss must be [1], got {}",
             dloss.shape().str());
  expect_f32("cross_entropy_backward", "dloss", dloss);
  return logits.graph().add(CrossEntropyBackward{}, {logits, targets, dloss}, DType::F32, logits.shape());
}

}  // namespace loom::graph
