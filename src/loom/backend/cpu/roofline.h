// The machine's limits, measured: memory bandwidth (a STREAM-triad-like pass
// over >= 1 GiB) and peak FMA and int8-dot throughput of the best SIMD path,
// each with a given number of threads. `loom bench` reports speeds as fractions of these.
//
//   double gbs = cpu::measure_bandwidth_gbs(2);
//   double gflops = cpu::measure_peak_gflops(2);
#pragma once

#include <cstddef>

namespace loom::backend::cpu {

// Best of `repeats` triad passes a[i] = b[i] + s * c[i] over three arrays of
// `bytes` total; counts 3 * 4 bytes per element (reads of b, c and the write of a).
double measure_bandwidth_gbs(int threads, size_t bytes = size_t(3) << 29, int repeats = 5);
// Best of a few runs of independent FMA chains on every thread.
double measure_peak_gflops(int threads);
// The same for int8 dot products (vpdpbusd, sdot, ...): GOP/s, 2 ops per multiply-add.
double measure_peak_int8_gops(int threads);

}  // namespace loom::backend::cpu
