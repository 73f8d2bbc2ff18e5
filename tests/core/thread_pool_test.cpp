#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <set>

#include "loom/core/thread_pool.h"

namespace loom {
namespace {

TEST(ThreadPool, EveryChunkRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 5, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_chunks(n, [&](int64_t c, int) { hits[size_t(c)].fetch_add(1); });
      for (int64_t c = 0; c < n; ++c) ASSERT_EQ(hits[size_t(c)].load(), 1) << threads << " threads, chunk " << c;
    }
  }
}

TEST(ThreadPool, ConcurrentChunksNeverShareAThreadIndex) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> busy(4);
  std::atomic<bool> clash{false};
  pool.parallel_chunks(2000, [&](int64_t, int t) {
    if (busy[size_t(t)].fetch_add(1) != 0) clash = true;
    for (volatile int i = 0; i < 200; ++i) {
    }
    busy[size_t(t)].fetch_sub(1);
  });
  EXPECT_FALSE(clash.load());
}

TEST(ThreadPool, ParallelForCoversTheRangeInPieces) {
  ThreadPool pool(3);
  std::vector<int> seen(1001, 0);
  pool.parallel_for(0, 1001, 64, [&](int64_t b, int64_t e) {
    EXPECT_LE(e - b, 64);
    for (int64_t i = b; i < e; ++i) seen[size_t(i)]++;
  });
  for (int v : seen) ASSERT_EQ(v, 1);
}

TEST(ThreadPool, NestedJobsRunSeriallyInsteadOfDeadlocking) {
  ThreadPool pool(3);
  std::atomic<int> inner{0};
  pool.parallel_chunks(6, [&](int64_t, int) { pool.parallel_chunks(5, [&](int64_t, int) { inner++; }); });
  EXPECT_EQ(inner.load(), 30);
}

// More threads than cores: many tiny jobs must still finish promptly, because
// the caller never waits for a worker that has not taken a chunk.
TEST(ThreadPool, OversubscribedPoolDoesNotStall) {
  ThreadPool pool(4 * ThreadPool::hardware_threads());
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<int64_t> sum{0};
  for (int job = 0; job < 5000; ++job) pool.parallel_chunks(4, [&](int64_t c, int) { sum += c; });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(sum.load(), 5000 * 6);
  EXPECT_LT(s, 10.0) << "5000 tiny jobs took " << s << " s";
}

}  // namespace
}  // namespace loom
