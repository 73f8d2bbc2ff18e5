#include "loom/graph/planner.h"

#include <algorithm>
#include <limits>
#include <map>

#include "loom/core/error.h"

namespace loom::graph {

size_t node_bytes(const Node& n) {
  size_t rows = 1;
  for (int i = 0; i < n.shape.rank - 1; ++i) rows *= size_t(n.shape[i]);
  return rows * row_bytes(n.dtype, n.shape[-1]);
}

namespace {

bool owns_memory(const Node& n) { return !is_alias(n) && !std::holds_alternative<Constant>(n.op); }

// Free space of the arena as offset -> size, merged with its neighbours.
class FreeList {
 public:
  size_t allocate(size_t size, size_t* end) {
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < size) continue;
      const size_t off = it->first;
      const size_t rest = it->second - size;
      free_.erase(it);
      if (rest) free_[off + size] = rest;
      return off;
    }
    // Grow the arena, reusing a free block that touches its end.
    size_t off = *end;
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second == *end) {
        off = last->first;
        free_.erase(last);
      }
    }
    *end = off + size;
    return off;
  }
  void release(size_t off, size_t size) {
    auto it = free_.emplace(off, size).first;
    auto next = std::next(it);
    if (next != free_.end() && off + size == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_.erase(it);
      }
    }
  }

 private:
  std::map<size_t, size_t> free_;
};

}  // namespace

MemoryPlan plan_memory(const Graph& g, size_t alignment) {
  LOOM_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, "[graph] plan_memory: bad alignment {}", alignment);
  const int n = g.size();
  constexpr int kForever = std::numeric_limits<int>::max();

  // The node whose memory each node uses.
  std::vector<int> root(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const Node& node = g.node(i);
    root[size_t(i)] = is_alias(node) ? root[size_t(node.inputs[0])] : i;
  }
  // Last node that reads each root's memory.
  std::vector<int> last_use(size_t(n), -1);
  for (int i = 0; i < n; ++i) {
    const Node& node = g.node(i);
    last_use[size_t(root[size_t(i)])] = std::max(last_use[size_t(root[size_t(i)])], i);
    for (int in : node.inputs) last_use[size_t(root[size_t(in)])] = std::max(last_use[size_t(root[size_t(in)])], i);
    if (node.is_output || std::holds_alternative<Input>(node.op)) last_use[size_t(root[size_t(i)])] = kForever;
  }

  MemoryPlan plan;
  plan.offsets.assign(size_t(n), -1);
  FreeList free_list;
  size_t end = 0;
  std::vector<std::vector<int>> release_after(static_cast<size_t>(n));
  auto padded = [&](size_t b) { return (std::max<size_t>(b, 1) + alignment - 1) / alignment * alignment; };

  // Inputs first, so that they never share memory with anything.
  for (int i = 0; i < n; ++i) {
    if (!std::holds_alternative<Input>(g.node(i).op)) continue;
    plan.offsets[size_t(i)] = int64_t(free_list.allocate(padded(node_bytes(g.node(i))), &end));
  }
  for (int i = 0; i < n; ++i) {
    const Node& node = g.node(i);
    if (owns_memory(node) && !std::holds_alternative<Input>(node.op)) {
      plan.offsets[size_t(i)] = int64_t(free_list.allocate(padded(node_bytes(node)), &end));
      const int lu = last_use[size_t(i)];
      if (lu != kForever) release_after[size_t(std::max(lu, i))].push_back(i);
    }
    for (int r : release_after[size_t(i)]) free_list.release(size_t(plan.offsets[size_t(r)]), padded(node_bytes(g.node(r))));
  }
  plan.arena_bytes = end;
  return plan;
}

}  // namespace loom::graph
