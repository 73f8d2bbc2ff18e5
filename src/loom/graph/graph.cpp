#include "loom/graph/graph.h"

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/core/overloaded.h"

namespace loom::graph {

const char* op_name(const Op& op) {
  return std::visit(Overloaded{
                        [](const Input&) { return "input"; },
                        [](const Constant&) { return "constant"; },
                        [](const View&) { return "view"; },
                        [](const GetRows&) { return "get_rows"; },
                        [](const MatMul&) { return "matmul"; },
                        [](const RmsNorm&) { return "rms_norm"; },
                        [](const Rope&) { return "rope"; },
                        [](const KvStore&) { return "kv_store"; },
                        [](const Attention&) { return "attention"; },
                        [](const SwiGlu&) { return "swiglu"; },
                        [](const Add&) { return "add"; },
                        [](const Mul&) { return "mul"; },
                        [](const Scale&) { return "scale"; },
                        [](const Softmax&) { return "softmax"; },
                        [](const Sigmoid&) { return "sigmoid"; },
                        [](const ScaleRows&) { return "scale_rows"; },
                        [](const MoeFfn&) { return "moe_ffn"; },
                        [](const Fill&) { return "fill"; },
                        [](const Transpose&) { return "transpose"; },
                        [](const SumTo&) { return "sum_to"; },
                        [](const CausalAttention&) { return "causal_attention"; },
                        [](const CrossEntropy&) { return "cross_entropy"; },
                        [](const RmsNormBackward&) { return "rms_norm_backward"; },
                        [](const RopeBackward&) { return "rope_backward"; },
                        [](const SwiGluBackward&) { return "swiglu_backward"; },
                        [](const SoftmaxBackward&) { return "softmax_backward"; },
                        [](const GetRowsBackward&) { return "get_rows_backward"; },
                        [](const SliceBackward&) { return "slice_backward"; },
                        [](const CausalAttentionBackward&) { return "causal_attention_backward"; },
                        [](const CrossEntropyBackward&) { return "cross_entropy_backward"; },
                    },
                    op);
}

bool is_alias(const Node& n) { return std::holds_alternative<View>(n.op) || std::holds_alternative<KvStore>(n.op); }

const Node& Value::node() const {
  LOOM_CHECK(graph_ != nullptr, "[graph] use of an empty Value");
  return graph_->node(id_);
}

Value Graph::input(std::string name, DType dtype, Shape shape) {
  Node n;
  n.op = Input{};
  n.dtype = dtype;
  n.shape = shape;
  n.strides = contiguous_strides(dtype, shape);
  n.name = std::move(name);
  nodes_.push_back(std::move(n));
  return Value(this, size() - 1);
}

Value Graph::constant(const Tensor& t, std::string name) {
  LOOM_CHECK(t.defined(), "[graph] constant '{}' has no tensor", name);
  Node n;
  n.op = Constant{};
  n.dtype = t.dtype();
  n.shape = t.shape();
  n.strides = t.strides();
  n.name = std::move(name);
  n.tensor = t;
  nodes_.push_back(std::move(n));
  return Value(this, size() - 1);
}

void Graph::mark_output(Value v) {
  LOOM_CHECK(&v.graph() == this, "[graph] mark_output: value belongs to another graph");
  nodes_[size_t(v.id())].is_output = true;
}

Value Graph::add(Op op, std::vector<Value> inputs, DType dtype, Shape shape) {
  Node n;
  n.op = op;
  for (const Value& v : inputs) {
    LOOM_CHECK(v.valid() && &v.graph() == this, "[graph] {}: input from another graph or empty", op_name(op));
    n.inputs.push_back(v.id());
  }
  n.dtype = dtype;
  n.shape = shape;
  n.strides = contiguous_strides(dtype, shape);
  nodes_.push_back(std::move(n));
  return Value(this, size() - 1);
}

Value Graph::add_alias(Op op, std::vector<Value> inputs, DType dtype, Shape shape,
                       std::array<int64_t, kMaxRank> strides) {
  Value v = add(op, std::move(inputs), dtype, shape);
  nodes_.back().strides = strides;
  return v;
}

Value Graph::named(Value v, std::string name) {
  nodes_[size_t(v.id())].name = std::move(name);
  return v;
}

std::string Graph::dump() const {
  std::string s;
  for (int i = 0; i < size(); ++i) {
    const Node& n = nodes_[size_t(i)];
    s += fmt::format("{:4} {:<9} {}{}", i, op_name(n.op), name(n.dtype), n.shape.str());
    if (!n.inputs.empty()) {
      s += " <-";
      for (int in : n.inputs) s += fmt::format(" {}", in);
    }
    if (!n.name.empty()) s += fmt::format("  ({})", n.name);
    if (n.is_output) s += " [out]";
    s += '\n';
  }
  return s;
}

}  // namespace loom::graph
