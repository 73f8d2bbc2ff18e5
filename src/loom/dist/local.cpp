#include <cstdlib>
#include <cstring>

#include "loom/core/error.h"
#include "loom/dist/communicator.h"

namespace loom::dist {

namespace {

class Local final : public Communicator {
 public:
  std::string name() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce(std::span<float>, ReduceOp) override {}
  void all_reduce(std::span<double>, ReduceOp) override {}
  void all_reduce(std::span<int64_t>, ReduceOp) override {}
  void all_gather(std::span<const float> mine, std::span<float> all) override {
    LOOM_CHECK(all.size() == mine.size(), "[dist] all_gather: {} elements out for {} in from 1 rank", all.size(),
               mine.size());
    if (!mine.empty()) std::memmove(all.data(), mine.data(), mine.size_bytes());
  }
  void broadcast(std::span<std::byte>, int root) override {
    LOOM_CHECK(root == 0, "[dist] broadcast from rank {} in a job of 1 process", root);
  }
  void send(std::span<const std::byte>, int dest, int) override {
    fail("[dist] send to rank {}: this job has 1 process", dest);
  }
  void recv(std::span<std::byte>, int source, int) override {
    fail("[dist] recv from rank {}: this job has 1 process", source);
  }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Communicator> local() { return std::make_unique<Local>(); }

bool launched_by_mpi() {
  // OpenMPI, MPICH/Hydra and PMIx launchers set these in every rank.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

std::unique_ptr<Communicator> from_environment() {
  if (mpi_built() && launched_by_mpi()) return mpi();
  return local();
}

}  // namespace loom::dist
