// Communicator: collective operations between the processes of one job, the
// only way loom moves data between processes. Training all-reduces its
// gradients through it (data parallel); tensor-parallel inference would
// all-gather/all-reduce activations. The MPI implementation (OpenMPI from
// Debian) is what runs today; NCCL or HCCL would implement the same
// interface for GPU and Ascend memory. loom never talks to the network itself.
//
// Buffers are host memory. Every collective must be called by every rank in
// the same order with the same sizes (as in MPI); a mismatch is the caller's
// bug and may hang, as in every collective library.
//
//   auto comm = dist::from_environment();   // MPI under mpirun, else one process
//   comm->all_reduce(grads, dist::ReduceOp::Sum);
//   if (comm->rank() == 0) save(...);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace loom::dist {

enum class ReduceOp { Sum, Max, Min };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;  // "local", "mpi"
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: every rank ends with the element-wise reduction over all ranks.
  virtual void all_reduce(std::span<float> data, ReduceOp op) = 0;
  virtual void all_reduce(std::span<double> data, ReduceOp op) = 0;
  virtual void all_reduce(std::span<int64_t> data, ReduceOp op) = 0;
  // all[r * mine.size() + i] = rank r's mine[i]; all.size() == size() * mine.size().
  virtual void all_gather(std::span<const float> mine, std::span<float> all) = 0;
  // Every rank ends with root's bytes.
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  // Point to point (blocking); sizes must match on both sides.
  virtual void send(std::span<const std::byte> data, int dest, int tag) = 0;
  virtual void recv(std::span<std::byte> data, int source, int tag) = 0;
  virtual void barrier() = 0;
};

// One process: rank 0 of 1; collectives leave the data as it is.
std::unique_ptr<Communicator> local();

// True when loom was built with MPI (LOOM_WITH_MPI, on by default).
bool mpi_built();
// True when this process was started by an MPI launcher (mpirun/mpiexec).
bool launched_by_mpi();

// MPI_COMM_WORLD. Initialises MPI on first use (finalised at exit). Throws
// loom::Error when loom was built without MPI.
std::unique_ptr<Communicator> mpi();

// MPI when launched by mpirun and built with MPI, otherwise local().
std::unique_ptr<Communicator> from_environment();

}  // namespace loom::dist
