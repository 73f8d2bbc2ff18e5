// ThreadPool: the one way kernels run in parallel. The calling thread takes
// part, so a pool of size N starts N-1 workers. Workers spin briefly after a
// job (decode steps issue hundreds of small jobs per token) and then sleep.
// Jobs must not be nested: a parallel_for issued from inside a job runs
// serially on the calling thread.
//
//   ThreadPool pool(4);
//   pool.parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) { for (auto r = r0; r < r1; ++r) ...; });
//   pool.run_on_all([&](int thread, int n_threads) { ... });
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

  // Calls fn(thread, n_threads) once on each of the pool's threads and waits.
  void run_on_all(const std::function<void(int, int)>& fn);

  // Splits [begin, end) into chunks of about `grain` items handed out
  // dynamically; calls fn(chunk_begin, chunk_end) and waits.
  void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Threads the machine offers (at least 1).
  static int hardware_threads();

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint32_t> epoch_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace loom
