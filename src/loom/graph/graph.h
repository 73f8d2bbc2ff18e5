// Graph: a forward (or backward) pass as a list of nodes in execution order.
// Model code builds graphs with the free functions of ops.h and never touches
// tensor memory; a backend compiles a graph (plans memory, binds buffers) and
// runs it. Leaves are Inputs (host data written before each run) and
// Constants (existing tensors such as weights and the KV cache).
//
//   graph::Graph g;
//   auto ids = g.input("tokens", DType::I32, {T});
//   auto x = graph::get_rows(g.constant(embedding, "token_embd"), ids);   // [T, C]
//   g.mark_output(x);
//   auto exe = backend.compile(g);
#pragma once

#include <array>
#include <string>
#include <vector>

#include "loom/core/tensor.h"
#include "loom/graph/op.h"

namespace loom::graph {

class Graph;

struct Node {
  Op op;
  std::vector<int> inputs;  // ids of earlier nodes
  DType dtype = DType::F32;
  Shape shape;
  std::array<int64_t, kMaxRank> strides{};  // bytes; computed nodes are contiguous
  std::string name;
  Tensor tensor;  // Constant leaves only
  bool is_output = false;
};

// A handle to a node while building.
class Value {
 public:
  Value() = default;
  Value(Graph* g, int id) : graph_(g), id_(id) {}
  bool valid() const { return graph_ != nullptr; }
  Graph& graph() const { return *graph_; }
  int id() const { return id_; }
  const Node& node() const;
  DType dtype() const { return node().dtype; }
  const Shape& shape() const { return node().shape; }
  int rank() const { return node().shape.rank; }
  int64_t dim(int i) const { return node().shape[i]; }

 private:
  Graph* graph_ = nullptr;
  int id_ = -1;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;  // Values point at their graph
  Graph& operator=(const Graph&) = delete;

  Value input(std::string name, DType dtype, Shape shape);
  Value constant(const Tensor& t, std::string name);
  void mark_output(Value v);

  // Appends a computed node whose output is a new contiguous tensor (used by ops.cpp).
  Value add(Op op, std::vector<Value> inputs, DType dtype, Shape shape);
  // Appends a node whose output is a view (View, or an op writing in place into input 0).
  Value add_alias(Op op, std::vector<Value> inputs, DType dtype, Shape shape, std::array<int64_t, kMaxRank> strides);

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int id) const { return nodes_[size_t(id)]; }
  Node& node(int id) { return nodes_[size_t(id)]; }
  int size() const { return int(nodes_.size()); }

  // Sets the name of the last added node (names every intermediate tensor, for debugging).
  Value named(Value v, std::string name);

  // One line per node: "12 matmul f32[7, 256] <- 10 3  (blk.0.q)".
  std::string dump() const;

 private:
  std::vector<Node> nodes_;
};

// True if node's output shares memory with its input 0 instead of owning its own.
bool is_alias(const Node& n);

}  // namespace loom::graph
