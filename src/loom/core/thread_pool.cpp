#include "loom/core/thread_pool.h"

#include <algorithm>

#include "loom/core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LOOM_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define LOOM_CPU_RELAX() asm volatile("yield")
#else
#define LOOM_CPU_RELAX() ((void)0)
#endif

namespace loom {

namespace {
// Spin iterations before a worker sleeps: long enough to bridge the gap
// between two kernels of one decode step (tens of microseconds).
constexpr int kSpinIterations = 20000;
thread_local bool t_inside_job = false;
}  // namespace

struct ThreadPool::Job {
  const std::function<void(int64_t, int)>* fn;
  int64_t n_chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

int ThreadPool::hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  LOOM_CHECK(n_threads >= 1 && n_threads <= 1024, "[core] thread count {} is outside 1..1024", n_threads);
  threads_.reserve(size_t(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  seq_.fetch_add(1);
  seq_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run_chunks(Job& job, int thread) {
  for (;;) {
    const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.n_chunks) return;
    (*job.fn)(c, thread);
    job.done.fetch_add(1, std::memory_order_release);
  }
}

void ThreadPool::worker(int index) {
  t_inside_job = true;  // anything this thread runs is inside a job
  uint32_t seen = 0;  // the value at construction: nothing published before we start is missed
  for (;;) {
    if (stop_.load()) return;
    uint32_t s = seq_.load(std::memory_order_acquire);
    for (int spin = 0; s == seen && spin < kSpinIterations; ++spin) {
      LOOM_CPU_RELAX();
      s = seq_.load(std::memory_order_acquire);
    }
    while (s == seen) {
      seq_.wait(seen);
      s = seq_.load(std::memory_order_acquire);
    }
    seen = s;
    if (stop_.load()) return;
    // Join the job only if it is still the one we were woken for: the caller
    // retires a job by bumping seq_ and then waits for active_ to drain.
    active_.fetch_add(1);
    Job* job = job_.load();
    if (job != nullptr && seq_.load() == seen) run_chunks(*job, index);
    active_.fetch_sub(1);
  }
}

void ThreadPool::parallel_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn) {
  if (n_chunks <= 0) return;
  if (n_threads_ == 1 || t_inside_job || n_chunks == 1) {
    for (int64_t c = 0; c < n_chunks; ++c) fn(c, 0);
    return;
  }
  Job job{&fn, n_chunks};
  job_.store(&job);
  seq_.fetch_add(1);
  seq_.notify_all();
  t_inside_job = true;
  run_chunks(job, 0);
  t_inside_job = false;
  // Every chunk was claimed; wait for the ones other threads are still running.
  for (int spin = 0; job.done.load(std::memory_order_acquire) != n_chunks; ++spin) {
    if (spin < kSpinIterations)
      LOOM_CPU_RELAX();
    else
      std::this_thread::yield();
  }
  job_.store(nullptr);
  seq_.fetch_add(1);  // retire: a worker waking from now on sees a new sequence number
  for (int spin = 0; active_.load() != 0; ++spin) {
    if (spin < kSpinIterations)
      LOOM_CPU_RELAX();
    else
      std::this_thread::yield();
  }
}

void ThreadPool::parallel_for(int64_t begin, int64_t end, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t n = (end - begin + grain - 1) / grain;
  parallel_chunks(n, [&](int64_t c, int) { fn(begin + c * grain, std::min(end, begin + (c + 1) * grain)); });
}

}  // namespace loom
