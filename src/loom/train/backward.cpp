#include "loom/train/backward.h"

#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/core/overloaded.h"
#include "loom/graph/ops.h"
#include "loom/graph/train_ops.h"

namespace loom::train {

using graph::Graph;
using graph::Node;
using graph::Value;

namespace {

// Gradients of the nodes of a forward graph, accumulated while walking it backwards.
class Backward {
 public:
  Backward(Graph& g, int forward_nodes, std::span<const Value> params, std::span<const Value> checkpoints = {})
      : g_(g), forward_nodes_(forward_nodes), needs_(size_t(forward_nodes)), current_(size_t(forward_nodes)) {
    for (int i = 0; i < forward_nodes; ++i) current_[size_t(i)] = i;
    int last = -1;
    for (Value c : checkpoints) {
      LOOM_CHECK(c.valid() && &c.graph() == &g && c.id() > last && c.id() < forward_nodes,
                 "[train] backward: checkpoints must be forward nodes of the graph in increasing order");
      segments_.push_back({last, c.id()});
      last = c.id();
    }
    for (Value p : params) {
      LOOM_CHECK(p.valid() && &p.graph() == &g && p.id() < forward_nodes, "[train] backward: a parameter is not a "
                 "node of the graph before the output");
      LOOM_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::BF16,
                 "[train] backward: parameter '{}' is {}; gradients need f32 (or bf16) parameters", p.node().name,
                 name(p.dtype()));
      needs_[size_t(p.id())] = true;
    }
    // A node needs a gradient if a parameter flows into it.
    for (int i = 0; i < forward_nodes; ++i)
      for (int in : g.node(i).inputs) needs_[size_t(i)] = needs_[size_t(i)] || needs_[size_t(in)];
    grads_.resize(size_t(forward_nodes));
  }

  void run(Value output, Value seed) {
    accumulate(output.id(), seed);
    auto segment = segments_.rbegin();
    for (int i = output.id(); i >= 0; --i) {
      while (segment != segments_.rend() && segment->end > i) ++segment;
      if (segment != segments_.rend() && segment->end == i) recompute(*segment++);
      if (grads_[size_t(i)].valid() && !g_.node(i).inputs.empty()) rule(i, grads_[size_t(i)]);
    }
  }

  Value grad(Value param) {
    const Value d = grads_[size_t(param.id())];
    return d.valid() ? d : graph::fill(g_, param.shape(), 0.0f);
  }

 private:
  // Rules read forward values through current_: the node itself, or its
  // recomputed copy. Gradients stay keyed by the forward node (origin()).
  Value in(int node, int k) { return Value(&g_, current_[size_t(g_.node(node).inputs[size_t(k)])]); }
  int origin(int id) const {
    if (id < forward_nodes_) return id;
    const auto it = origin_.find(id);
    return it == origin_.end() ? id : it->second;
  }
  bool needs(Value v) const { return needs_[size_t(origin(v.id()))]; }

  struct Segment {
    int begin, end;  // the nodes strictly between two checkpoints (begin -1: from the start)
  };
  // Adds the segment's computed nodes again, reading the copies made so far.
  void recompute(const Segment& s) {
    for (int i = s.begin + 1; i < s.end; ++i) {
      const Node n = g_.node(i);
      if (n.inputs.empty()) continue;  // Inputs and Constants are kept anyway
      std::vector<Value> inputs;
      for (int j : n.inputs) inputs.emplace_back(&g_, current_[size_t(j)]);
      const Value copy = graph::is_alias(n) ? g_.add_alias(n.op, std::move(inputs), n.dtype, n.shape, n.strides)
                                            : g_.add(n.op, std::move(inputs), n.dtype, n.shape);
      current_[size_t(i)] = copy.id();
      origin_[copy.id()] = i;
    }
  }

  // Adds a contribution to the gradient of node `id` (or of the node it recomputes).
  void accumulate(int id, Value d) {
    id = origin(id);
    if (!needs_[size_t(id)]) return;
    const Node& n = g_.node(id);
    LOOM_CHECK(d.shape() == n.shape, "[train] backward: gradient {} of node {} ({} {}) has the wrong shape",
               d.shape().str(), id, graph::op_name(n.op), n.shape.str());
    Value& acc = grads_[size_t(id)];
    acc = acc.valid() ? graph::add(acc, d) : d;
  }
  void accumulate(Value v, Value d) { accumulate(v.id(), d); }

  [[noreturn]] void no_rule(int id, const std::string& why) {
    const Node& n = g_.node(id);
    fail("[train] backward: no gradient through node {} ({} {}{}{}): {}", id, graph::op_name(n.op), name(n.dtype),
         n.shape.str(), n.name.empty() ? "" : " '" + n.name + "'", why);
  }

  // The gradient of a broadcast operand b: dy summed over the leading dims b lacks.
  Value reduce_to(Value dy, const Shape& shape) { return dy.shape() == shape ? dy : graph::sum_to(dy, shape); }

  // Rules add nodes, which moves the node list: they work on a copy of the
  // node, and copy a shape into a local before an argument list that adds
  // nodes (the order in which arguments are evaluated is unspecified).
  void rule(int id, Value dy) {
    const Node n = g_.node(id);
    const Value y(&g_, current_[size_t(id)]);
    std::visit(
        Overloaded{
            [&](const graph::View& p) { view(id, p, dy); },
            [&](const graph::GetRows&) {
              const Value table = in(id, 0);
              if (needs(table)) accumulate(table, graph::get_rows_backward(dy, in(id, 1), table.dim(0)));
            },
            [&](const graph::MatMul&) {
              const Value x = in(id, 0), w = in(id, 1);
              if (w.dtype() != DType::F32 && w.dtype() != DType::BF16)
                no_rule(id, fmt::format("gradients through a matmul need f32 or bf16 weights, not {} (a quantized "
                                        "base trains through LoRA)", name(w.dtype())));
              if (needs(x)) accumulate(x, graph::matmul(dy, graph::transpose(w)));  // [.., N] x [K, N]^T -> [.., K]
              if (needs(w)) accumulate(w, graph::matmul(graph::transpose(dy), graph::transpose(x)));  // [N, K]
            },
            [&](const graph::RmsNorm& p) {
              const Value x = in(id, 0), w = n.inputs.size() > 1 ? in(id, 1) : Value();
              if (needs(x)) accumulate(x, graph::rms_norm_backward(x, w, dy, p.eps));
              if (w.valid() && needs(w)) {
                const Shape w_shape = w.shape();
                accumulate(w, graph::sum_to(graph::mul(dy, graph::rms_norm(x, Value(), p.eps)), w_shape));
              }
            },
            [&](const graph::Rope& p) {
              const Value factors = n.inputs.size() > 2 ? in(id, 2) : Value();
              if (factors.valid() && needs(factors)) no_rule(id, "rope frequency factors are not trainable");
              accumulate(in(id, 0), graph::rope_backward(dy, in(id, 1), p, factors));
            },
            [&](const graph::SwiGlu&) {
              const Value gate = in(id, 0), up = in(id, 1);
              if (needs(gate)) accumulate(gate, graph::swiglu_backward(gate, up, dy, false));
              if (needs(up)) accumulate(up, graph::swiglu_backward(gate, up, dy, true));
            },
            [&](const graph::Add&) {
              const Value a = in(id, 0), b = in(id, 1);
              if (needs(a)) accumulate(a, dy);
              if (needs(b)) accumulate(b, reduce_to(dy, b.shape()));
            },
            [&](const graph::Mul&) {
              const Value a = in(id, 0), b = in(id, 1);
              if (needs(a)) accumulate(a, graph::mul(dy, b));
              const Shape b_shape = b.shape();
              if (needs(b)) accumulate(b, reduce_to(graph::mul(a, dy), b_shape));
            },
            [&](const graph::Scale& p) { accumulate(in(id, 0), graph::scale(dy, p.factor)); },
            [&](const graph::Softmax&) { accumulate(in(id, 0), graph::softmax_backward(y, dy)); },
            [&](const graph::Sigmoid&) {
              // dy * y * (1 - y), from ordinary ops.
              const Value one_minus_y = graph::add(graph::scale(y, -1.0f), graph::fill(g_, {y.dim(-1)}, 1.0f));
              accumulate(in(id, 0), graph::mul(graph::mul(dy, y), one_minus_y));
            },
            [&](const graph::ScaleRows&) {
              const Value x = in(id, 0), s = in(id, 1);
              if (needs(x)) accumulate(x, graph::scale_rows(dy, s));
              // d s[r] = sum_c dy[r, c] x[r, c]: row sums as a product with a row of ones.
              if (needs(s))
                accumulate(s, graph::matmul(graph::mul(x, dy), graph::fill(g_, {1, x.dim(-1)}, 1.0f)));
            },
            [&](const graph::Transpose&) {
              const Value x = in(id, 0);
              const Shape x_shape = x.shape();
              accumulate(x, graph::reshape(graph::transpose(dy), x_shape));
            },
            [&](const graph::SumTo&) {
              const Value x = in(id, 0);
              accumulate(x, graph::add(graph::fill(g_, x.shape(), 0.0f), dy));  // dy broadcast to x
            },
            [&](const graph::CausalAttention& p) {
              const Value q = in(id, 0), k = in(id, 1), v = in(id, 2);
              const graph::AttentionGrads d = graph::causal_attention_backward(q, k, v, dy, p);
              accumulate(q, d.dq);
              accumulate(k, d.dk);
              accumulate(v, d.dv);
            },
            [&](const graph::CrossEntropy&) {
              accumulate(in(id, 0), graph::cross_entropy_backward(in(id, 0), in(id, 1), dy));
            },
            [&](const graph::Attention&) {
              no_rule(id, "attention over the KV cache has no backward; build training graphs with causal_attention");
            },
            [&](const graph::KvStore&) { no_rule(id, "KV cache writes have no backward"); },
            [&](const graph::MoeFfn&) { no_rule(id, "moe_ffn has no backward rule yet"); },
            [&](const auto&) { no_rule(id, "no backward rule (backward ops are not differentiated again)"); },
        },
        n.op);
  }

  // A view is a reshape (same elements, contiguous) or a slice (the input's
  // strides, a smaller extent on one axis, an offset).
  void view(int id, const graph::View& p, Value dy) {
    const Node n = g_.node(id);
    const Value x = in(id, 0);
    const Node xn = x.node();
    const auto dense = [](const Node& m) { return m.strides == contiguous_strides(m.dtype, m.shape); };
    if (p.offset == 0 && n.shape.numel() == xn.shape.numel() && dense(n) && dense(xn)) {
      accumulate(x, graph::reshape(dy, xn.shape));
      return;
    }
    int axis = -1;
    bool slice = n.strides == xn.strides && n.shape.rank == xn.shape.rank;
    for (int i = 0; slice && i < n.shape.rank; ++i) {
      if (n.shape[i] == xn.shape[i]) continue;
      slice = axis < 0;
      axis = i;
    }
    if (slice && axis < 0 && p.offset == 0) {  // the whole tensor
      accumulate(x, dy);
      return;
    }
    if (!slice || axis < 0 || p.offset % size_t(xn.strides[size_t(axis)]) != 0)
      no_rule(id, "only reshapes and slices along one axis are differentiable views");
    const int64_t start = int64_t(p.offset / size_t(xn.strides[size_t(axis)]));
    accumulate(x, graph::slice_backward(dy, xn.shape, axis, start));
  }

  Graph& g_;
  int forward_nodes_;
  std::vector<bool> needs_;
  std::vector<Value> grads_;
  std::vector<int> current_;                 // forward node -> the node holding its value now
  std::unordered_map<int, int> origin_;      // recomputed copy -> forward node
  std::vector<Segment> segments_;
};

}  // namespace

std::vector<Value> backward(Graph& g, Value output, Value output_grad, std::span<const Value> params) {
  LOOM_CHECK(output.valid() && &output.graph() == &g && output_grad.valid() && &output_grad.graph() == &g,
             "[train] backward: the output and its gradient must be nodes of the graph");
  LOOM_CHECK(output_grad.shape() == output.shape() && output_grad.dtype() == DType::F32,
             "[train] backward: the output gradient {} must be f32 {}", output_grad.shape().str(),
             output.shape().str());
  Backward b(g, output.id() + 1, params);
  b.run(output, output_grad);
  std::vector<Value> grads;
  grads.reserve(params.size());
  for (Value p : params) grads.push_back(b.grad(p));
  return grads;
}

std::vector<Value> backward(Graph& g, Value loss, std::span<const Value> params) {
  return backward(g, loss, params, BackwardOptions{});
}

std::vector<Value> backward(Graph& g, Value loss, std::span<const Value> params, const BackwardOptions& options) {
  LOOM_CHECK(loss.valid() && &loss.graph() == &g, "[train] backward: the loss must be a node of the graph");
  LOOM_CHECK(loss.shape().numel() == 1 && loss.dtype() == DType::F32,
             "[train] backward: the loss must be one f32 value, got {} {}; pass an output gradient for a tensor",
             name(loss.dtype()), loss.shape().str());
  const Value seed = graph::fill(g, loss.shape(), 1.0f);
  Backward b(g, loss.id() + 1, params, options.checkpoints);
  b.run(loss, seed);
  std::vector<Value> grads;
  grads.reserve(params.size());
  for (Value p : params) grads.push_back(b.grad(p));
  return grads;
}

}  // namespace loom::train
