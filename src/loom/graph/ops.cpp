#include "loom/graph/ops.h"

#include "loom/core/error.h"

namespace loom::graph {

namespace {

void expect_dtype(const char* op, const char* what, Value v, DType t) {
  LOOM_CHECK(v.dtype() == t, "[graph] {}: {} must be {}, got {}", op, what, name(t), name(v.dtype()));
}

void expect_float(const char* op, const char* what, Value v) {
  const DType t = v.dtype();
  LOOM_CHECK(t == DType::F32, "[graph] {}: {} must be f32, got {}", op, what, name(t));
}

// Innermost dimension dense: kernels walk rows with a row stride.
void expect_dense_rows(const char* op, const char* what, Value v) {
  const Node& n = v.node();
  const auto& tr = traits(n.dtype);
  LOOM_CHECK(tr.is_quantized || n.strides[size_t(n.shape.rank - 1)] == tr.block_bytes,
             "[graph] {}: {} must have a contiguous last dimension", op, what);
}

bool is_contiguous(const Node& n) { return n.strides == contiguous_strides(n.dtype, n.shape); }

Shape with_last(Shape s, int64_t last) {
  s[-1] = last;
  return s;
}

}  // namespace

Value get_rows(Value table, Value ids) {
  LOOM_CHECK(table.rank() == 2, "[graph] get_rows: table must be [V, C], got {}", table.shape().str());
  LOOM_CHECK(ids.rank() == 1, "[graph] get_rows: ids must be [T], got {}", ids.shape().str());
  expect_dtype("get_rows", "ids", ids, DType::I32);
  expect_dense_rows("get_rows", "table", table);
  return table.graph().add(GetRows{}, {table, ids}, DType::F32, {ids.dim(0), table.dim(1)});
}

Value matmul(Value x, Value w) {
  LOOM_CHECK(w.rank() == 2, "[graph] matmul: weight must be [N, K], got {}", w.shape().str());
  LOOM_CHECK(x.rank() >= 1 && x.rank() <= 3, "[graph] matmul: x must have rank 1..3, got {}", x.shape().str());
  LOOM_CHECK(x.dim(-1) == w.dim(1), "[graph] matmul: x {} and weight {} disagree on K", x.shape().str(),
             w.shape().str());
  expect_float("matmul", "x", x);
  expect_dense_rows("matmul", "x", x);
  expect_dense_rows("matmul", "weight", w);
  LOOM_CHECK(x.rank() < 3 || x.node().strides[0] == x.node().strides[1] * x.dim(1),
             "[graph] matmul: the leading dims of x {} must be mergeable", x.shape().str());
  return x.graph().add(MatMul{}, {x, w}, DType::F32, with_last(x.shape(), w.dim(0)));
}

Value rms_norm(Value x, Value weight, float eps) {
  expect_float("rms_norm", "x", x);
  expect_dense_rows("rms_norm", "x", x);
  LOOM_CHECK(eps >= 0, "[graph] rms_norm: eps must be >= 0, got {}", eps);
  if (!weight.valid()) return x.graph().add(RmsNorm{eps}, {x}, DType::F32, x.shape());
  LOOM_CHECK(weight.rank() == 1 && weight.dim(0) == x.dim(-1), "[graph] rms_norm: weight {} does not match x {}",
             weight.shape().str(), x.shape().str());
  expect_float("rms_norm", "weight", weight);
  LOOM_CHECK(is_contiguous(weight.node()), "[graph] rms_norm: weight must be contiguous");
  return x.graph().add(RmsNorm{eps}, {x, weight}, DType::F32, x.shape());
}

Value rope(Value x, Value positions, const Rope& p, Value freq_factors) {
  LOOM_CHECK(x.rank() == 3, "[graph] rope: x must be [T, H, D], got {}", x.shape().str());
  expect_float("rope", "x", x);
  expect_dense_rows("rope", "x", x);
  LOOM_CHECK(positions.rank() == 1 && positions.dim(0) == x.dim(0), "[graph] rope: positions {} do not match x {}",
             positions.shape().str(), x.shape().str());
  expect_dtype("rope", "positions", positions, DType::I32);
  LOOM_CHECK(p.n_rot > 0 && p.n_rot % 2 == 0 && p.n_rot <= x.dim(2),
             "[graph] rope: n_rot must be even and in 2..{}, got {}", x.dim(2), p.n_rot);
  LOOM_CHECK(p.base > 0 && p.freq_scale > 0, "[graph] rope: base and freq_scale must be positive");
  if (!freq_factors.valid()) return x.graph().add(p, {x, positions}, DType::F32, x.shape());
  LOOM_CHECK(freq_factors.rank() == 1 && freq_factors.dim(0) == p.n_rot / 2,
             "[graph] rope: frequency factors {} must be [{}]", freq_factors.shape().str(), p.n_rot / 2);
  expect_float("rope", "frequency factors", freq_factors);
  LOOM_CHECK(is_contiguous(freq_factors.node()), "[graph] rope: frequency factors must be contiguous");
  return x.graph().add(p, {x, positions, freq_factors}, DType::F32, x.shape());
}

Value kv_store(Value cache, Value src, Value slots) {
  LOOM_CHECK(cache.rank() == 3 && src.rank() == 3 && cache.dim(1) == src.dim(1) && cache.dim(2) == src.dim(2),
             "[graph] kv_store: cache {} and src {} must be [S, H, D] and [T, H, D]", cache.shape().str(),
             src.shape().str());
  LOOM_CHECK(cache.dtype() == DType::F32 || cache.dtype() == DType::F16, "[graph] kv_store: cache must be f32 or f16");
  LOOM_CHECK(is_contiguous(cache.node()), "[graph] kv_store: cache must be contiguous");
  expect_float("kv_store", "src", src);
  expect_dense_rows("kv_store", "src", src);
  LOOM_CHECK(slots.rank() == 1 && slots.dim(0) == src.dim(0), "[graph] kv_store: slots {} do not match src {}",
             slots.shape().str(), src.shape().str());
  expect_dtype("kv_store", "slots", slots, DType::I32);
  return cache.graph().add_alias(KvStore{}, {cache, src, slots}, cache.dtype(), cache.shape(), cache.node().strides);
}

Value attention(Value q, Value k, Value v, Value positions, Value seq_ids, Value block_table, const Attention& p) {
  LOOM_CHECK(q.rank() == 3, "[graph] attention: q must be [T, Hq, D], got {}", q.shape().str());
  expect_float("attention", "q", q);
  expect_dense_rows("attention", "q", q);
  LOOM_CHECK(k.rank() == 3 && v.shape() == k.shape() && k.dim(2) == q.dim(2),
             "[graph] attention: k {} and v {} must be [S, Hkv, D] with D of q {}", k.shape().str(),
             v.shape().str(), q.shape().str());
  LOOM_CHECK(k.dtype() == v.dtype() && (k.dtype() == DType::F32 || k.dtype() == DType::F16),
             "[graph] attention: k and v must both be f32 or f16");
  LOOM_CHECK(is_contiguous(k.node()) && is_contiguous(v.node()), "[graph] attention: k and v must be contiguous");
  LOOM_CHECK(k.dim(1) > 0 && q.dim(1) % k.dim(1) == 0, "[graph] attention: {} query heads are not a multiple of {} kv heads",
             q.dim(1), k.dim(1));
  const int64_t T = q.dim(0);
  LOOM_CHECK(positions.rank() == 1 && positions.dim(0) == T && seq_ids.rank() == 1 && seq_ids.dim(0) == T,
             "[graph] attention: positions and seq_ids must be [{}]", T);
  expect_dtype("attention", "positions", positions, DType::I32);
  expect_dtype("attention", "seq_ids", seq_ids, DType::I32);
  LOOM_CHECK(block_table.rank() == 2, "[graph] attention: block_table must be [sequences, blocks]");
  expect_dtype("attention", "block_table", block_table, DType::I32);
  LOOM_CHECK(is_contiguous(block_table.node()), "[graph] attention: block_table must be contiguous");
  LOOM_CHECK(p.block_size > 0 && k.dim(0) % p.block_size == 0,
             "[graph] attention: cache of {} slots is not a whole number of blocks of {}", k.dim(0), p.block_size);
  return q.graph().add(p, {q, k, v, positions, seq_ids, block_table}, DType::F32, q.shape());
}

Value swiglu(Value gate, Value up) {
  expect_float("swiglu", "gate", gate);
  expect_float("swiglu", "up", up);
  expect_dense_rows("swiglu", "gate", gate);
  expect_dense_rows("swiglu", "up", up);
  LOOM_CHECK(gate.shape() == up.shape(), "[graph] swiglu: gate {} and up {} differ", gate.shape().str(),
             up.shape().str());
  return gate.graph().add(SwiGlu{}, {gate, up}, DType::F32, gate.shape());
}

namespace {
Value binary(const char* op_name_, Op op, Value a, Value b) {
  expect_float(op_name_, "a", a);
  expect_float(op_name_, "b", b);
  expect_dense_rows(op_name_, "a", a);
  LOOM_CHECK(is_contiguous(b.node()), "[graph] {}: b must be contiguous", op_name_);
  bool suffix = b.rank() <= a.rank();
  for (int i = 1; suffix && i <= b.rank(); ++i) suffix = b.dim(-i) == a.dim(-i);
  LOOM_CHECK(suffix, "[graph] {}: shape {} does not broadcast to {}", op_name_, b.shape().str(), a.shape().str());
  return a.graph().add(op, {a, b}, DType::F32, a.shape());
}
}  // namespace

Value add(Value a, Value b) { return binary("add", Add{}, a, b); }
Value mul(Value a, Value b) { return binary("mul", Mul{}, a, b); }

Value scale(Value x, float factor) {
  expect_float("scale", "x", x);
  expect_dense_rows("scale", "x", x);
  return x.graph().add(Scale{factor}, {x}, DType::F32, x.shape());
}

Value softmax(Value x) {
  expect_float("softmax", "x", x);
  expect_dense_rows("softmax", "x", x);
  return x.graph().add(Softmax{}, {x}, DType::F32, x.shape());
}

Value sigmoid(Value x) {
  expect_float("sigmoid", "x", x);
  expect_dense_rows("sigmoid", "x", x);
  return x.graph().add(Sigmoid{}, {x}, DType::F32, x.shape());
}

Value scale_rows(Value x, Value s) {
  expect_float("scale_rows", "x", x);
  expect_float("scale_rows", "s", s);
  expect_dense_rows("scale_rows", "x", x);
  bool same_rows = s.rank() == x.rank() && s.dim(-1) == 1;
  for (int i = 0; same_rows && i < x.rank() - 1; ++i) same_rows = s.dim(i) == x.dim(i);
  LOOM_CHECK(same_rows, "[graph] scale_rows: factors {} must be {} with a last dim of 1", s.shape().str(),
             with_last(x.shape(), 1).str());
  return x.graph().add(ScaleRows{}, {x, s}, DType::F32, x.shape());
}

Value moe_ffn(Value x, Value probs, Value gate, Value up, Value down, const MoeFfn& p) {
  LOOM_CHECK(x.rank() == 2, "[graph] moe_ffn: x must be [T, C], got {}", x.shape().str());
  LOOM_CHECK(probs.rank() == 2 && probs.dim(0) == x.dim(0), "[graph] moe_ffn: probs {} must be [{}, E]",
             probs.shape().str(), x.dim(0));
  expect_float("moe_ffn", "x", x);
  expect_float("moe_ffn", "probs", probs);
  expect_dense_rows("moe_ffn", "x", x);
  expect_dense_rows("moe_ffn", "probs", probs);
  const int64_t E = probs.dim(1), C = x.dim(1);
  LOOM_CHECK(gate.rank() == 3 && gate.dim(0) == E && gate.dim(2) == C,
             "[graph] moe_ffn: gate experts {} must be [{}, F, {}]", gate.shape().str(), E, C);
  const int64_t F = gate.dim(1);
  LOOM_CHECK(up.shape() == gate.shape(), "[graph] moe_ffn: up experts {} must match gate experts {}",
             up.shape().str(), gate.shape().str());
  LOOM_CHECK(down.rank() == 3 && down.dim(0) == E && down.dim(1) == C && down.dim(2) == F,
             "[graph] moe_ffn: down experts {} must be [{}, {}, {}]", down.shape().str(), E, C, F);
  for (Value w : {gate, up, down})
    LOOM_CHECK(w.dtype() != DType::I32 && w.dtype() != DType::I8, "[graph] moe_ffn: expert weights must be float or "
               "block-quantized, got {}", name(w.dtype()));
  expect_dense_rows("moe_ffn", "gate experts", gate);
  expect_dense_rows("moe_ffn", "up experts", up);
  expect_dense_rows("moe_ffn", "down experts", down);
  LOOM_CHECK(p.n_used >= 1 && p.n_used <= E, "[graph] moe_ffn: n_used must be in 1..{}, got {}", E, p.n_used);
  return x.graph().add(p, {x, probs, gate, up, down}, DType::F32, x.shape());
}

Value reshape(Value x, Shape shape) {
  LOOM_CHECK(is_contiguous(x.node()), "[graph] reshape: {} is not contiguous", x.shape().str());
  LOOM_CHECK(shape.numel() == x.shape().numel(), "[graph] reshape: cannot reshape {} to {}", x.shape().str(),
             shape.str());
  LOOM_CHECK(shape[-1] % traits(x.dtype()).block_size == 0, "[graph] reshape: {} would split a {} block",
             shape.str(), name(x.dtype()));
  return x.graph().add_alias(View{0}, {x}, x.dtype(), shape, contiguous_strides(x.dtype(), shape));
}

Value slice(Value x, int axis, int64_t start, int64_t length) {
  const Node& n = x.node();
  if (axis < 0) axis += n.shape.rank;
  LOOM_CHECK(axis >= 0 && axis < n.shape.rank, "[graph] slice: axis {} out of range for {}", axis, n.shape.str());
  LOOM_CHECK(start >= 0 && length >= 0 && start + length <= n.shape[axis], "[graph] slice: [{}, {}) outside {}",
             start, start + length, n.shape.str());
  size_t offset;
  if (axis == n.shape.rank - 1) {
    const int bs = traits(n.dtype).block_size;
    LOOM_CHECK(start % bs == 0 && length % bs == 0, "[graph] slice: would split a {} block", name(n.dtype));
    offset = row_bytes(n.dtype, start);
  } else {
    offset = size_t(start * n.strides[size_t(axis)]);
  }
  Shape s = n.shape;
  s[axis] = length;
  return x.graph().add_alias(View{offset}, {x}, n.dtype, s, n.strides);
}

}  // namespace loom::graph
