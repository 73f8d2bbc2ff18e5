// cpu::Context::for_runs: every item is handed out exactly once, owners walk
// their own run forward, and a thread that finishes early takes the rest of a
// slow thread's run.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "loom/backend/cpu/cpu_context.h"

namespace loom::backend::cpu {
namespace {

TEST(ForRuns, EveryItemOnceAndRunEndsAreRunBoundaries) {
  for (int threads : {1, 2, 3, 4}) {
    Context ctx(threads);
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(5), int64_t(97), int64_t(1000)}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      const int64_t per = (n + threads - 1) / threads;
      ctx.for_runs(n, 4, 1, [&](int64_t a, int64_t b, int64_t run_end, int) {
        ASSERT_LT(a, b);
        ASSERT_LE(b, run_end);
        // run_end is the end of the piece's run, or the piece's own end when stolen.
        ASSERT_TRUE(run_end == b || run_end == n || run_end % per == 0) << run_end;
        for (int64_t i = a; i < b; ++i) seen[size_t(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[size_t(i)].load(), 1) << "threads " << threads << " n " << n;
    }
  }
}

TEST(ForRuns, AFastThreadTakesTheEndOfASlowThreadsRun) {
  Context ctx(2);
  const int64_t n = 200;
  std::vector<int> by(static_cast<size_t>(n), -1);
  std::atomic<int> first_owner{-1};
  ctx.for_runs(n, 1, 1, [&](int64_t a, int64_t b, int64_t, int thread) {
    int expected = -1;
    first_owner.compare_exchange_strong(expected, thread);
    // The first thread to start is slow: 2 ms per item.
    if (thread == first_owner.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    for (int64_t i = a; i < b; ++i) by[size_t(i)] = thread;
  });
  const int slow = first_owner.load();
  int64_t by_slow = 0;
  for (int t : by) by_slow += t == slow;
  // Without stealing the slow thread would do at least its own 100 items.
  EXPECT_LT(by_slow, 100);
  for (int t : by) EXPECT_GE(t, 0);
}

}  // namespace
}  // namespace loom::backend::cpu
