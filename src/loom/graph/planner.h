// Memory planning: gives every node that owns memory (computed nodes and
// Inputs) an offset in one arena, reusing the memory of tensors that are no
// longer needed. Views and in-place nodes share their input's memory; Inputs
// and outputs are never shared. Backends allocate the arena once per
// compiled graph, so running it allocates nothing.
//
//   MemoryPlan plan = plan_memory(g, 64);
//   // node i lives at arena + plan.offsets[i] (or aliases, if offsets[i] < 0)
#pragma once

#include <cstdint>
#include <vector>

#include "loom/graph/graph.h"

namespace loom::graph {

struct MemoryPlan {
  std::vector<int64_t> offsets;  // per node; -1 if the node has no memory of its own
  size_t arena_bytes = 0;
};

MemoryPlan plan_memory(const Graph& g, size_t alignment);

// Bytes of the dense tensor a node produces.
size_t node_bytes(const Node& n);

}  // namespace loom::graph
