// Graph building checks and memory planning.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "loom/core/error.h"
#include "loom/graph/ops.h"
#include "loom/graph/planner.h"

namespace loom::graph {
namespace {

// Host memory for constants; graph building never reads it.
class ZeroBuffer final : public Buffer {
 public:
  explicit ZeroBuffer(size_t n) : bytes_(n) {}
  size_t size() const override { return bytes_.size(); }
  std::byte* host_data() const override { return const_cast<std::byte*>(bytes_.data()); }

 private:
  std::vector<std::byte> bytes_;
};

Tensor weight(DType t, Shape s) {
  return Tensor(std::make_shared<ZeroBuffer>(row_bytes(t, s[-1]) * size_t(s.numel() / s[-1])), 0, t, s);
}

TEST(Ops, ShapesFollowTheDefinitions) {
  Graph g;
  Value x = g.input("x", DType::F32, {7, 64});
  Value ids = g.input("ids", DType::I32, {7});
  Value pos = g.input("pos", DType::I32, {7});
  Tensor w = weight(DType::Q4_0, {96, 64});
  Tensor table = weight(DType::F16, {1000, 64});
  EXPECT_EQ(matmul(x, g.constant(w, "w")).shape(), Shape({7, 96}));
  EXPECT_EQ(get_rows(g.constant(table, "t"), ids).shape(), Shape({7, 64}));
  Value heads = reshape(x, {7, 4, 16});
  EXPECT_EQ(rope(heads, pos, Rope{8, 10000.0f, 1.0f, RopeStyle::Halves}).shape(), Shape({7, 4, 16}));
  EXPECT_EQ(slice(x, 1, 32, 32).shape(), Shape({7, 32}));
}

TEST(Ops, MismatchesAreErrorsNamingTheOp) {
  Graph g;
  Value x = g.input("x", DType::F32, {7, 64});
  Tensor w = weight(DType::F32, {96, 63});
  try {
    matmul(x, g.constant(w, "w"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[graph] matmul"), std::string::npos) << e.what();
  }
  EXPECT_THROW(reshape(x, {7, 65}), Error);
  EXPECT_THROW(slice(x, 1, 60, 8), Error);
  EXPECT_THROW(rope(reshape(x, {7, 4, 16}), g.input("p", DType::F32, {7}), Rope{16}), Error);  // positions must be i32
  EXPECT_THROW(rope(reshape(x, {7, 4, 16}), g.input("p2", DType::I32, {7}), Rope{17}), Error);  // odd n_rot
  Tensor q4 = weight(DType::Q4_0, {4, 64});
  EXPECT_THROW(slice(g.constant(q4, "q"), 1, 16, 32), Error);  // splits a 32-element block
}

// Live ranges of planned tensors must never overlap in memory.
TEST(Planner, LiveTensorsNeverShareMemoryAndDeadOnesAreReused) {
  Graph g;
  Value x = g.input("x", DType::F32, {16, 256});
  Value h = x;
  std::vector<Value> kept;
  for (int i = 0; i < 12; ++i) {
    Value a = scale(h, 2.0f);
    Value b = softmax(a);
    h = add(b, h);  // h stays live across two nodes
    if (i == 5) kept.push_back(h);  // read again at the end
  }
  Value out = add(h, kept[0]);
  g.mark_output(out);
  const MemoryPlan plan = plan_memory(g, 64);

  // Interval [first, last] during which each owned node's memory is in use.
  const int n = g.size();
  std::vector<int> last(size_t(n), -1);
  for (int i = 0; i < n; ++i) {
    last[size_t(i)] = std::max(last[size_t(i)], i);
    for (int in : g.node(i).inputs) last[size_t(in)] = std::max(last[size_t(in)], i);
    if (g.node(i).is_output || std::holds_alternative<Input>(g.node(i).op)) last[size_t(i)] = n;
  }
  size_t total = 0;
  for (int i = 0; i < n; ++i) {
    if (plan.offsets[size_t(i)] < 0) continue;
    total += node_bytes(g.node(i));
    EXPECT_EQ(plan.offsets[size_t(i)] % 64, 0);
    for (int j = i + 1; j < n; ++j) {
      if (plan.offsets[size_t(j)] < 0) continue;
      const bool both_live = j <= last[size_t(i)];  // j starts while i is still needed
      if (!both_live) continue;
      const auto a0 = size_t(plan.offsets[size_t(i)]), a1 = a0 + node_bytes(g.node(i));
      const auto b0 = size_t(plan.offsets[size_t(j)]), b1 = b0 + node_bytes(g.node(j));
      EXPECT_TRUE(a1 <= b0 || b1 <= a0) << "nodes " << i << " and " << j << " overlap";
    }
  }
  EXPECT_LT(plan.arena_bytes, total / 4) << "dead tensors should be reused";
}

TEST(Planner, ViewsShareTheirBaseMemory) {
  Graph g;
  Value x = g.input("x", DType::F32, {4, 8});
  Value y = scale(x, 3.0f);
  Value v = reshape(y, {32});
  Value z = scale(v, 2.0f);
  g.mark_output(z);
  const MemoryPlan plan = plan_memory(g, 64);
  EXPECT_EQ(plan.offsets[size_t(v.id())], -1);
  // y must stay alive through z (read via its view): z may not reuse y's memory.
  EXPECT_NE(plan.offsets[size_t(z.id())], plan.offsets[size_t(y.id())]);
}

}  // namespace
}  // namespace loom::graph
