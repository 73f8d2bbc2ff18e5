// train: everything that turns a forward graph into learning. This file is
// the autograd driver: reverse-mode differentiation over loom's graph. The
// gradient is more nodes in the same Graph (backward ops of graph/train_ops.h
// and ordinary ops), so a backend compiles and runs forward and backward
// together, like any inference graph.
//
//   Value loss = graph::cross_entropy(logits, targets);          // [1]
//   std::vector<Value> grads = train::backward(g, loss, params);  // each like its param
//   for (Value d : grads) g.mark_output(d);
//   auto exe = backend.compile(g);
#pragma once

#include <span>
#include <vector>


#include "loom/graph/graph.h"

namespace loom::train {

// Appends the nodes computing d loss / d param for every param (any f32 node:
// weights as Constants, or Inputs) and returns them in the order of params,
// each with its param's shape. `loss` must have one element; its gradient
// seed is 1. A param the loss does not depend on gets zeros. Throws a
// loom::Error naming the node when the loss depends on a param through an op
// without a backward rule (e.g. the KV-cache attention: train with
// graph::causal_attention).
std::vector<graph::Value> backward(graph::Graph& g, graph::Value loss, std::span<const graph::Value> params);

// Activation recomputation: the forward values between two consecutive
// checkpoints (e.g. the residual stream after each decoder layer, in node
// order) are not kept for the backward pass; their nodes are added again just
// before the gradients that need them, so the memory planner frees the
// originals after the forward pass. The gradients are the same bit for bit;
// the price is one more forward pass of every segment.
struct BackwardOptions {
  std::vector<graph::Value> checkpoints;  // empty: keep every forward value
};
std::vector<graph::Value> backward(graph::Graph& g, graph::Value loss, std::span<const graph::Value> params,
                                   const BackwardOptions& options);

// The same seeded with d output = output_grad (same shape as output): the
// vector-Jacobian product, i.e. the gradient of sum(output_grad * output).
std::vector<graph::Value> backward(graph::Graph& g, graph::Value output, graph::Value output_grad,
                                   std::span<const graph::Value> params);

}  // namespace loom::train
