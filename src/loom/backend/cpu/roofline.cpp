#include "loom/backend/cpu/roofline.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "loom/backend/cpu/simd/kernels.h"
#include "loom/core/thread_pool.h"

namespace loom::backend::cpu {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

double measure_bandwidth_gbs(int threads, size_t bytes, int repeats) {
  const size_t n = bytes / 12;
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
  ThreadPool pool(threads);
  const int64_t chunk = 1 << 16;
  // First touch in parallel, so pages are spread like the measured access.
  pool.parallel_for(0, int64_t(n), chunk, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) a[size_t(i)] = 0, b[size_t(i)] = 1, c[size_t(i)] = 2;
  });
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const float s = 0.5f + float(r);
    // Each thread streams one contiguous part (like a thread's share of a weight matrix).
    const int64_t per = (int64_t(n) + threads - 1) / threads;
    const double t0 = now();
    pool.parallel_chunks(threads, [&](int64_t part, int) {
      const int64_t i0 = part * per, i1 = std::min<int64_t>(int64_t(n), i0 + per);
      float* pa = a.get();
      const float* pb = b.get();
      const float* pc = c.get();
      for (int64_t i = i0; i < i1; ++i) pa[i] = pb[i] + s * pc[i];
    });
    const double dt = now() - t0;
    best = std::max(best, double(n) * 12 / dt / 1e9);
  }
  return best;
}

namespace {
double measure_peak(int threads, double (*kernel)(int64_t)) {
  ThreadPool pool(threads);
  const int64_t iterations = 4'000'000;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    double ops = 0;
    const double t0 = now();
    std::vector<double> done(static_cast<size_t>(threads));
    pool.parallel_chunks(threads, [&](int64_t part, int) { done[size_t(part)] = kernel(iterations); });
    const double dt = now() - t0;
    for (double d : done) ops += d;
    best = std::max(best, ops / dt / 1e9);
  }
  return best;
}
}  // namespace

double measure_peak_gflops(int threads) { return measure_peak(threads, simd::kernels().fma_peak); }
double measure_peak_int8_gops(int threads) { return measure_peak(threads, simd::kernels().dot8_peak); }

}  // namespace loom::backend::cpu
