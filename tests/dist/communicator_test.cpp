// The one-process communicator, and the choice between it and MPI.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "loom/core/error.h"
#include "loom/dist/communicator.h"

namespace loom::dist {
namespace {

TEST(LocalCommunicator, IsRankZeroOfOneAndLeavesDataAsItIs) {
  auto c = local();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  std::vector<float> g = {1.5f, -2.0f, 3.25f};
  c->all_reduce(g, ReduceOp::Sum);  // the sum over one rank is the value itself
  EXPECT_EQ(g, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  std::vector<float> all(3);
  c->all_gather(g, all);
  EXPECT_EQ(all, g);
  std::vector<std::byte> b(4, std::byte{7});
  c->broadcast(b, 0);
  EXPECT_EQ(b[3], std::byte{7});
  c->barrier();
}

TEST(LocalCommunicator, RejectsPeersThatDoNotExist) {
  auto c = local();
  std::vector<std::byte> b(4);
  EXPECT_THROW(c->send(b, 1, 0), Error);
  EXPECT_THROW(c->recv(b, 1, 0), Error);
  EXPECT_THROW(c->broadcast(b, 1), Error);
  std::vector<float> mine(2), wrong(3);
  EXPECT_THROW(c->all_gather(mine, wrong), Error);
}

TEST(Communicator, FromEnvironmentIsLocalWithoutALauncher) {
  if (launched_by_mpi()) GTEST_SKIP() << "running under mpirun";
  EXPECT_EQ(from_environment()->name(), "local");
}

}  // namespace
}  // namespace loom::dist
