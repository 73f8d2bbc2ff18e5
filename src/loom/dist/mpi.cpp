// The MPI implementation of Communicator (built with LOOM_WITH_MPI). MPI is
// initialised once per process with MPI_THREAD_FUNNELED (only the thread
// that runs the training loop calls MPI) and finalised at exit. Counts above
// INT_MAX are split into several calls, since MPI counts are int.
#include <climits>
#include <cstdlib>
#include <mutex>

#include "loom/core/error.h"
#include "loom/dist/communicator.h"

#if LOOM_WITH_MPI
#include <mpi.h>
#endif

namespace loom::dist {

#if LOOM_WITH_MPI

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("[dist] {} failed: {}", what, std::string(msg, size_t(len)));
}

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    // Errors come back as codes (turned into loom::Error) instead of aborting the job.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  });
}

MPI_Op op_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    default: return MPI_MIN;
  }
}

constexpr size_t kMaxCount = size_t(INT_MAX);

class Mpi final : public Communicator {
 public:
  Mpi() {
    init_once();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(std::span<float> d, ReduceOp op) override { reduce(d.data(), d.size(), MPI_FLOAT, op); }
  void all_reduce(std::span<double> d, ReduceOp op) override { reduce(d.data(), d.size(), MPI_DOUBLE, op); }
  void all_reduce(std::span<int64_t> d, ReduceOp op) override { reduce(d.data(), d.size(), MPI_INT64_T, op); }

  void all_gather(std::span<const float> mine, std::span<float> all) override {
    LOOM_CHECK(all.size() == mine.size() * size_t(size_), "[dist] all_gather: {} elements out for {} in from {} ranks",
               all.size(), mine.size(), size_);
    LOOM_CHECK(mine.size() <= kMaxCount, "[dist] all_gather of {} elements per rank is too large", mine.size());
    check(MPI_Allgather(mine.data(), int(mine.size()), MPI_FLOAT, all.data(), int(mine.size()), MPI_FLOAT,
                        MPI_COMM_WORLD),
          "MPI_Allgather");
  }

  void broadcast(std::span<std::byte> data, int root) override {
    check_rank(root, "broadcast");
    for (size_t done = 0; done < data.size();) {
      const size_t n = std::min(kMaxCount, data.size() - done);
      check(MPI_Bcast(data.data() + done, int(n), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
      done += n;
    }
  }

  void send(std::span<const std::byte> data, int dest, int tag) override {
    check_rank(dest, "send");
    for (size_t done = 0; done < data.size();) {
      const size_t n = std::min(kMaxCount, data.size() - done);
      check(MPI_Send(data.data() + done, int(n), MPI_BYTE, dest, tag, MPI_COMM_WORLD), "MPI_Send");
      done += n;
    }
  }

  void recv(std::span<std::byte> data, int source, int tag) override {
    check_rank(source, "recv");
    for (size_t done = 0; done < data.size();) {
      const size_t n = std::min(kMaxCount, data.size() - done);
      check(MPI_Recv(data.data() + done, int(n), MPI_BYTE, source, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
      done += n;
    }
  }

  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

 private:
  void reduce(void* data, size_t count, MPI_Datatype type, ReduceOp op) {
    int tsize = 0;
    MPI_Type_size(type, &tsize);
    for (size_t done = 0; done < count;) {
      const size_t n = std::min(kMaxCount, count - done);
      check(MPI_Allreduce(MPI_IN_PLACE, static_cast<std::byte*>(data) + done * size_t(tsize), int(n), type, op_of(op),
                          MPI_COMM_WORLD),
            "MPI_Allreduce");
      done += n;
    }
  }
  void check_rank(int r, const char* what) const {
    LOOM_CHECK(r >= 0 && r < size_, "[dist] {}: rank {} is outside this job of {} processes", what, r, size_);
  }

  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_built() { return true; }
std::unique_ptr<Communicator> mpi() { return std::make_unique<Mpi>(); }

#else

bool mpi_built() { return false; }
std::unique_ptr<Communicator> mpi() {
  fail("[dist] this loom was built without MPI; configure with -DLOOM_WITH_MPI=ON (Debian: libopenmpi-dev)");
}

#endif

}  // namespace loom::dist
