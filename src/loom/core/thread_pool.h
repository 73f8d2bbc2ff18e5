// ThreadPool: the one way kernels run in parallel. Work is a number of
// chunks handed out dynamically; the calling thread takes part, and workers
// join as they wake up. The call returns when every chunk is done, without
// waiting for workers that never took one — so an oversubscribed machine
// (more threads than free cores) degrades to fewer helpers, not to stalls.
// Workers spin briefly between jobs (a decode step issues hundreds of small
// jobs per token) and then sleep. A job started from inside a job runs
// serially on the calling thread. Chunk functions must not throw.
//
//   ThreadPool pool(4);
//   pool.parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) { ... });
//   pool.parallel_chunks(n, [&](int64_t chunk, int thread) { scratch[thread] ... });
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace loom {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(chunk, thread) for every chunk in [0, n_chunks); `thread` is in
  // [0, size()) and no two concurrent calls share it (for per-thread scratch).
  void parallel_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn);

  // Splits [begin, end) into pieces of `grain` items; calls fn(piece_begin, piece_end).
  void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Threads the machine offers (at least 1).
  static int hardware_threads();

 private:
  struct Job;
  void worker(int index);
  static void run_chunks(Job& job, int thread);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<uint32_t> seq_{0};  // changes when a job starts or retires
  std::atomic<int> active_{0};    // workers inside a job
  std::atomic<bool> stop_{false};
};

}  // namespace loom
